"""Running submission code: the only module that starts worker processes.

A check describes the calls it needs as a Job (a list of steps, see
autograder/worker.py for the wire format), and Sandbox.run(job, submission)
runs it in a fresh worker process and returns plain data: numbers, strings,
numpy arrays loaded with allow_pickle=False, and Opaque/Unsupported markers
for everything else. Nothing the worker returns is ever executed or unpickled.

Steps are grouped in units (normally one test case each): references between
steps stay inside a unit, so when a step hangs or kills its process the rest
of its unit fails with it and a new worker resumes with the next unit.

The process policy (command line, environment, process group, timeouts) sits
in Sandbox.launch and Sandbox.environment, so that hardening (an unprivileged
user, resource limits, no network) changes only this module.
"""
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORKER_SCRIPT = HERE / "worker.py"
GRADCHECK_HELPER = HERE / "worker_gradcheck.py"

CALL_TIMEOUT = 10.0             # seconds of wall time for one call (times its timeout_scale)
IMPORT_TIMEOUT = 20.0           # starting Python, numpy and the submission's modules
MAX_LAUNCHES = 3                # workers per job: the first, plus restarts after a hang or crash
MAX_LINE_BYTES = 1 << 20
ARRAY_NAME = re.compile(r"[A-Za-z0-9_.-]+\.npy")


class Encoded(dict):
    """A value already in the worker's wire format (a reference, a function)."""


@dataclass(frozen=True)
class Opaque:
    """A Python object the worker could only name (e.g. a forward cache)."""
    type_name: str


@dataclass(frozen=True)
class Unsupported:
    """A returned value that cannot be passed back as data, and why."""
    reason: str


@dataclass
class StepResult:
    ok: bool
    value: object = None
    args: dict = field(default_factory=dict)   # argument index -> value after the call
    error: dict = None                          # kind, type, message, where

    def error_text(self):
        """One readable paragraph: what went wrong and where in the submission."""
        error = self.error or {}
        kind = error.get("kind")
        if kind == "exception":
            text = f"raised {error.get('type')}: {error.get('message')}".rstrip(": ")
        else:
            text = error.get("message", "failed")
        where = error.get("where") or []
        if where:
            text += "\n  Traceback (your code, most recent call last):\n" + "\n".join(
                "    " + line.replace("\n", "\n    ") for line in where)
        return text


@dataclass
class JobOutcome:
    results: dict                 # step id -> StepResult, for every step of the job
    launches: int = 0             # worker processes started


