#!/usr/bin/env bash
# check_image.sh: build the Gradescope image for real and grade the reference submission in it
# (`make check-image`; root only, needs the Ubuntu mirror and PyPI; not part of `make test`).
#
# What it proves: dist/autograder.zip, unpacked into /autograder/source of a fresh Ubuntu 22.04
# (jammy, debootstrap minbase, with the jammy-updates/-security pockets like the ubuntu:22.04
# image), gets through setup.sh as root (apt python3-venv, the venv, pip installs, the `student`
# user, the data, the permissions); the provided data.py's download path (urlopen, MD5 check,
# tar extraction) works under the image's Python, fed a file:// URL; run_autograder then grades
# the reference submission (solutions/cnn) with the image's python3 (3.10) and leaves a
# /autograder/results/results.json that passes the project's schema, the layers part at full
# marks; and a probe submission shows that student code runs as `student` under 3.10 and cannot
# read the hidden cases or the test labels, nor write results.json.
#
# What it cannot prove:
# - torch: no CPU torch for Python 3.10 can be downloaded here, so by default setup.sh skips it
#   (AUTOGRADER_TORCH_INSTALL=skip); the layers part then grades for real and the CNN part must
#   end as an autograder error (0 points, "not a problem with your submission", valid
#   results.json). Where a cp310 torch==2.13.0 CPU wheel or the CPU index is reachable,
#   CHECK_IMAGE_TORCH_INSTALL=<pip arguments, or a wheel file on this machine, copied in> grades
#   both parts and expects full marks.
# - the downloads themselves: CIFAR-10 is copied from the local copy (AUTOGRADER_CIFAR10_FROM,
#   bind-mounted read-only), not fetched from the official host.
# - Gradescope's own base image (extra packages, a python3 already installed), its resource
#   limits (0.5 vCPU, 768 MB) and its container runtime: this is a chroot on this machine's
#   kernel, cores and memory (its root bind-mounted onto itself so that / is a mount point, as
#   in a container). debootstrap runs with --no-check-gpg when no Ubuntu keyring is at hand
#   (apt inside the image then checks every package with the image's own keyring).
#
# Usage: tests/gradescope_image/check_image.sh [ZIP]   (default dist/autograder.zip)
# Environment: CHECK_IMAGE_CACHE (default /var/tmp/autograder-jammy: base/ is the pristine
# debootstrap, reused when present; run/ is a fresh copy per run, left for inspection),
# UBUNTU_MIRROR, CIFAR10_DIR (else ../shared/tools/cifar10), CHECK_IMAGE_TORCH_INSTALL.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ZIP="$(realpath "${1:-$REPO/dist/autograder.zip}")"
CACHE="${CHECK_IMAGE_CACHE:-/var/tmp/autograder-jammy}"
MIRROR="${UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}"
TORCH_INSTALL="${CHECK_IMAGE_TORCH_INSTALL:-skip}"
BASE="$CACHE/base"
ROOTFS="$CACHE/run"
SUBMISSION="$REPO/solutions/cnn"
HOST_PYTHON="$REPO/.venv/bin/python"

fail() { echo "check_image.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot, mounts)"
[ -f "$ZIP" ] || fail "$ZIP is missing; run \`make autograder-zip\` first"
[ -x "$HOST_PYTHON" ] || fail "$HOST_PYTHON is missing; run \`make install\` first"
for tool in debootstrap unzip unshare chroot; do
    command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install debootstrap unzip util-linux)"
done
if [ -z "${CIFAR10_DIR:-}" ] && [ -x "$REPO/../shared/tools/cifar10" ]; then
    CIFAR10_DIR="$("$REPO/../shared/tools/cifar10")"
fi
CIFAR10="${CIFAR10_DIR:-}"
[ -f "$CIFAR10/test_batch" ] || CIFAR10="$CIFAR10/cifar-10-batches-py"
[ -f "$CIFAR10/test_batch" ] || fail "no CIFAR-10 folder (set CIFAR10_DIR to cifar-10-batches-py)"
for name in layers.py models.py convnet.pt fcnet.pt; do
    [ -f "$SUBMISSION/$name" ] || fail "$SUBMISSION/$name is missing"
done

