"""Hostile submissions (issue #6): each one is graded through the real command
line, as root with the worker dropped to `nobody`, and must end with a
schema-valid results.json, no score above what its honest code earns,
nothing hidden leaked, no process left behind, within the time budget.

A submission is a base layers.py (the reference, or the handout's stubs that
earn 0) plus appended hostile code; EXPECTED gives the score its honest part
earns (the hostile part earns nothing)."""
import importlib.util
import json
import shutil
import socket
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from autograder.cases import CASES_DIR
from autograder.results import SCHEMA, validate
from autograder.rubric import load_rubric
from autograder.sandbox import network_isolation

HERE = Path(__file__).resolve().parent


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


support = _load("hostile_support", HERE / "hostile" / "support.py")
corpus_support = _load("grader_support", HERE / "grader_corpus" / "support.py")

REPO = support.REPO
REFERENCE = REPO / "solutions" / "cnn" / "layers.py"
STUBS = REPO / "assignments" / "cnn" / "layers.py"
NOBODY = 65534
CALL_TIMEOUT = 2
TIME_BUDGET = 60
LAYER_POINTS = {entry.check: entry.points for entry in load_rubric() if entry.part == "layers"}
FORWARD_BACKWARD = {
    "conv": ("conv_forward", "conv_backward"),
    "max_pool": ("max_pool_forward", "max_pool_backward"),
    "avg_pool": ("avg_pool_forward", "avg_pool_backward"),
}


def without(*groups):
    """Full layer marks minus both checks of each (forward, backward) group: a
    backward needs its own forward's cache, so a broken forward costs both."""
    lost = sum(LAYER_POINTS[check] for group in groups for check in FORWARD_BACKWARD[group])
    return sum(LAYER_POINTS.values()) - lost


@dataclass
class Hostile:
    base: Path
    code: str
    score: float                      # what the honest part earns
    must_appear: str = ""             # in the outputs: proves the hostile code ran and was stopped


# Code that learns the grader's command line (world-readable /proc/PPID/cmdline).
GRADER_ARGUMENT = """
        import os
        def grader_argument(flag):
            words = open(f"/proc/{os.getppid()}/cmdline", "rb").read().split(b"\\0")
            return words[words.index(flag.encode()) + 1].decode()
"""

