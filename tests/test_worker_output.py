"""What a submission prints (autograder/worker/worker.py, OutputGuard): past a cap,
stdout and stderr output is dropped without being formatted, so a submission
that prints heavily in every call scores and costs like a quiet one; prints to
the student's own files, the usual sys.stdout API and the staff's console tail
of a failed worker keep working; native writes past the file-size limit do
not kill the worker nor break its later calls."""
import textwrap
from pathlib import Path

from autograder.cases import CASES_DIR
from autograder.parts import GradingContext, load_part
from autograder.sandbox import Job, Limits, Sandbox
from autograder.submission import find_submission

REFERENCE_LAYERS = Path(__file__).resolve().parents[1] / "solutions" / "cnn" / "layers.py"
CHECKS = ["conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward"]

# Debugging the way students do, in every function the grader calls: the
# shapes of all arguments, the first input in full, a line per iteration of a
# loop (with a slice of the array and its sum), and the result. About 450 KB
# per call, ~40 MB over the four checks' jobs.
CHATTY = """
import functools

def _chatty(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        print("calling", function.__name__, "with", [getattr(a, "shape", a) for a in args])
        x = np.asarray(args[0])
        print(x)
        for i in range(60):
            for j in range(60):
                print("i", i, "j", j, "x.shape", x.shape, "window", x.ravel()[:4], "sum", x.sum())
        result = function(*args, **kwargs)
        print("result", result, flush=True)
        return result
    return wrapper

for _name in ["conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward"]:
    globals()[_name] = _chatty(globals()[_name])
"""


def grade_layers(folder):
    """(score fraction by check, CPU-seconds of the workers) of the checks in CHECKS."""
    sandbox = Sandbox()
    ctx = GradingContext(submission=find_submission(str(folder)), sandbox=sandbox, cases_dir=CASES_DIR)
    results = load_part("layers").grade(ctx, CHECKS)
    return {check: results[check].fraction for check in CHECKS}, sandbox.total_cpu_seconds


def test_a_submission_printing_heavily_in_every_call_scores_and_costs_like_a_quiet_one(tmp_path):
    quiet, loud = tmp_path / "quiet", tmp_path / "loud"
    quiet.mkdir()
    loud.mkdir()
    (quiet / "layers.py").write_text(REFERENCE_LAYERS.read_text())
    (loud / "layers.py").write_text(REFERENCE_LAYERS.read_text() + "\n" + CHATTY)
    quiet_scores, quiet_cpu = grade_layers(quiet)
    loud_scores, loud_cpu = grade_layers(loud)
    assert quiet_scores == {check: 1.0 for check in CHECKS}
    assert loud_scores == quiet_scores
    # The loud one still runs its loops and evaluates print's arguments, but
    # formats and writes nothing once its output is capped. (Before the cap it
    # took about 50 times the quiet CPU time and lost max_pool_backward cases
    # to "File too large".)
    assert loud_cpu < 3 * quiet_cpu + 1.0, (loud_cpu, quiet_cpu)


def student(tmp_path, code):
    path = tmp_path / "student.py"
    path.write_text(textwrap.dedent(code))
    return {"student.py": str(path)}


def run_calls(files, *functions, sandbox=None):
    job = Job("test", files=["student.py"])
    job.module("student", "student.py")
    ids = []
    for function in functions:
        job.new_unit()
        ids.append(job.call(f"student.{function}"))
    outcome = (sandbox or Sandbox()).run(job, files)
    return outcome, [outcome.results[step_id] for step_id in ids]


def test_prints_to_the_students_own_files_are_complete_after_the_cap(tmp_path):
    files = student(tmp_path, """
        import io, sys
        import numpy as np

        def flood():
            for i in range(20000):
                print("flood", i, np.arange(4.0))          # ~600 KB: well past the cap
            return "flooded"

        def own_files():
            with open("log.txt", "w") as log:
                for i in range(5000):
                    print("line", i, np.arange(3.0), sep=";", end="|\\n", file=log)
                log.write("written\\n")
            saved = sys.stdout
            sys.stdout = open("redirected.txt", "w")        # print() follows sys.stdout
            for i in range(5000):
                print("redirected", i)
            sys.stdout.close()
            sys.stdout = io.StringIO()
            print("into a StringIO", 42)
            captured = sys.stdout.getvalue()
            sys.stdout = saved
            lines = open("log.txt").read().splitlines()
            return [len(lines), lines[4999], lines[-1],
                    len(open("redirected.txt").read().splitlines()), captured]
    """)
    _, (flood, own) = run_calls(files, "flood", "own_files")
    assert flood.ok and flood.value == "flooded"
    assert own.ok, own.error_text()
    assert own.value == [5001.0, "line;4999;[0. 1. 2.]|", "written", 5000.0, "into a StringIO 42\n"]