# 1. The pristine Ubuntu 22.04, built once and reused.
debootstrap_time="cached"
if [ ! -f "$BASE/.check-image-complete" ]; then
    echo "== debootstrap jammy (minbase) into $BASE"
    rm -rf "$BASE.partial" "$BASE"
    mkdir -p "$CACHE"
    keyring=(--no-check-gpg)
    for candidate in "$CACHE/ubuntu-archive-keyring.gpg" /usr/share/keyrings/ubuntu-archive-keyring.gpg; do
        if [ -f "$candidate" ]; then keyring=(--keyring "$candidate"); break; fi
    done
    start=$(now)
    debootstrap --variant=minbase "${keyring[@]}" jammy "$BASE.partial" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; fail "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    debootstrap_time="$(elapsed "$start" "$(now)") s"
    # The pockets of the ubuntu:22.04 image, so that apt installs today's jammy python3 (3.10.12).
    cat > "$BASE.partial/etc/apt/sources.list" <<EOF
deb $MIRROR jammy main restricted universe multiverse
deb $MIRROR jammy-updates main restricted universe multiverse
deb $MIRROR jammy-backports main restricted universe multiverse
deb $MIRROR jammy-security main restricted universe multiverse
EOF
    cp "$BASE.partial/usr/share/keyrings/ubuntu-archive-keyring.gpg" "$CACHE/" 2>/dev/null || true
    touch "$BASE.partial/.check-image-complete"
    mv "$BASE.partial" "$BASE"
fi

# 2. A fresh copy for this run, laid out as Gradescope does: the zip unpacked into
#    /autograder/source, run_autograder copied to /autograder/run_autograder.
echo "== fresh image in $ROOTFS"
# Mounts live in a private namespace per command (in_image), but never delete through one.
if findmnt -rn -o TARGET | grep -q "^$ROOTFS/"; then
    fail "something is still mounted under $ROOTFS (findmnt); unmount it first"
fi
rm -rf "$ROOTFS"
cp -a "$BASE" "$ROOTFS"
mkdir -p "$ROOTFS/autograder/source" "$ROOTFS/autograder/submission" "$ROOTFS/autograder/results" \
         "$ROOTFS/mnt/cifar10"
unzip -q "$ZIP" -d "$ROOTFS/autograder/source"
cp "$ROOTFS/autograder/source/run_autograder" "$ROOTFS/autograder/run_autograder"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# pip's CA bundle of this machine (its HTTPS goes through an inspecting proxy).
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
    cp "$PIP_CERT" "$ROOTFS/etc/check-image-pip-ca.crt"
fi
# A torch wheel given as a path on this machine is copied in and installed from there.
if [ "$TORCH_INSTALL" != skip ] && [ -f "$TORCH_INSTALL" ]; then
    mkdir -p "$ROOTFS/tmp/wheels"
    cp "$TORCH_INSTALL" "$ROOTFS/tmp/wheels/"
    TORCH_INSTALL="/tmp/wheels/$(basename "$TORCH_INSTALL")"
fi

# Runs one command in the image, inside a private mount namespace (nothing mounted here
# can outlive it), with /proc, /sys, /dev, /dev/pts, /dev/shm and the CIFAR-10 copy mounted,
# a trap unmounting them, and a clean environment. The image's root is bind-mounted onto
# itself so that / is a mount point in the chroot, as in Gradescope's container (the sandbox
# makes / private in the workers' mount namespace, which needs a mount point).
in_image() {
    # shellcheck disable=SC2016  # the script is expanded by the inner bash
    unshare --mount --propagation private -- bash -euo pipefail -c '
        root=$1; cifar=$2; shift 2
        cleanup() {
            for m in mnt/cifar10 dev/shm dev/pts dev sys proc ""; do
                if mountpoint -q "$root/$m"; then umount -l "$root/$m"; fi
            done
            return 0
        }
        trap cleanup EXIT
        mount --bind "$root" "$root"
        mount -t proc proc "$root/proc"
        mount -t sysfs -o ro sysfs "$root/sys"
        mount --bind /dev "$root/dev"
        mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
        mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
        mount --bind -o ro "$cifar" "$root/mnt/cifar10"
        mount -o remount,bind,ro "$root/mnt/cifar10"
        chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 "$@"
    ' check-image "$ROOTFS" "$CIFAR10" "$@"
}

