"""Raw outcomes of a grade: what every sandbox job returned, stored so that a
rubric change can re-score a graded submission without running student code
again (``grade --outcomes FILE`` writes them, ``grade --replay FILE`` grades
from them; ``regrade --rescore`` does both for a class).

A job is stored under a key made of everything that decides what its worker
returns: its calls and their arguments (arrays included), the submission
files it names, and the worker-side code (worker.py and each helper file).
The grader's own code is not in the key: replaying runs the current grader
on the stored worker results, which is what a full grade with this grader
gives as long as the worker side is deterministic. A job whose key is not
stored (other cases, other calls, a changed helper) cannot be replayed, and
the replay says so; so does a submission whose files changed.

The CNN protocol's secret draws (which test images are changed how, and
their order) come from a seed keyed by the hidden cases and the graded files
(autograder/parts/cnn/secret.py), so a replay with the same cases sends the
same arrays and the stored logits meet the labels in the same order.

While grading, Ledger also notes the grading limits a job ran into (a call's
time limit, the CPU, memory and file-size limits, the time budget) for the
instructors' ``extra_data`` of results.json.

File format: one .npz (numpy, no pickle) holding ``index``, a UTF-8 JSON
document as uint8, and arrays ``a0``, ``a1``, ... it refers to.
"""
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from autograder.sandbox import GUARD_SCRIPT, WORKER_SCRIPT, JobOutcome, Opaque, StepResult, Unsupported
from autograder.submission import submission_digests

FORMAT = 2                                            # 2: no stored secrets.randbits draws
UNTIMED_STEP_KEYS = ("timeout_scale", "progress")     # how long a call may take, not what it returns


class ReplayError(Exception):
    """The stored outcomes cannot stand in for this grade; the message says why."""


