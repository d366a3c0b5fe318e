"""Helpers of the hostile-submission and Gradescope-zip tests.

The privilege separation of autograder/sandbox/ is only active when the
grader runs as root. The worker's user then runs the project's own
interpreter, even though it lives under /root here (mode 700): the worker's
mount namespace shows it the interpreter's folders and hides the grader's
(autograder/sandbox/confine.py, enter_mount_namespace).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class SetupError(Exception):
    pass


def unprivileged_python():
    """The interpreter to grade with as root so that student code runs as
    `nobody`: this one, once checked that the sandbox really drops to that
    user with it (Sandbox(user="nobody") refuses instead of falling back to
    root)."""
    if os.geteuid() != 0:
        raise SetupError("tests/hostile/support.py: unprivileged_python: the sandbox only drops "
                         "privileges when the grader runs as root; run these tests as root")
    # In a child process: a Sandbox makes its process a subreaper of orphans.
    check = "from autograder.sandbox import Sandbox; Sandbox(user='nobody')"
    probe = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        raise SetupError(f"tests/hostile/support.py: unprivileged_python: {sys.executable} cannot run "
                         f"student code as nobody: {probe.stderr.strip()[-800:]}")
    return sys.executable


def processes_of(uid):
    """PIDs of the live (not zombie) processes running with real uid `uid`
    that belong to no other program: climbing through their parents of that
    uid ends at init or at this test process (or a child of it), where the
    orphans of a grade end up. Workers of graders that other programs run at
    the same time (another test session) do not count."""
    table = {}                          # pid -> (real uid, parent pid, zombie)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        table[int(entry)] = (int(fields["Uid"].split()[0]), int(fields["PPid"]),
                             fields["State"].strip().startswith("Z"))

    def ours_or_orphaned(pid):
        while pid in table and table[pid][0] == uid:
            pid = table[pid][1]
        if pid in (0, 1) or pid not in table:
            return True                     # orphaned
        while pid not in (0, 1, os.getpid()) and pid in table:
            pid = table[pid][1]
        return pid == os.getpid()           # below this process

    return [pid for pid, (owner, _, zombie) in table.items()
            if owner == uid and not zombie and ours_or_orphaned(pid)]


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
