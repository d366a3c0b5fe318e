#!/usr/bin/env bash
# Gradescope image build: runs once, as root, on Ubuntu 22.04 with network,
# in /autograder/source (this zip unpacked). Built by `make autograder-zip`.
# The variables below exist for tests and local runs (tests/gradescope_image/check_image.sh,
# where download.pytorch.org and the CIFAR-10 host cannot be reached); Gradescope sets none
# of them, and without them the script downloads exactly as it always did:
#   AUTOGRADER_TORCH_INSTALL  "skip": no torch (only the layers part can grade); anything
#                             else: the pip arguments that install torch instead of the CPU
#                             index, e.g. the path of a torch==2.13.0 wheel
#   AUTOGRADER_CIFAR10_FROM   a local cifar-10-batches-py folder (or its parent) to copy
#                             instead of downloading the official archive
#   AUTOGRADER_CIFAR10_1      "skip": no CIFAR-10.1; a folder: copy its two .npy files from there
#                             (MD5-checked all the same) instead of downloading them
set -euo pipefail

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV=/opt/autograder-venv          # must stay readable by the student user (it runs the worker)
WORKER_USER=student
TORCH_INSTALL="${AUTOGRADER_TORCH_INSTALL:-}"
CIFAR10_FROM="${AUTOGRADER_CIFAR10_FROM:-}"
CIFAR10_1="${AUTOGRADER_CIFAR10_1:-}"

# The harness uses the system python3 (3.10): leave it alone, grade from a venv.
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends python3-venv
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ -z "$TORCH_INSTALL" ]; then
    "$VENV/bin/python" -m pip install -q --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
elif [ "$TORCH_INSTALL" = skip ]; then
    echo "setup.sh: AUTOGRADER_TORCH_INSTALL=skip: torch is not installed; the CNN part cannot run" >&2
else
    # shellcheck disable=SC2086  # a list of pip arguments
    "$VENV/bin/python" -m pip install -q $TORCH_INSTALL
fi
"$VENV/bin/python" -m pip install -q "numpy<3" pyyaml tqdm matplotlib gradescope-utils==0.5.0
chmod -R a+rX "$VENV"

# Student code runs as this user (autograder/sandbox/); it owns nothing here.
if ! id -u "$WORKER_USER" >/dev/null 2>&1; then
    adduser "$WORKER_USER" --no-create-home --disabled-password --gecos ""
fi

# CIFAR-10 (official archive, MD5-checked) with the provided loader; the archive is dropped.
if [ -z "$CIFAR10_FROM" ]; then
    "$VENV/bin/python" "$SOURCE/autograder/provided/data.py" "$SOURCE/data"
    rm -f "$SOURCE/data/cifar-10-python.tar.gz"
else
    [ -f "$CIFAR10_FROM/test_batch" ] || CIFAR10_FROM="$CIFAR10_FROM/cifar-10-batches-py"
    if [ ! -f "$CIFAR10_FROM/test_batch" ]; then
        echo "setup.sh: AUTOGRADER_CIFAR10_FROM: no cifar-10-batches-py folder at ${AUTOGRADER_CIFAR10_FROM}" >&2
        exit 1
    fi
    mkdir -p "$SOURCE/data/cifar-10-batches-py"
    cp "$CIFAR10_FROM"/* "$SOURCE/data/cifar-10-batches-py/"
fi

# CIFAR-10.1 v6 (2,000 new test images with their labels, MD5-checked): optional. The grader
# reports accuracy on them to the course staff when it finds them beside CIFAR-10; a failed
# download only leaves them out.
if [ "$CIFAR10_1" = skip ]; then
    echo "setup.sh: AUTOGRADER_CIFAR10_1=skip: no CIFAR-10.1" >&2
elif ! "$VENV/bin/python" "$SOURCE/autograder/parts/cnn/fresh_data.py" "$SOURCE/data" ${CIFAR10_1:+"$CIFAR10_1"}; then
    rm -rf "$SOURCE/data/cifar-10.1"
    echo "setup.sh: CIFAR-10.1 could not be fetched; the grader goes on without it" >&2
fi

# The grader, the hidden cases and the data (test labels!) are root's only.
chown -R root:root "$SOURCE"
chmod -R go-rwx "$SOURCE"
