"""``python -m autograder bench [SUBMISSION_DIR] [--parts layers,cnn]`` (``make bench``):
grade a submission (default: the reference, solutions/cnn) one part at a
time, each in a child process, and print what it cost: CPU-seconds of the
grader and all its workers, wall time, and peak resident memory, both of the
largest single process and summed over the process tree (sampled from
/proc). The whole grade costs about the sum of the parts' CPU and wall time
and the largest of their peaks (the parts run one after the other).

Then the reference numpy conv_forward + conv_backward against torch's conv2d
forward + backward on the same shapes (float64, one thread).

Then whole grades in a box like Gradescope's default machine (autograder/bench/box.py:
a cgroup with 0.5 CPU and 768 MB, memory + swap; root only, and it says why
when it cannot make one), of the reference and of a synthetic submission at
the limits of the rules (write_at_limits_submission): wall time, CPU time,
peak memory, OOM kills, score and the checks lost to the clock. The CPU kind
is printed too: the same grade costs about 1.7-2.5x more CPU time on an
AVX2-only host than on an AVX-512-BF16 one. ``--box-only`` runs just these;
the submission argument does not apply to them.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from autograder.bench.at_limits import write_at_limits_submission
from autograder.speed import best_time
from autograder.pictures.html import as_text

from autograder.layout import PACKAGE, REFERENCE_DIR
SAMPLE_SECONDS = 0.02
MB = 1024 * 1024


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
    process = subprocess.Popen(command, cwd=PACKAGE.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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




def conv_comparison():
    """[(shapes text, numpy seconds, torch seconds)] for CONV_SHAPES."""
    import importlib.util

    import numpy as np
    import torch

    spec = importlib.util.spec_from_file_location("reference_layers", REFERENCE_DIR / "layers.py")
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
        rows.append((text, best_time(numpy_pass, CONV_REPEATS), best_time(torch_pass, CONV_REPEATS)))
    return rows


# ---- Runs in a box like Gradescope's default machine -----------------------

def cpu_kind():
    """'model name (AVX-512-BF16)' or '(AVX2)' or '(neither AVX-512-BF16 nor AVX2)', from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU (no /proc/cpuinfo)"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), "unknown model")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines()
                      if line.startswith("flags")), []))
    kind = "AVX-512-BF16" if "avx512_bf16" in flags else "AVX2, no AVX-512-BF16" if "avx2" in flags \
        else "neither AVX-512-BF16 nor AVX2"
    return f"{model} ({kind})"


def lost_to_clock(results):
    """Names of the checks in a results.json mapping whose output starts with
    'not run' or mentions 'timed out': points lost to the clock."""
    lost = []
    for test in results.get("tests", []):
        output = as_text(str(test.get("output", "")), test.get("output_format", "text"))
        if output.lower().startswith("not run") or "timed out" in output.lower():
            lost.append(str(test.get("name", test.get("number", "?"))))
    return lost


# The grade as run_autograder runs it, except that fresh_data accepts the
# stand-in CIFAR-10.1 files (their MD5s, argv[1]) in place of the published ones.
STAND_IN_GRADE = ("import json, sys; from autograder.parts.cnn import fresh_data; "
                  "fresh_data.MD5.update(json.loads(sys.argv[1])); from autograder import cli; "
                  "sys.exit(cli.main(['grade'] + sys.argv[2:]))")


def stand_in_data_dir(folder, cifar10_dir):
    """A data folder laid out as on Gradescope when setup.sh could fetch
    CIFAR-10.1 (which cannot be downloaded here): cifar10_dir linked as
    cifar-10-batches-py and, beside it, 2,000 CIFAR-10 training images in
    CIFAR-10.1's published format, so that a boxed grade pays for the fresh
    images as it would there. Returns {file name: MD5} of the stand-ins."""
    import numpy as np

    from autograder import provided
    from autograder.parts.cnn import fresh_data

    folder = Path(folder)
    (folder / fresh_data.BATCHES_FOLDER).symlink_to(Path(cifar10_dir).resolve(), target_is_directory=True)
    images, labels = provided.load_data_module().load_batch(str(Path(cifar10_dir) / "data_batch_1"))
    fresh = folder / fresh_data.FOLDER
    fresh.mkdir()
    np.save(fresh / fresh_data.IMAGES_FILE, np.ascontiguousarray(images[:2000].transpose(0, 2, 3, 1)))
    np.save(fresh / fresh_data.LABELS_FILE, labels[:2000].astype(np.int64))
    return {name: fresh_data._md5(fresh / name) for name in (fresh_data.IMAGES_FILE, fresh_data.LABELS_FILE)}