CORPUS = {
    "forge_results_json": Hostile(STUBS, GRADER_ARGUMENT + """
        import json
        fake = {"score": 1000.0, "tests": []}
        target = grader_argument("--results")
        for path in (target, os.path.join(os.path.dirname(target), "forged.json"),
                     "/autograder/results/results.json"):
            try:
                with open(path, "w") as handle:
                    json.dump(fake, handle)
            except OSError:
                pass
        print(json.dumps(fake))
    """, 0.0),
    "sys_exit_at_import": Hostile(REFERENCE, "raise SystemExit(0)\n", 0.0, "could not be imported"),
    "os_exit_at_import": Hostile(REFERENCE, "import os\nos._exit(0)\n", 0.0, "exited with code 0"),
    "kill_the_grader": Hostile(REFERENCE, """
        import os, signal
        _honest_conv_forward = conv_forward
        def conv_forward(x, w, b, conv_param):
            for kill in (lambda: os.kill(os.getppid(), signal.SIGKILL),
                         lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)):
                try:
                    kill()
                except OSError:
                    pass
            return _honest_conv_forward(x, w, b, conv_param)
    """, without()),
    "infinite_loop": Hostile(REFERENCE, """
        def conv_forward(x, w, b, conv_param):
            while True:
                pass
    """, without("conv"), "timed out"),
    "memory_bomb": Hostile(REFERENCE, """
        import numpy as np
        def max_pool_forward(x, pool_param):
            hoard = []
            while True:
                hoard.append(np.ones(1 << 27))    # 1 GB, written
    """, without("max_pool"), "MemoryError"),
    "fork_bomb": Hostile(REFERENCE, """
        import os, time
        def avg_pool_forward(x, pool_param):
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.05)
    """, without("avg_pool"), "timed out"),
    "detached_daemon": Hostile(REFERENCE, """
        import os, time
        _honest_dropout_forward = dropout_forward
        def dropout_forward(x, dropout_param):
            if os.fork() == 0:
                os.setsid()                   # leaves the worker's process group
                if os.fork() == 0:
                    time.sleep(600)
                os._exit(0)
            return _honest_dropout_forward(x, dropout_param)
    """, without()),
    "read_hidden_cases": Hostile(STUBS, GRADER_ARGUMENT + """
        def conv_forward(x, w, b, conv_param):
            stolen = []
            for path in (os.path.join(grader_argument("--cases-dir"), "hidden", "cases.json"),
                         f"/proc/{os.getppid()}/environ", "/autograder/source/autograder/cases/hidden/cases.json"):
                try:
                    stolen.append(open(path).read()[:300])
                except OSError as exc:
                    stolen.append(f"DENIED {type(exc).__name__}")
            if any(not text.startswith("DENIED") for text in stolen):
                raise RuntimeError("LEAKED " + " | ".join(stolen))
            raise RuntimeError(" | ".join(stolen))
    """, 0.0, "DENIED PermissionError"),
    "import_the_grader": Hostile(STUBS, GRADER_ARGUMENT + """
        import sys
        def conv_forward(x, w, b, conv_param):
            sys.path.insert(0, os.path.dirname(grader_argument("--cases-dir")))
            from cases import load_cases      # the grader's own module, next to its case data
            cases = load_cases(grader_argument("--cases-dir"))
            raise RuntimeError("LEAKED " + str(cases.group("conv")[-1].expected)[:300])
    """, 0.0, "ModuleNotFoundError"),
    "patch_numpy": Hostile(STUBS, """
        import numpy
        numpy.allclose = lambda *args, **kwargs: True
        numpy.array_equal = lambda *args, **kwargs: True
        numpy.testing.assert_allclose = lambda *args, **kwargs: None
        numpy.save = lambda *args, **kwargs: None
        numpy.isfinite = lambda value: numpy.ones(numpy.shape(value), dtype=bool)
        def conv_forward(x, w, b, conv_param):
            n, f = x.shape[0], w.shape[0]
            size = 1 + (x.shape[2] + 2 * conv_param["pad"] - w.shape[2]) // conv_param["stride"]
            width = 1 + (x.shape[3] + 2 * conv_param["pad"] - w.shape[3]) // conv_param["stride"]
            return numpy.zeros((n, f, size, width)), None
    """, 0.0),
    "lying_eq": Hostile(STUBS, """
        import numpy as np
        class Liar(np.ndarray):
            def __eq__(self, other):
                return True
            def __array_ufunc__(self, *args, **kwargs):
                return True
        class Anything:
            shape = property(lambda self: (1,))
            def __eq__(self, other):
                return True
        def conv_forward(x, w, b, conv_param):
            return np.zeros(x.shape).view(Liar), None
        def max_pool_forward(x, pool_param):
            return Anything(), None
    """, 0.0),
    "nan_outputs": Hostile(STUBS, """
        import numpy as np
        def conv_forward(x, w, b, conv_param):
            n, f = x.shape[0], w.shape[0]
            size = 1 + (x.shape[2] + 2 * conv_param["pad"] - w.shape[2]) // conv_param["stride"]
            width = 1 + (x.shape[3] + 2 * conv_param["pad"] - w.shape[3]) // conv_param["stride"]
            return np.full((n, f, size, width), np.nan), (x, w, b)
        def conv_backward(dout, cache):
            x, w, b = cache
            return np.full(x.shape, np.nan), np.full(w.shape, np.nan), np.full(b.shape, np.nan)
    """, 0.0),
    "stdout_flood": Hostile(REFERENCE, """
        import sys
        _honest_conv_forward = conv_forward
        def conv_forward(x, w, b, conv_param):
            line = "flood " * 10000 + "\\n"
            for _ in range(2000):            # 120 MB, over the 32 MB file-size limit
                sys.stdout.write(line)
            return _honest_conv_forward(x, w, b, conv_param)
    """, without()),                  # the worker drops output past its cap: nothing is lost
    "forge_results_linking_expected_arrays": Hostile(STUBS, GRADER_ARGUMENT + """
        import json, sys
        # At import: claim every conv_forward result over the grader's channel,
        # each "returned array" a link to the hidden expected output of its case.
        job_dir = sys.argv[1]
        job = json.load(open(os.path.join(job_dir, "job.json")))
        cases = os.path.join(grader_argument("--cases-dir"))
        names = [f"public/conv/p{i}" for i in range(1, 4)] + [f"hidden/conv/h{i}" for i in range(1, 13)]
        forwards = []                       # the leading conv_forward calls: one per case
        for step in job["steps"]:
            if step.get("call") != "layers.conv_forward":
                break
            forwards.append(step)
        lines = [{"ready": True}]
        for step, name in zip(forwards, names):
            link = f"forged-{step['id']}.npy"
            os.symlink(os.path.join(cases, f"{name}.exp.out.npy"), os.path.join(job_dir, "out", link))
            lines.append({"id": step["id"], "ok": True,
                          "value": {"tuple": [{"array": link}, {"object": "tuple"}]}})
        if forwards:
            os.write(job["channel_fd"], "".join(json.dumps(line) + "\\n" for line in lines).encode())
            os._exit(0)
    """, 0.0, "unreadable array"),
    "write_the_channel": Hostile(STUBS, """
        import os, json
        for fd in range(3, 32):
            try:
                os.write(fd, (json.dumps({"ready": True}) + "\\n").encode() * 3
                         + b'{"id": "s0", "ok": true, "value": {"number": 1}}\\n' * 50)
            except OSError:
                pass
    """, 0.0),
}