def _file_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def job_key(job):
    """What decides the outcome of job, as 64 hex digits (see the module docstring)."""
    steps = [{k: v for k, v in step.items() if k not in UNTIMED_STEP_KEYS} for step in job.steps]
    described = {"name": job.name, "files": sorted(job.files), "modules": job.modules,
                 "helpers": {name: _file_digest(path) for name, path in job.helpers.items()},
                 "worker": _file_digest(WORKER_SCRIPT), "units": job.units, "steps": steps}
    if job.forbidden:
        described["forbidden"] = dict(job.forbidden, guard=_file_digest(GUARD_SCRIPT))
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    for name in sorted(job.arrays):
        array = np.ascontiguousarray(job.arrays[name])
        digest.update(f"{name} {array.dtype.str} {array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# -- values <-> JSON with arrays aside ---------------------------------------------------------

def _encode(value, arrays):
    if isinstance(value, np.ndarray):
        arrays.append(value)
        return {"a": len(arrays) - 1}
    if isinstance(value, bool):
        return {"b": value}
    if isinstance(value, (int, float)):
        return {"f": float(value)}
    if value is None:
        return {"n": None}
    if isinstance(value, str):
        return {"s": value}
    if isinstance(value, tuple):
        return {"t": [_encode(item, arrays) for item in value]}
    if isinstance(value, list):
        return {"l": [_encode(item, arrays) for item in value]}
    if isinstance(value, dict):
        return {"d": {str(key): _encode(item, arrays) for key, item in value.items()}}
    if isinstance(value, Opaque):
        return {"o": value.type_name}
    if isinstance(value, Unsupported):
        return {"u": value.reason}
    raise TypeError(f"outcomes: cannot store a {type(value).__name__}")


def _decode(encoded, arrays):
    (kind, payload), = encoded.items()
    if kind == "a":
        return arrays[payload]
    if kind in ("b", "f", "s", "n"):
        return payload
    if kind == "t":
        return tuple(_decode(item, arrays) for item in payload)
    if kind == "l":
        return [_decode(item, arrays) for item in payload]
    if kind == "d":
        return {key: _decode(item, arrays) for key, item in payload.items()}
    if kind == "o":
        return Opaque(payload)
    return Unsupported(payload)


def _encode_outcome(outcome, arrays):
    return {"launches": outcome.launches, "results": {
        step_id: {"ok": result.ok, "value": _encode(result.value, arrays),
                  "args": {str(i): _encode(v, arrays) for i, v in result.args.items()},
                  "error": result.error}
        for step_id, result in outcome.results.items()}}


def _decode_outcome(stored, arrays):
    return JobOutcome(results={
        step_id: StepResult(item["ok"], _decode(item["value"], arrays),
                            {int(i): _decode(v, arrays) for i, v in item["args"].items()}, item["error"])
        for step_id, item in stored["results"].items()}, launches=stored["launches"])


# -- the store -----------------------------------------------------------------------------------

class Store:
    """Outcomes by job key (a list per key: the same job may run twice) and
    the digests of the submission they came from."""

    def __init__(self, submission=None, jobs=None, arrays=None):
        self.submission = submission or {}
        self.jobs = jobs or {}            # key -> [encoded outcome, ...]
        self.arrays = arrays or []
        self.used = {}                    # key -> outcomes replayed so far

    def add(self, key, outcome):
        self.jobs.setdefault(key, []).append(_encode_outcome(outcome, self.arrays))

    def take(self, key, job_name):
        stored = self.jobs.get(key, [])
        count = self.used.get(key, 0)
        if count >= len(stored):
            raise ReplayError(f"the stored outcomes hold no run of the job {job_name!r} as the grader "
                              f"asks for it now (other cases, other calls, or changed worker code)")
        self.used[key] = count + 1
        return _decode_outcome(stored[count], self.arrays)

    def save(self, path):
        path = Path(path)
        index = json.dumps({"format": FORMAT, "submission": self.submission, "jobs": self.jobs}).encode()
        arrays = {f"a{i}": array for i, array in enumerate(self.arrays)}
        partial = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(partial, index=np.frombuffer(index, dtype=np.uint8), **arrays)
        os.replace(partial, path)

    @classmethod
    def load(cls, path):
        try:
            with np.load(path, allow_pickle=False) as data:
                index = json.loads(bytes(data["index"]).decode())
                count = sum(1 for name in data.files if name != "index")
                arrays = [data[f"a{i}"] for i in range(count)]
        except (OSError, ValueError, KeyError) as exc:
            raise ReplayError(f"{path}: not a stored outcomes file ({type(exc).__name__}: {exc})") from None
        if index.get("format") != FORMAT:
            raise ReplayError(f"{path}: stored outcomes of format {index.get('format')!r}, expected {FORMAT}")
        return cls(index["submission"], index["jobs"], arrays)


# -- sandboxes that record, replay and watch -----------------------------------------------------

class Replay:
    """Stands in for the Sandbox: returns stored outcomes; student code never runs."""

    def __init__(self, store, call_timeout, slowness=1.0):
        self.store = store
        self.call_timeout = call_timeout
        self.slowness = slowness
        self.python = sys.executable
        self.deadline = None
        self.total_cpu_seconds = 0.0
        self.warnings = []
        self.problem = None       # why the replay fell short (kept: a caller may swallow the error)

    def run(self, job, submission):
        try:
            return self.store.take(job_key(job), job.name)
        except ReplayError as exc:
            self.problem = self.problem or str(exc)
            raise


def check_submission(store, files):
    """Raise ReplayError when the submission is not the one the outcomes came from."""
    now = submission_digests(files)
    if now != store.submission:
        changed = sorted(set(now) ^ set(store.submission) | {n for n in now if now[n] != store.submission.get(n)})
        raise ReplayError(f"the submission changed since its outcomes were stored ({', '.join(changed)})")


def limit_hit(result):
    """The grading limit a failed step ran into ('call time limit', 'CPU
    limit', ...), or None."""
    error = result.error or {}
    kind, message = error.get("kind"), error.get("message", "")
    if kind == "timeout":
        return "grading time budget" if "time budget" in message else "call time limit"
    if kind == "not_run" and "time budget" in message:
        return "grading time budget"
    if kind == "exception" and error.get("type") == "MemoryError":
        return "memory limit"
    if kind == "crashed":
        for signal_name, limit in (("SIGXCPU", "CPU limit"), ("SIGXFSZ", "file size limit"),
                                   ("SIGKILL", "killed (memory?)")):
            if signal_name in message:
                return limit
    return None


class Ledger:
    """The sandbox a grade uses: runs jobs on `inner` (a Sandbox or a
    Replay), stores their outcomes in `store` when given, and notes the
    limits they ran into in `limits` ([{limit, job, message}])."""

    def __init__(self, inner, store=None):
        self.inner = inner
        self.store = store
        self.limits = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def run(self, job, submission):
        outcome = self.inner.run(job, submission)
        if self.store is not None:
            self.store.add(job_key(job), outcome)
        for result in outcome.results.values():
            limit = None if result.ok else limit_hit(result)
            if limit and not any(hit["limit"] == limit and hit["job"] == job.name for hit in self.limits):
                self.limits.append({"limit": limit, "job": job.name,
                                    "message": (result.error or {}).get("message", "").split("\n")[0]})
        return outcome