class Job:
    """Calls to run in one worker process.

    >>> job = Job("conv_forward", files=["layers.py"])
    >>> job.module("layers", "layers.py")
    >>> job.new_unit()
    >>> forward = job.call("layers.conv_forward", x, w, b, {"stride": 1, "pad": 1},
    ...                    encode="out_cache", report=[0, 1, 2])
    >>> job.call("layers.conv_backward", dout, job.ref(forward, 1))
    """

    def __init__(self, name, files):
        self.name = name
        self.files = list(files)      # submission files the worker needs
        self.modules = {}
        self.helpers = {}
        self.steps = []
        self.arrays = {}
        self.units = []               # lists of step ids

    def module(self, name, filename):
        """Import submission file `filename` as module `name`."""
        self.modules[name] = filename

    def helper(self, name, path):
        """Load trusted helper code (from the autograder folder) as module `name`."""
        self.helpers[name] = str(path)

    def new_unit(self):
        self.units.append([])

    def array(self, value):
        name = f"in/a{len(self.arrays)}.npy"
        self.arrays[name] = np.ascontiguousarray(value)
        return Encoded(array=name)

    def value(self, value):
        """Wire encoding of a Python value made of arrays, numbers, strings,
        lists, tuples and dicts."""
        if isinstance(value, Encoded):
            return value
        if isinstance(value, np.ndarray):
            return self.array(value)
        if isinstance(value, dict):
            return {"dict": {str(key): self.value(item) for key, item in value.items()}}
        if isinstance(value, tuple):
            return {"tuple": [self.value(item) for item in value]}
        if isinstance(value, list):
            return {"list": [self.value(item) for item in value]}
        if isinstance(value, np.generic):
            return {"json": value.item()}
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"json": value}
        raise TypeError(f"Job.value: cannot send a {type(value).__name__} to the worker")

    @staticmethod
    def ref(step_id, *index):
        """The Python object an earlier step of the same unit returned (or an item of it)."""
        return Encoded(ref=step_id, index=list(index))

    @staticmethod
    def func(target):
        """A function of a loaded module, e.g. to hand the student's forward to a helper."""
        return Encoded(func=target)

    def _add(self, step):
        if not self.units:
            self.new_unit()
        step["id"] = f"s{len(self.steps)}"
        self.steps.append(step)
        self.units[-1].append(step["id"])
        return step["id"]

    def call(self, target, *args, encode="all", report=(), timeout_scale=1.0, **kwargs):
        """Call module.function(*args, **kwargs); returns the step id.

        encode: "all" (return the whole result as data), "out_cache" (the
        result must be a pair; only its first item comes back) or "none".
        report: indices of arguments to send back as they are after the call.
        timeout_scale: this call may take that many times the sandbox's call timeout.
        """
        return self._add({"call": target, "args": [self.value(arg) for arg in args],
                          "kwargs": {key: self.value(arg) for key, arg in kwargs.items()},
                          "encode": encode, "report": list(report),
                          "timeout_scale": float(timeout_scale)})

    def let(self, value):
        """Keep a value in the worker (e.g. a bn_param dict several calls share)."""
        return self._add({"let": self.value(value), "timeout_scale": 1.0})

    def wire(self, steps):
        return {"helpers": self.helpers, "modules": self.modules, "steps": steps}