@pytest.fixture(scope="module")
def grader_setup():
    """An interpreter `nobody` can run, and a private copy of the case data
    (closed to other users, like /autograder/source on Gradescope)."""
    private = Path(tempfile.mkdtemp(prefix="hostile-grader-"))   # mode 0700, owned by root
    try:
        python = support.unprivileged_python()
        shutil.copytree(CASES_DIR, private / "cases")
        yield {"python": python, "cases": private / "cases"}
    finally:
        shutil.rmtree(private, ignore_errors=True)


def grade_hostile(folder, setup, results, *extra):
    started = time.monotonic()
    status, parsed, console = support.grade_in_subprocess(
        folder, results, "--part", "layers", "--worker-python", setup["python"],
        "--cases-dir", str(setup["cases"]), "--call-timeout", str(CALL_TIMEOUT),
        "--time-budget", str(TIME_BUDGET), *extra)
    return status, parsed, console, time.monotonic() - started


def assert_sound(parsed, status, console, honest_score):
    assert status == 0, console
    assert parsed is not None, "no results.json was written"
    validate(parsed)
    jsonschema.validate(parsed, SCHEMA)
    assert len(parsed["tests"]) == len(LAYER_POINTS)
    assert parsed["score"] <= honest_score + 1e-6
    assert parsed["score"] == pytest.approx(sum(t["score"] for t in parsed["tests"]))
    outputs = parsed["output"] + "\n".join(t["output"] for t in parsed["tests"])
    assert "LEAKED" not in outputs
    assert '"visibility": "hidden"' not in outputs


SLOW = {"memory_bomb", "fork_bomb", "infinite_loop"}   # several worker restarts or big writes


@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] if name in SLOW else [])
                                  for name in sorted(CORPUS)])
def test_hostile_submission_is_contained(tmp_path, grader_setup, name):
    hostile = CORPUS[name]
    before = set(support.processes_of(NOBODY))
    folder = corpus_support.make_submission(tmp_path / name, textwrap.dedent(hostile.code), hostile.base)
    status, parsed, console, seconds = grade_hostile(folder, grader_setup, tmp_path / "results.json")
    assert_sound(parsed, status, console, hostile.score)
    # The honest part is still graded: one bad function never zeroes the others.
    assert parsed["score"] == pytest.approx(hostile.score)
    if hostile.must_appear:
        assert hostile.must_appear in json.dumps(parsed), console
    assert seconds < TIME_BUDGET
    assert {p.name for p in tmp_path.iterdir()} == {name, "results.json", "results.html"}   # the grader's only
    assert set(support.processes_of(NOBODY)) <= before, "a worker process survived the grade"