pip_env=()
if [ -f "$ROOTFS/etc/check-image-pip-ca.crt" ]; then
    pip_env=(PIP_CERT=/etc/check-image-pip-ca.crt)
fi
[ -z "${PIP_DEFAULT_TIMEOUT:-}" ] || pip_env+=(PIP_DEFAULT_TIMEOUT="$PIP_DEFAULT_TIMEOUT")

# 3. setup.sh, as root, once.
echo "== setup.sh (AUTOGRADER_TORCH_INSTALL=$TORCH_INSTALL, CIFAR-10 copied from $CIFAR10)"
start=$(now)
in_image "${pip_env[@]}" AUTOGRADER_TORCH_INSTALL="$TORCH_INSTALL" AUTOGRADER_CIFAR10_FROM=/mnt/cifar10 AUTOGRADER_CIFAR10_1=skip \
    bash -c 'cd /autograder/source && bash ./setup.sh' 2>&1 | tee "$CACHE/setup.log" \
    || fail "setup.sh failed (log: $CACHE/setup.log)"
setup_time="$(elapsed "$start" "$(now)") s"
system_python="$(in_image python3 --version)"

# setup.sh's real download path (provided data.py: urlopen, tqdm, MD5 check, tar extraction)
# under the image's Python, from a file:// URL: an archive of two batches of the local copy.
echo "== data.py download path under the image's Python (file:// URL)"
mkdir -p "$ROOTFS/tmp/fake-cifar/src/cifar-10-batches-py"
cp "$CIFAR10/batches.meta" "$CIFAR10/test_batch" "$ROOTFS/tmp/fake-cifar/src/cifar-10-batches-py/"
tar -czf "$ROOTFS/tmp/fake-cifar/cifar-10-python.tar.gz" -C "$ROOTFS/tmp/fake-cifar/src" cifar-10-batches-py
in_image /opt/autograder-venv/bin/python - <<'PY' || fail "data.py could not download and unpack the archive"
import sys
sys.path.insert(0, "/autograder/source/autograder/provided")
import data
archive = "/tmp/fake-cifar/cifar-10-python.tar.gz"
folder = data.download_cifar10("/tmp/fake-cifar/out", url="file://" + archive, md5=data._md5(archive))
images, labels = data.load_batch(folder + "/test_batch")
print(f"data.py: downloaded, MD5-checked and unpacked into {folder}: {len(labels)} test images")
PY
rm -rf "$ROOTFS/tmp/fake-cifar"

# 4. The reference submission, then run_autograder as Gradescope runs it (root, cwd /autograder).
for name in layers.py models.py convnet.pt fcnet.pt; do
    cp "$SUBMISSION/$name" "$ROOTFS/autograder/submission/"
done
echo "== run_autograder"
start=$(now)
in_image bash -c 'cd /autograder && ./run_autograder > /autograder/results/stdout 2>&1; echo "exit status $?" >> /autograder/results/stdout'
run_time="$(elapsed "$start" "$(now)") s"
cat "$ROOTFS/autograder/results/stdout"
cp "$ROOTFS/autograder/results/stdout" "$CACHE/run_autograder.log"

# 5. results.json: the project's schema, then what the reference submission must score.
echo "== results.json"
summary="$(cd "$REPO" && "$HOST_PYTHON" - "$ROOTFS/autograder/results/results.json" \
           "$ROOTFS/autograder/results/stdout" "$TORCH_INSTALL" <<'PY'
import json
import sys

from autograder.results import validate
from autograder.rubric import load_rubric

path, stdout_path, torch_install = sys.argv[1:]
with open(path) as handle:
    results = json.load(handle)
validate(results)
stdout = open(stdout_path).read()
rubric = load_rubric()
part_of = {entry.number: entry.part for entry in rubric}
problems = []
for test in results["tests"]:
    part = part_of.get(test["number"], "?")
    first = test.get("output", "").splitlines()[0] if test.get("output") else ""
    print(f"  {test['number']:>5} [{part}] {test['score']:g}/{test['max_score']:g}  "
          f"{test['name']}: {first[:110]}", file=sys.stderr)
by_part = {}
for test in results["tests"]:
    by_part.setdefault(part_of.get(test["number"], "?"), []).append(test)
layers = by_part.get("layers", [])
layer_max = sum(e.points for e in rubric if e.part == "layers")
if sum(t["score"] for t in layers) != layer_max:
    problems.append(f"the layers part scored {sum(t['score'] for t in layers):g}, expected {layer_max:g}")
