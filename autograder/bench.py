"""``python -m autograder.bench [SUBMISSION_DIR] [--part PART]`` (``make bench``):
grade a submission (default: the reference, solutions/cnn) in a child
process and print what it cost: CPU-seconds of the grader and all its
workers, wall time, and peak resident memory, both of the largest single
process and summed over the process tree (sampled from /proc).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE_SECONDS = 0.02


def tree_rss_kb(root_pid):
    """Resident memory of root_pid and all its descendants, in kB (Linux /proc)."""
    children, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as handle:
                pages = int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measure(command):
    """Run command; returns (exit status, CPU-s, wall s, largest process kB, summed tree peak kB)."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_kb(process.pid))
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # wait4 reports the child's usage including every descendant it waited for.
    errors = process.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    wall = time.monotonic() - started
    if process.returncode != 0:
        sys.stderr.write(errors)
    return process.returncode, usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss, peak[0]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("submission_dir", nargs="?", default=str(REPO / "solutions" / "cnn"))
    parser.add_argument("--part", choices=["layers", "cnn", "all"], default="layers")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "autograder", "grade", args.submission_dir,
                   "--part", args.part, "--results", os.path.join(scratch, "results.json")]
        status, cpu, wall, largest_kb, tree_kb = measure(command)
    print(f"grade {args.submission_dir} --part {args.part}")
    print(f"  CPU time     {cpu:6.1f} s   (grader and all worker processes)")
    print(f"  wall time    {wall:6.1f} s")
    print(f"  peak memory  {largest_kb / 1024:6.0f} MB  largest single process")
    print(f"               {tree_kb / 1024:6.0f} MB  summed over the process tree (sampled)")
    if status != 0:
        print(f"  (grading exited with status {status})")
    return status


if __name__ == "__main__":
    sys.exit(main())
