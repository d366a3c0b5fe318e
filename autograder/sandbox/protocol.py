"""The job protocol between the grader and a worker (autograder/worker/worker.py
documents the wire format): a Job lists the calls to make, grouped in units;
each comes back as a StepResult of plain data, decoded by decode_value
(numbers, strings, numpy arrays loaded without pickle and never through a
link, Opaque and Unsupported markers). Nothing a worker returns is executed
or unpickled."""
import os
import re
import stat
from dataclasses import dataclass, field

import numpy as np

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
    run_more: object = None       # runs a further job the same way (set by the layer part)


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
        self.forbidden = None         # {"modules": [...], "file": name}: see forbid()

    def module(self, name, filename):
        """Import submission file `filename` as module `name`."""
        self.modules[name] = filename

    def helper(self, name, path):
        """Load trusted helper code (from the autograder folder) as module `name`."""
        self.helpers[name] = str(path)

    def forbid(self, modules, file):
        """The submission may not use these top-level modules (frameworks such
        as torch) while this job runs: the worker gives stand-ins whose use
        fails the call, naming `file`'s rule (autograder/worker/numpy_only.py),
        and the sandbox hides their folders where it can. No modules: lift it."""
        self.forbidden = {"modules": sorted(modules), "file": file} if modules else None

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

    def call(self, target, *args, encode="all", report=(), timeout_scale=1.0, progress=False, **kwargs):
        """Call module.function(*args, **kwargs); returns the step id.

        encode: "all" (return the whole result as data), "out_cache" (the
        result must be a pair; only its first item comes back) or "none".
        report: indices of arguments to send back as they are after the call.
        timeout_scale: this call may take that many times the sandbox's call timeout.
        progress: the call (a trusted helper's) reports its progress; then
        timeout_scale only bounds the time to its first report, and after it
        the limit follows the call's own pace (CallClock).
        """
        return self._add({"call": target, "args": [self.value(arg) for arg in args],
                          "kwargs": {key: self.value(arg) for key, arg in kwargs.items()},
                          "encode": encode, "report": list(report),
                          "timeout_scale": float(timeout_scale), "progress": bool(progress)})

    def let(self, value):
        """Keep a value in the worker (e.g. a bn_param dict several calls share)."""
        return self._add({"let": self.value(value), "timeout_scale": 1.0})

    def wire(self, steps):
        wire = {"helpers": self.helpers, "modules": self.modules, "steps": steps}
        if self.forbidden:
            wire["forbidden"] = self.forbidden
        return wire


def load_worker_array(path):
    """np.load of a file the worker wrote, never through a link: the worker
    names the file, and a symbolic or hard link to a grader file (e.g. an
    expected output) would otherwise be read with the grader's rights."""
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(handle, "rb") as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise ValueError(f"{path.name} is not a plain file")
        return np.load(stream, allow_pickle=False)


def decode_value(encoded, out_dir, depth=0):
    """Worker data -> Python: arrays loaded without pickle, anything else plain."""
    if not isinstance(encoded, dict) or len(encoded) == 0 or depth > 8:
        return Unsupported("unreadable value")
    if "array" in encoded:
        name = encoded["array"]
        if not isinstance(name, str) or not ARRAY_NAME.fullmatch(name):
            return Unsupported("unreadable array")
        try:
            array = load_worker_array(out_dir / name)
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