def test_symlinked_files_and_folders_are_not_followed(tmp_path, grader_setup):
    submission = tmp_path / "upload"
    submission.mkdir()
    (submission / "layers.py").symlink_to(REFERENCE)
    (submission / "linked-folder").symlink_to(REFERENCE.parent, target_is_directory=True)
    status, parsed, console, _ = grade_hostile(submission, grader_setup, tmp_path / "results.json")
    assert_sound(parsed, status, console, 0.0)
    assert parsed["score"] == 0
    assert "layers.py is a symbolic link; upload the file itself" in parsed["tests"][0]["output"]


def test_network_is_unreachable_from_student_code(tmp_path, grader_setup):
    """A listener on this machine's loopback hears nothing from the worker:
    Python sockets are refused, and with a network namespace (root, or user
    namespaces allowed) even a raw libc connect() cannot reach it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    heard = []

    def listen():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            heard.append(connection.recv(100))
            connection.close()

    stop = threading.Event()
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    code = f"""
        import ctypes, socket, struct
        def conv_forward(x, w, b, conv_param):
            outcomes = []
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=1).sendall(b"python")
                outcomes.append("python socket CONNECTED")
            except OSError as exc:
                outcomes.append(f"python socket refused: {{exc}}")
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.socket(2, 1, 0)
            address = struct.pack("<HH4s8x", 2, socket.htons({port}), bytes([127, 0, 0, 1]))
            if libc.connect(fd, address, len(address)) == 0:
                libc.send(fd, b"libc", 4, 0)
                outcomes.append("libc socket CONNECTED")
            else:
                outcomes.append(f"libc connect failed: errno {{ctypes.get_errno()}}")
            raise RuntimeError("; ".join(outcomes))
    """
    folder = corpus_support.make_submission(tmp_path / "net", textwrap.dedent(code), STUBS)
    try:
        status, parsed, console, _ = grade_hostile(folder, grader_setup, tmp_path / "results.json")
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert_sound(parsed, status, console, 0.0)
    text = parsed["tests"][0]["output"]
    assert "python socket refused: network access is disabled while grading" in text
    assert b"python" not in heard
    if network_isolation():
        assert "libc connect failed: errno 101" in text      # ENETUNREACH: no interface is up
        assert heard == []
    else:
        # Documented limit: without a network namespace only Python-level sockets are blocked.
        assert "libc socket CONNECTED" in text


@pytest.mark.slow
def test_time_budget_marks_unstarted_checks_not_run(tmp_path, grader_setup):
    """Every function hangs: the budget stops grading early, the checks that
    could not start score 0 as not run, and results.json is complete."""
    code = """
        import time
        def _hang(*args, **kwargs):
            time.sleep(3600)
        conv_forward = conv_backward = max_pool_forward = max_pool_backward = _hang
        avg_pool_forward = avg_pool_backward = batchnorm_forward = batchnorm_backward = _hang
        spatial_batchnorm_forward = spatial_batchnorm_backward = _hang
        dropout_forward = dropout_backward = _hang
    """
    folder = corpus_support.make_submission(tmp_path / "slow", textwrap.dedent(code), REFERENCE)
    budget = 6
    started = time.monotonic()
    status, parsed, console = support.grade_in_subprocess(
        folder, tmp_path / "results.json", "--part", "layers", "--worker-python", grader_setup["python"],
        "--cases-dir", str(grader_setup["cases"]), "--call-timeout", "1", "--time-budget", str(budget))
    assert time.monotonic() - started < budget + 8
    assert_sound(parsed, status, console, 0.0)
    not_run = [t for t in parsed["tests"] if "time budget" in t["output"]]
    assert not_run, "no check reported the exhausted budget"
    assert all(t["score"] == 0 for t in parsed["tests"])


def test_forged_numerical_gradients_earn_nothing(tmp_path, grader_setup):
    """A wrong backward cannot make the numerical check agree with it: the
    finite differences are computed by the grader from forward outputs that a
    separate worker process returns, so nothing in the process that runs the
    backward (module state, patched helpers, numpy) can reach those numbers."""
    code = """
        import sys
        import numpy as np
        _honest_conv_backward = conv_backward
        _honest_conv_forward = conv_forward
        _seen = []
        def conv_backward(dout, cache):
            dx, dw, db = _honest_conv_backward(dout, cache)
            _seen.append((2 * dx, dw, db))
            return 2 * dx, dw, db                       # wrong dx
        def conv_forward(x, w, b, conv_param):
            # state kept for a forged check finds nothing in a fresh process
            return _honest_conv_forward(x, w, b, conv_param)
        for name in ("gradcheck", "worker_gradcheck"):
            if name in sys.modules:
                sys.modules[name].directional_derivatives = lambda *a, **k: None
    """
    folder = corpus_support.make_submission(tmp_path / "forge", textwrap.dedent(code), REFERENCE)
    status, parsed, console, _ = grade_hostile(folder, grader_setup, tmp_path / "results.json")
    by_tag = {tuple(t["tags"]): t for t in parsed["tests"]}
    assert by_tag[("conv_forward",)]["score"] == by_tag[("conv_forward",)]["max_score"]
    conv_backward = by_tag[("conv_backward",)]
    assert conv_backward["score"] < conv_backward["max_score"]
    assert "dx" in conv_backward["output"]


@pytest.mark.slow
def test_malicious_checkpoint_pickle_is_never_executed(tmp_path, grader_setup):
    """convnet.pt is a pickle whose loading would run a shell command: the
    worker's weights_only load refuses it, the rest of the CNN part is graded."""
    # A folder the worker can write to (the temporary folder, /var/tmp and
    # /dev/shm are hidden from it; the root folder is not): models.py leaves a
    # control file there at import, so the missing marker means the pickle did
    # not run, not that its write failed.
    drop = Path(tempfile.mkdtemp(prefix="hostile-pickle-", dir="/"))
    drop.chmod(0o1777)
    try:
        _grade_the_malicious_checkpoint(tmp_path, grader_setup, drop)
    finally:
        shutil.rmtree(drop)


