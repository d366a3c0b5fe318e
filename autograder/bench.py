"""``python -m autograder.bench [SUBMISSION_DIR] [--parts layers,cnn]`` (``make bench``):
grade a submission (default: the reference, solutions/cnn) one part at a
time, each in a child process, and print what it cost: CPU-seconds of the
grader and all its workers, wall time, and peak resident memory, both of the
largest single process and summed over the process tree (sampled from
/proc). The whole grade costs about the sum of the parts' CPU and wall time
and the largest of their peaks (the parts run one after the other).

Then the reference numpy conv_forward + conv_backward against torch's conv2d
forward + backward on the same shapes (float64, one thread).
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


CONV_SHAPES = [
    # (x shape, w shape, conv_param): layers like the reference ConvNet's, batch 32
    ((32, 3, 32, 32), (64, 3, 3, 3), {"stride": 1, "pad": 1}),
    ((32, 64, 16, 16), (128, 64, 3, 3), {"stride": 1, "pad": 1}),
    ((32, 128, 8, 8), (192, 128, 3, 3), {"stride": 2, "pad": 1}),
]
CONV_REPEATS = 3


def best_time(function, repeats=CONV_REPEATS):
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def conv_comparison():
    """[(shapes text, numpy seconds, torch seconds)] for CONV_SHAPES."""
    import importlib.util

    import numpy as np
    import torch

    spec = importlib.util.spec_from_file_location("reference_layers", REPO / "solutions" / "cnn" / "layers.py")
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = []
    for x_shape, w_shape, param in CONV_SHAPES:
        x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])

        def numpy_pass():
            out, cache = layers.conv_forward(x, w, b, param)
            layers.conv_backward(np.ones_like(out), cache)

        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))

        def torch_pass():
            out = torch.nn.functional.conv2d(tx, tw, tb, stride=param["stride"], padding=param["pad"])
            out.backward(torch.ones_like(out))

        text = f"x {x_shape} w {w_shape} stride {param['stride']} pad {param['pad']}"
        rows.append((text, best_time(numpy_pass), best_time(torch_pass)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("submission_dir", nargs="?", default=str(REPO / "solutions" / "cnn"))
    parser.add_argument("--parts", default="layers,cnn",
                        help="comma-separated parts to measure one by one (layers, cnn, all)")
    parser.add_argument("--no-conv", action="store_true", help="skip the numpy vs torch conv timing")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = [part for part in parts if part not in ("layers", "cnn", "all")]
    if unknown:
        parser.error(f"--parts: unknown part(s) {', '.join(unknown)}; use layers, cnn or all")
    print(f"grading {args.submission_dir}")
    print(f"{'part':<8} {'CPU s':>8} {'wall s':>8} {'largest MB':>11} {'tree peak MB':>13}")
    totals, failures = [0.0, 0.0, 0, 0], 0
    for part in parts:
        with tempfile.TemporaryDirectory() as scratch:
            command = [sys.executable, "-m", "autograder", "grade", args.submission_dir,
                       "--part", part, "--results", os.path.join(scratch, "results.json")]
            status, cpu, wall, largest_kb, tree_kb = measure(command)
        failures += status != 0
        print(f"{part:<8} {cpu:8.1f} {wall:8.1f} {largest_kb / 1024:11.0f} {tree_kb / 1024:13.0f}"
              + (f"   (grading exited with status {status})" if status else ""))
        totals = [totals[0] + cpu, totals[1] + wall, max(totals[2], largest_kb), max(totals[3], tree_kb)]
    if len(parts) > 1 and "all" not in parts:
        print(f"{'whole':<8} {totals[0]:8.1f} {totals[1]:8.1f} {totals[2] / 1024:11.0f} {totals[3] / 1024:13.0f}"
              f"   (sum of CPU and wall, largest peaks)")
    print("targets: whole grade <= 150 CPU-s and <= 700 MB summed peak")
    if not args.no_conv:
        print("\nconv_forward + conv_backward, reference numpy vs torch conv2d (float64, 1 thread):")
        for text, numpy_seconds, torch_seconds in conv_comparison():
            print(f"  {text}: numpy {numpy_seconds * 1000:7.1f} ms, torch {torch_seconds * 1000:6.1f} ms "
                  f"({numpy_seconds / torch_seconds:.1f}x)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
