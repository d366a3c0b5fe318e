"""Helpers of the hostile-submission and Gradescope-zip tests.

The privilege separation of autograder/sandbox.py is only active when the
grader runs as root AND the worker's user can run the worker's interpreter.
This machine's venv interpreter lives under /root (closed to other users), so
the tests build a tiny venv on the system python of the same version whose
site-packages point at the project venv's: the same numpy and torch, runnable
by `nobody`.
"""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
SYSTEM_PYTHONS = (f"/usr/bin/python{VERSION}", f"/usr/local/bin/python{VERSION}")


class SetupError(Exception):
    pass


def unprivileged_python(folder):
    """Path of an interpreter with this venv's packages that `nobody` can run,
    created in folder (which must be readable by everyone)."""
    if os.geteuid() != 0:
        raise SetupError("tests/hostile/support.py: unprivileged_python: the sandbox only drops "
                         "privileges when the grader runs as root; run these tests as root")
    for candidate in (sys.executable,) + SYSTEM_PYTHONS:
        if can_run_as_nobody(candidate, "import numpy"):
            return candidate
    base = next((p for p in SYSTEM_PYTHONS if can_run_as_nobody(p, "pass")), None)
    if base is None:
        raise SetupError(f"tests/hostile/support.py: unprivileged_python: no Python {VERSION} "
                         f"that user nobody may run (looked at {', '.join(SYSTEM_PYTHONS)})")
    venv = Path(folder) / "worker-venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = str(venv / "bin" / "python")
    if not can_run_as_nobody(python, "import numpy"):
        raise SetupError(f"tests/hostile/support.py: unprivileged_python: {python} cannot import "
                         f"numpy as user nobody (is {sysconfig.get_paths()['purelib']} readable?)")
    return python


def can_run_as_nobody(python, code):
    if not os.path.exists(python):
        return False
    probe = subprocess.run(["runuser", "-u", "nobody", "--", python, "-I", "-c", code], cwd="/",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return probe.returncode == 0


def processes_of(uid):
    """PIDs of the live (not zombie) processes running with real uid `uid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            pids.append(int(entry))
    return pids


def grade_in_subprocess(submission, results, *options, timeout=120):
    """`python -m autograder grade` in a child process (a hostile submission may
    try to kill its grader); returns (exit status, parsed results.json, console text)."""
    command = [sys.executable, "-m", "autograder", "grade", str(submission), "--results", str(results),
               *options]
    # No CIFAR10_DIR: a test that wants the data passes --data-dir itself.
    env = {key: value for key, value in os.environ.items() if key != "CIFAR10_DIR"}
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    parsed = json.loads(Path(results).read_text()) if Path(results).is_file() else None
    return completed.returncode, parsed, completed.stdout + completed.stderr


def run_python(code):
    """Run code with this interpreter in a child process (e.g. to write a fixture with torch)."""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
