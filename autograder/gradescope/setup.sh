#!/usr/bin/env bash
# Gradescope image build: runs once, as root, on Ubuntu 22.04 with network,
# in /autograder/source (this zip unpacked). Built by `make autograder-zip`.
set -euo pipefail

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV=/opt/autograder-venv          # must stay readable by the student user (it runs the worker)
WORKER_USER=student

# The harness uses the system python3 (3.10): leave it alone, grade from a venv.
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends python3-venv
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
"$VENV/bin/python" -m pip install -q "numpy<3" pyyaml tqdm matplotlib
chmod -R a+rX "$VENV"

# Student code runs as this user (autograder/sandbox.py); it owns nothing here.
if ! id -u "$WORKER_USER" >/dev/null 2>&1; then
    adduser "$WORKER_USER" --no-create-home --disabled-password --gecos ""
fi

# CIFAR-10 (official archive, MD5-checked) with the provided loader; the archive is dropped.
"$VENV/bin/python" "$SOURCE/autograder/provided/data.py" "$SOURCE/data"
rm -f "$SOURCE/data/cifar-10-python.tar.gz"

# The grader, the hidden cases and the data (test labels!) are root's only.
chown -R root:root "$SOURCE"
chmod -R go-rwx "$SOURCE"