class Sandbox:
    def __init__(self, python=sys.executable, call_timeout=CALL_TIMEOUT, import_timeout=IMPORT_TIMEOUT,
                 max_launches=MAX_LAUNCHES, deadline=None):
        self.python = python
        self.call_timeout = call_timeout
        self.import_timeout = import_timeout
        self.max_launches = max_launches
        self.deadline = deadline          # time.monotonic() after which nothing more runs
        self.total_cpu_seconds = 0.0      # user + system time of every worker so far

    # -- process policy ------------------------------------------------------
    def environment(self, workdir):
        single_thread = "1"
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": single_thread,
            "OPENBLAS_NUM_THREADS": single_thread,
            "MKL_NUM_THREADS": single_thread,
            "MPLBACKEND": "Agg",
        }

    def launch(self, job_dir, workdir, channel_fd, stdout, stderr):
        """Start the worker in its own session (so its whole process group can be killed)."""
        return subprocess.Popen(
            [self.python, "-I", "-B", str(WORKER_SCRIPT), str(job_dir)],
            cwd=workdir, env=self.environment(workdir), stdin=subprocess.DEVNULL,
            stdout=stdout, stderr=stderr, pass_fds=(channel_fd,), start_new_session=True)

    @staticmethod
    def kill(process):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    # -- running jobs ----------------------------------------------------------
    def run(self, job, submission):
        """Run every step of job; submission maps file names to paths (a
        missing name means the file was not submitted)."""
        outcome = JobOutcome(results={})
        missing = [name for name in job.files if name not in submission]
        if missing:
            names = ", ".join(missing)
            for step in job.steps:
                outcome.results[step["id"]] = StepResult(False, error={
                    "kind": "missing_file",
                    "message": f"not run: {names} was not found in the submission"})
            return outcome

        units = [list(unit) for unit in job.units]
        steps_by_id = {step["id"]: step for step in job.steps}
        while units:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self._fail_units(outcome, units, "not_run", "not run: the grading time budget ran out")
                break
            if outcome.launches >= self.max_launches:
                self._fail_units(outcome, units, "not_run",
                                 f"not run: the worker process failed {outcome.launches} times "
                                 f"in {job.name}; the remaining calls were skipped")
                break
            steps = [steps_by_id[step_id] for unit in units for step_id in unit]
            received, failure = self._launch_once(job, steps, submission, outcome)
            outcome.results.update(received)
            if failure is None:
                break
            if failure.get("kind") == "import_error":
                self._fail_units(outcome, units, "import_error", failure["message"], failure)
                break
            # The first step without a result is the one that hung or crashed.
            failed_id = next(step["id"] for step in steps if step["id"] not in received)
            failed_unit = next(i for i, unit in enumerate(units) if failed_id in unit)
            outcome.results[failed_id] = StepResult(False, error=failure)
            rest = [step_id for step_id in units[failed_unit] if step_id not in outcome.results]
            self._fail_units(outcome, [rest], "dependency",
                             "not run: an earlier call of the same case failed")
            units = units[failed_unit + 1:]
        return outcome

    @staticmethod
    def _fail_units(outcome, units, kind, message, error=None):
        for unit in units:
            for step_id in unit:
                if step_id not in outcome.results:
                    outcome.results[step_id] = StepResult(False, error=dict(
                        error or {}, kind=kind, message=message))

    def _launch_once(self, job, steps, submission, outcome):
        """One worker process over `steps`. Returns (results received, failure
        or None when the worker finished every step)."""
        root = Path(tempfile.mkdtemp(prefix="autograder-job-"))
        try:
            workdir = root / "submission"
            workdir.mkdir()
            for name in job.files:
                shutil.copyfile(submission[name], workdir / name)
            (root / "in").mkdir()
            (root / "out").mkdir()
            for name, array in job.arrays.items():
                np.save(root / name, array, allow_pickle=False)
            read_fd, write_fd = os.pipe()
            wire = dict(job.wire(steps), channel_fd=write_fd)
            (root / "job.json").write_text(json.dumps(wire))
            with open(root / "stdout.txt", "wb") as stdout, open(root / "stderr.txt", "wb") as stderr:
                try:
                    process = self.launch(root, workdir, write_fd, stdout, stderr)
                finally:
                    os.close(write_fd)
                outcome.launches += 1
                try:
                    messages, failure = self._read_channel(read_fd, steps)
                finally:
                    os.close(read_fd)
                    self.kill(process)
                    _, status, usage = os.wait4(process.pid, 0)
                    process.returncode = os.waitstatus_to_exitcode(status)
            self.total_cpu_seconds += usage.ru_utime + usage.ru_stime
            if failure is not None and failure["kind"] == "crashed":
                failure["message"] = self._crash_message(process.returncode)
            results = {message["id"]: self._decode_step(message, root / "out") for message in messages}
            return results, failure
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _read_channel(self, read_fd, steps):
        """Collect step messages until the worker is done, dies or overruns a
        timeout. Returns (messages, failure or None)."""
        messages = []
        expected = iter(steps)
        current = None                      # the step being waited for; None: import
        ready = False
        buffer = b""
        last_event = time.monotonic()
        selector = selectors.DefaultSelector()
        selector.register(read_fd, selectors.EVENT_READ)
        try:
            while True:
                timeout = (self.call_timeout * current["timeout_scale"]) if ready else self.import_timeout
                deadline = last_event + timeout
                if self.deadline is not None:
                    deadline = min(deadline, self.deadline)
                wait = deadline - time.monotonic()
                if wait <= 0 or not selector.select(wait):
                    if self.deadline is not None and time.monotonic() >= self.deadline:
                        return messages, {"kind": "not_run",
                                          "message": "not run: the grading time budget ran out"}
                    what = current.get("call", "the call") if ready else "importing the submission"
                    what = what.split(".", 1)[-1]
                    return messages, {"kind": "timeout",
                                      "message": f"timed out: {what} did not finish within "
                                                 f"{timeout:g} s (an infinite loop?)"}
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    return messages, {"kind": "crashed", "message": ""}
                buffer += chunk
                if len(buffer) > MAX_LINE_BYTES and b"\n" not in buffer:
                    return messages, self._garbage("an oversized message")
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    last_event = time.monotonic()
                    try:
                        message = json.loads(line)
                    except ValueError:
                        return messages, self._garbage("a line that is not JSON")
                    if not isinstance(message, dict):
                        return messages, self._garbage("a message that is not an object")
                    if not ready:
                        if "import_error" in message:
                            return messages, self._import_failure(message["import_error"])
                        if message.get("ready") is not True:
                            return messages, self._garbage("an unexpected first message")
                        ready = True
                        current = next(expected, None)
                        continue
                    if message.get("done") is True and current is None:
                        return messages, None
                    if current is None or message.get("id") != current["id"]:
                        return messages, self._garbage("a result for the wrong call")
                    messages.append(message)
                    current = next(expected, None)
                    if current is None:
                        # All steps answered; the "done" line is a formality.
                        return messages, None
        finally:
            selector.close()

    @staticmethod
    def _garbage(what):
        return {"kind": "garbage",
                "message": f"the worker process sent {what}: the submission probably wrote "
                           f"to a file descriptor it does not own"}

    @staticmethod
    def _import_failure(error):
        error = dict(error) if isinstance(error, dict) else {}
        detail = error.get("message", "")
        if error.get("kind") == "exception":
            detail = f"{error.get('type')}: {detail}".rstrip(": ")
        return dict(error, kind="import_error",
                    message=f"the submission could not be imported: {detail}")

    @staticmethod
    def _crash_message(returncode):
        if returncode is not None and returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            return f"the worker process was killed by {name} during this call"
        return (f"the worker process exited with code {returncode} during this call "
                f"(os._exit or a crash in native code?)")

    def _decode_step(self, message, out_dir):
        if message.get("ok") is not True:
            error = message.get("error")
            if not isinstance(error, dict):
                error = {"kind": "garbage", "message": "failed without a readable error"}
            return StepResult(False, error=error)
        args = message.get("args") or {}
        return StepResult(True, value=decode_value(message.get("value"), out_dir),
                          args={int(key): decode_value(value, out_dir) for key, value in args.items()
                                if str(key).isdigit()})