def boxed_grade(submission, cpu, memory_mb, timeout, data_dir, stand_in_md5):
    """Grade submission in a fresh box with the data of data_dir (stand-in
    CIFAR-10.1 included); (BoxResult, score text, [checks lost to the clock],
    stderr tail, whether CIFAR-10.1 was used)."""
    import json

    from autograder.bench.box import run_in_box

    with tempfile.TemporaryDirectory() as scratch:
        results_path = Path(scratch) / "results.json"
        errors_path = Path(scratch) / "stderr.txt"
        with open(errors_path, "wb") as errors:
            result = run_in_box([sys.executable, "-c", STAND_IN_GRADE, json.dumps(stand_in_md5), str(submission),
                                 "--results", str(results_path), "--data-dir", str(data_dir)],
                                cpu=cpu, memory_mb=memory_mb, timeout=timeout, cwd=PACKAGE.parent,
                                stdout=subprocess.DEVNULL, stderr=errors)
        tail = errors_path.read_text(errors="replace")[-2000:]
        try:
            results = json.loads(results_path.read_text())
        except (OSError, ValueError):
            return result, "no results.json", [], tail, False
    score = results.get("score")
    total = sum(float(test.get("max_score", 0)) for test in results.get("tests", []))
    score_text = f"{float(score):.1f}/{total:.0f}" if isinstance(score, (int, float)) else "no score"
    models = results.get("extra_data", {}).get("integrity", {}).get("models", {})
    fresh = bool(models) and all("fresh_accuracy" in figures for figures in models.values())
    return result, score_text, lost_to_clock(results), tail, fresh


def box_runs(args):
    """Print the boxed runs of the reference and the at-limits submission (or why there are none)."""
    from autograder.bench.box import box_available
    from autograder.parts.cnn.settings import load_settings
    from autograder.rubric import RUBRIC_PATH

    print(f"\nin a box of {args.box_cpu:g} CPU and {args.box_memory_mb} MB (memory + swap), "
          f"killed at {args.box_timeout:.0f} s; CPU: {cpu_kind()}")
    reason = box_available(args.box_cpu, args.box_memory_mb)
    if reason:
        print(f"  no box: {reason}")
        return
    from autograder import provided

    data = provided.load_data_module()
    try:
        cifar10_dir = data.find_cifar10()
    except data.DatasetError as exc:
        print(f"  no box runs: {exc}")
        return
    settings = load_settings(RUBRIC_PATH)
    with tempfile.TemporaryDirectory() as limits_dir, tempfile.TemporaryDirectory() as data_dir:
        stand_in_md5 = stand_in_data_dir(data_dir, cifar10_dir)
        print("  the data as on Gradescope when setup.sh could fetch CIFAR-10.1: CIFAR-10 and, standing in "
              "for CIFAR-10.1, 2,000 of its training images in that format")
        measured = write_at_limits_submission(limits_dir, settings)
        print("  at-limits submission (measured as the grader does / the rubric's limit):")
        for name, prefix in (("ConvNet", "convnet"), ("FCNet", "fcnet")):
            print(f"    {name}: " + ", ".join(
                f"{key.replace('_', '-')} {measured[name][key]:,.0f} / {settings[f'{prefix}_max_{key}']:,}"
                for key in ("parameters", "multiply_adds", "activations")))
        print(f"  {'submission':<11} {'wall s':>7} {'CPU s':>7} {'peak MB':>8} {'anon MB':>8} {'OOM kills':>9} "
              f"{'score':>10}  lost to the clock")
        for label, submission in (("reference", REFERENCE_DIR), ("at-limits", limits_dir)):
            result, score, lost, tail, fresh = boxed_grade(submission, args.box_cpu, args.box_memory_mb,
                                                           args.box_timeout, data_dir, stand_in_md5)
            note = "" if result.status == 0 else f"  (grading exited with status {result.status}" + (
                ", killed at the timeout)" if result.timed_out else ")")
            if not fresh:
                note += "  (CIFAR-10.1 stand-in not used)"
            print(f"  {label:<11} {result.wall:7.1f} {result.cpu:7.1f} {result.peak_bytes / MB:8.0f} "
                  f"{result.peak_anon_bytes / MB:8.0f} {result.oom_kills:9d} {score:>10}  "
                  f"{', '.join(lost) or 'none'}{note}")
            if result.status != 0 and tail.strip():
                sys.stderr.write(f"--- end of the {label} grade's stderr ---\n{tail}\n")
    print("  peak MB: the box's peak charge (anonymous memory and page cache, what the limit counts);"
          " anon MB: the largest anonymous memory sampled")
    print("  targets: reference <= 150 s wall and <= 600 MB peak; at-limits <= 400 s wall, "
          "no OOM kill, nothing lost to the clock")