def _grade_the_malicious_checkpoint(tmp_path, grader_setup, drop):
    marker, control = drop / "pickle-ran", drop / "models-imported"
    submission = tmp_path / "upload"
    submission.mkdir()
    shutil.copy(REPO / "solutions" / "cnn" / "fcnet.pt", submission / "fcnet.pt")
    (submission / "models.py").write_text((REPO / "solutions" / "cnn" / "models.py").read_text()
                                          + f"\nopen({str(control)!r}, 'w').close()\n")
    payload = (f"import os, pickle, torch\n"
               f"class Payload:\n"
               f"    def __reduce__(self):\n"
               f"        return (os.system, ('touch {marker}',))\n"
               f"torch.save({{'features.0.weight': Payload()}}, {str(submission / 'convnet.pt')!r})\n")
    support.run_python(payload)
    status, parsed, console = support.grade_in_subprocess(
        submission, tmp_path / "results.json", "--part", "cnn", "--data-dir", str(tmp_path / "no-data"),
        "--worker-python", grader_setup["python"], "--time-budget", str(TIME_BUDGET))
    assert status == 0, console
    validate(parsed)
    assert control.exists(), "the worker could not write to the drop folder: the test proves nothing"
    assert not marker.exists(), "the checkpoint's pickle code ran"
    by_name = {t["name"]: t for t in parsed["tests"]}
    convnet_checkpoint = next(t for name, t in by_name.items() if name.startswith("convnet.pt"))
    assert convnet_checkpoint["score"] == 0
    # Honest part: both architectures and fcnet.pt; no data, so nothing else can be earned.
    honest = sum(t["max_score"] for name, t in by_name.items()
                 if "architecture" in name or name.startswith("fcnet.pt"))
    assert parsed["score"] == pytest.approx(honest)