def decode_value(encoded, out_dir, depth=0):
    """Worker data -> Python: arrays loaded without pickle, anything else plain."""
    if not isinstance(encoded, dict) or len(encoded) == 0 or depth > 8:
        return Unsupported("unreadable value")
    if "array" in encoded:
        name = encoded["array"]
        if not isinstance(name, str) or not ARRAY_NAME.fullmatch(name):
            return Unsupported("unreadable array")
        try:
            array = np.load(out_dir / name, allow_pickle=False)
        except (OSError, ValueError):
            return Unsupported("unreadable array")
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            return Unsupported(f"array of dtype {getattr(array, 'dtype', '?')}")
        return array
    (kind, payload), = list(encoded.items())[:1]
    if kind == "number":
        if isinstance(payload, str) and payload in ("nan", "inf", "-inf"):
            return float(payload)
        return float(payload) if isinstance(payload, (int, float)) else Unsupported("unreadable number")
    if kind in ("list", "tuple") and isinstance(payload, list):
        items = [decode_value(item, out_dir, depth + 1) for item in payload]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict" and isinstance(payload, dict):
        return {str(key): decode_value(item, out_dir, depth + 1) for key, item in payload.items()}
    if kind == "none":
        return None
    if kind == "str" and isinstance(payload, str):
        return payload
    if kind == "object" and isinstance(payload, str):
        return Opaque(payload)
    if kind == "unsupported" and isinstance(payload, str):
        return Unsupported(payload)
    return Unsupported("unreadable value")