def test_the_stdout_api_keeps_working_before_and_after_the_cap(tmp_path):
    files = student(tmp_path, """
        import contextlib, io, os, sys

        def use_the_api():
            seen = []
            for phase in range(2):
                sys.stdout.write("a" * 100000)               # the second round passes the cap
                sys.stderr.write("b" * 100000)
                print("flushed", flush=True)
                print("to stderr", file=sys.stderr, flush=True)
                sys.stdout.flush()
                sys.stdout.buffer.write(b"bytes\\n")
                sys.stdout.writelines(["x\\n", "y\\n"])
                seen.append([sys.stdout.fileno(), sys.stderr.fileno(), sys.stdout.write("abc"),
                             sys.stdout.isatty(), sys.stdout.encoding.lower().replace("-", "")])
                buffer = io.StringIO()
                with contextlib.redirect_stdout(buffer):
                    print("captured", phase)
                seen.append(buffer.getvalue())
                sys.stdout = sys.__stdout__                  # the usual way to undo a redirection
                print(*range(10000))
            os.write(sys.stdout.fileno(), b"native\\n")
            sys.stdout.close()
            print("after close")
            return seen
    """)
    _, (result,) = run_calls(files, "use_the_api")
    assert result.ok, result.error_text()
    assert result.value == [[1.0, 2.0, 3.0, False, "utf8"], "captured 0\n",
                            [1.0, 2.0, 3.0, False, "utf8"], "captured 1\n"]


def test_a_crashed_workers_console_tail_survives_the_cap(tmp_path, capsys):
    files = student(tmp_path, """
        import os, sys

        def flood_then_vanish():
            for i in range(100000):
                print("flood", i)                            # ~1.2 MB
            os.write(2, b"native last words")
            os._exit(3)
    """)
    _, (result,) = run_calls(files, "flood_then_vanish")
    console = capsys.readouterr().err
    assert not result.ok and "exited with code 3" in result.error_text()
    assert "sandbox: worker of test: the worker process exited with code 3" in console
    stdout_size = int(console.split("its stdout (")[1].split(" bytes)")[0])
    assert 100_000 < stdout_size < 200_000                  # the first part, not 1.2 MB
    assert "this stream is cut here" in console
    assert "native last words" in console


def test_a_huge_native_write_neither_kills_the_worker_nor_breaks_later_calls(tmp_path):
    files = student(tmp_path, """
        import ctypes, os

        def native_flood():
            libc = ctypes.CDLL(None)
            chunk = b"n" * (1 << 20)
            failures = 0
            for _ in range(12):                              # 12 MB into an 8 MB file-size limit
                if libc.write(1, chunk, len(chunk)) < 0:
                    failures += 1                            # EFBIG, and no SIGXFSZ
            return failures

        def python_flood():
            data = b"p" * (12 << 20)
            try:
                while data:
                    data = data[os.write(2, data):]
            except OSError as exc:
                return exc.strerror
            return "no error"

        def print_after():
            for i in range(2000):
                print("after the flood", i)
            os.write(1, b"native after\\n")
            return "fine"
    """)
    sandbox = Sandbox(limits=Limits(file_size_mb=8))
    outcome, (native, after_native, python, after_python) = run_calls(
        files, "native_flood", "print_after", "python_flood", "print_after", sandbox=sandbox)
    assert outcome.launches == 1
    assert native.ok and native.value >= 1.0, native.error_text()
    assert python.ok and python.value == "File too large", python.error_text()
    for after in (after_native, after_python):
        assert after.ok and after.value == "fine", after.error_text()