if "sandbox:" in stdout:
    problems.append("the sandbox warned (student code not confined as user student?)")
if "exit status 0" not in stdout:
    problems.append("run_autograder did not exit 0")
cnn = by_part.get("cnn", [])
if torch_install == "skip":
    if not cnn or any(t["score"] != 0 for t in cnn):
        problems.append("without torch every CNN test must score 0")
    if not all("The autograder itself failed" in t.get("output", "") for t in cnn):
        problems.append("without torch every CNN test must be an autograder error (not the student's fault)")
    if any("No module named 'torch'" in t.get("output", "") and "The autograder itself failed" not in t["output"]
           for t in cnn):
        problems.append("the CNN part blames the submission for the image's missing torch ('the submission "
                        "could not be imported: ModuleNotFoundError: No module named 'torch'')")
elif results["score"] != sum(e.points for e in rubric):
    problems.append(f"with torch the reference must score full marks, got {results['score']:g}")
for problem in problems:
    print(f"check_image.sh: {problem}", file=sys.stderr)
print(f"{results['score']:g}/{sum(e.points for e in rubric):g} (layers {sum(t['score'] for t in layers):g}/"
      f"{layer_max:g}, cnn {sum(t['score'] for t in cnn):g}/{sum(e.points for e in rubric if e.part == 'cnn'):g})")
sys.exit(1 if problems else 0)
PY
)" && valid=yes || valid=no

# 6. Who runs student code: a probe submission (the handout's layers.py, whose conv_forward
#    reports its user and Python and tries to reach the grader's files) graded the same way.
echo "== probe submission: who runs student code, and what can it reach"
rm -rf "$ROOTFS/autograder/submission" "$ROOTFS/autograder/results"
mkdir -p "$ROOTFS/autograder/submission" "$ROOTFS/autograder/results"
{ cat "$REPO/assignments/cnn/layers.py"; cat <<'PY'


def conv_forward(x, w, b, conv_param):
    import os, pwd, sys
    seen = [f"PROBE user={pwd.getpwuid(os.getuid()).pw_name} python={sys.version.split()[0]}"]
    for path in ("/autograder/source/autograder/cases/hidden/cases.json",
                 "/autograder/source/data/cifar-10-batches-py/test_batch", "/autograder/results/results.json"):
        try:
            with open(path, "ab" if path.endswith("results.json") else "rb") as handle:
                seen.append(f"LEAKED {path}")
        except OSError as exc:
            seen.append(f"DENIED {type(exc).__name__}")
    raise RuntimeError(" ".join(seen))
PY
} > "$ROOTFS/autograder/submission/layers.py"
in_image env AUTOGRADER_GRADE_ARGS="--part layers" bash -c \
    'cd /autograder && ./run_autograder > /autograder/results/stdout 2>&1' || true
probe="$("$HOST_PYTHON" -c '
import json, sys
tests = json.load(open(sys.argv[1]))["tests"]
print(next((line for line in tests[0]["output"].splitlines() if "PROBE" in line), "no probe line"))
' "$ROOTFS/autograder/results/results.json" 2>&1 | sed 's/.*\(PROBE.*\)/\1/')"
echo "   $probe"
# Denied: PermissionError by the permissions, FileNotFoundError where the sandbox's mount
# namespace hides the grader's tree.
case "$probe" in
    *LEAKED*) confined=no ;;
    "PROBE user=student python=3.10."*" DENIED "*" DENIED "*" DENIED "*) confined=yes ;;
    *) confined=no ;;
esac
if [ "$confined" = no ]; then
    valid=no
    echo "check_image.sh: student code must run as student under 3.10 and be denied the grader's files" >&2
fi

echo
echo "== check-image: $system_python in the image, torch: $TORCH_INSTALL"
echo "   debootstrap     $debootstrap_time"
echo "   setup.sh        $setup_time"
echo "   run_autograder  $run_time"
echo "   score           $summary"
echo "   student code    ${probe#PROBE }"
echo "   logs            $CACHE/{setup,run_autograder}.log; image left in $ROOTFS"
[ "$valid" = yes ] || fail "results.json did not pass (see above)"
echo "   results.json valid, expectations met"