def add_arguments(parser):
    parser.add_argument("submission_dir", nargs="?", default=str(REFERENCE_DIR))
    parser.add_argument("--parts", default="layers,cnn",
                        help="comma-separated parts to measure one by one (layers, cnn, all)")
    parser.add_argument("--no-conv", action="store_true", help="skip the numpy vs torch conv timing")
    parser.add_argument("--no-box", action="store_true",
                        help="skip the whole grades in a box like Gradescope's default machine")
    parser.add_argument("--box-only", action="store_true",
                        help="only the whole grades in the box (reference and at-limits submission)")
    parser.add_argument("--box-cpu", type=float, default=0.5,
                        help="the box's CPU quota, a fraction of one CPU (default 0.5, Gradescope's default "
                             "machine). The same grade costs about 1.7-2.5x more CPU time on an AVX2-only "
                             "host (plausibly Gradescope's) than on an AVX-512-BF16 one, so on an "
                             "AVX-512-BF16 host a smaller quota (e.g. 0.29) stands in for the default box "
                             "on an AVX2 host")
    parser.add_argument("--box-memory-mb", type=int, default=768,
                        help="the box's memory limit, swap included (default 768: over it the kernel kills)")
    parser.add_argument("--box-timeout", type=float, default=600,
                        help="wall seconds after which a boxed grade is killed (default 600, Gradescope's)")


def run(args):
    if not 0 < args.box_cpu <= os.cpu_count():
        _usage_error(f"--box-cpu: expected a fraction of one CPU in (0, {os.cpu_count()}], got {args.box_cpu}")
    if args.box_only:
        if args.no_box:
            _usage_error("--box-only and --no-box exclude each other")
        print(f"CPU: {cpu_kind()}")
        box_runs(args)
        return 0
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = [part for part in parts if part not in ("layers", "cnn", "all")]
    if unknown:
        _usage_error(f"--parts: unknown part(s) {', '.join(unknown)}; use layers, cnn or all")
    print(f"grading {args.submission_dir}; CPU: {cpu_kind()}")
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
    print("(unboxed, for comparing versions; the targets apply in the box of Gradescope's default machine)")
    if not args.no_conv:
        print("\nconv_forward + conv_backward, reference numpy vs torch conv2d (float64, 1 thread):")
        for text, numpy_seconds, torch_seconds in conv_comparison():
            print(f"  {text}: numpy {numpy_seconds * 1000:7.1f} ms, torch {torch_seconds * 1000:6.1f} ms "
                  f"({numpy_seconds / torch_seconds:.1f}x)")
    if not args.no_box:
        box_runs(args)
    return 1 if failures else 0



def _usage_error(message):
    print(f"bench: {message}", file=sys.stderr)
    sys.exit(2)
