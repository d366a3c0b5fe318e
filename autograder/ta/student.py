"""``student``: how a TA check (autograder/ta_checks/test_*.py) calls the
submission. The check itself is trusted code in the grader process; every
call below runs in a sandboxed worker like every other call of the grader
and returns plain values (numpy arrays, numbers, strings, tuples, lists,
dicts; a Python object that cannot leave the worker comes back as an
Opaque marker).

    out, cache = student.layers.conv_forward(x, w, b, {"stride": 1, "pad": 1})
    dx, dw, db = student.layers.conv_backward(dout, cache)
    logits = student.models.forward("ConvNet", x)                  # fresh ConvNet(), eval mode
    logits = student.models.forward("ConvNet", x, checkpoint=True)  # convnet.pt loaded
    logits = student.models.predict("ConvNet", images)              # uint8 images, normalized
    report = student.models.inspect("FCNet")                        # layers, parameters, cost

Values a call returned go back into the submission as the call made them:
when a later call gets one (a cache, or an item of it), the calls that made
it are replayed first in the same worker (their inputs are kept here), so
the student's own object is passed, never a copy rebuilt from data. Replayed
calls must be deterministic (give dropout a seed). A call that raises, hangs,
crashes or needs a file the submission lacks raises StudentCallError, whose
text names the call and what went wrong; the check then fails with it.
"""
import contextlib
import sys

import numpy as np

from autograder.imports import FRAMEWORKS
from autograder.parts.layers.compare import fmt_shape, fmt_value
from autograder.layout import CHECKPOINTS, LAYERS_FILE, MODELS_FILE, WORKER_DIR
from autograder.sandbox import Job, Opaque, Unsupported

TORCH_HELPER = WORKER_DIR / "ta_steps.py"
MAX_DEPTH = 4


class StudentCallError(Exception):
    """A call into the submission did not return; str() says which call and why."""


class NotGrading(RuntimeError):
    """student.* was used outside a grading run."""


def call_text(target, args, kwargs):
    """conv_forward(array (2, 3, 5, 5), ..., {'stride': 1, 'pad': 1}): shapes, never values of arrays."""
    def show(value):
        if isinstance(value, np.ndarray):
            return f"array {fmt_shape(value.shape)}"
        if isinstance(value, (tuple, list)):
            return f"a {type(value).__name__} of {len(value)}"
        return fmt_value(value)
    shown = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items()]
    return f"{target}({', '.join(shown)})"


class _Record:
    """One call a TA check made: what to replay when its result is passed on."""

    def __init__(self, target, args, kwargs, setup, options):
        self.target, self.args, self.kwargs, self.setup, self.options = target, args, kwargs, setup, options


class Student:
    """The ``student`` object of autograder.ta_checks (one per grader process)."""

    def __init__(self):
        self._ctx = None
        self._streams = None
        self._origins = {}          # id(object returned) -> (object, _Record, index path)
        self.layers = _Layers(self)
        self.models = _Models(self)

    @contextlib.contextmanager
    def bound(self, ctx):
        """Calls go to ctx's sandbox and submission while this is active."""
        self._ctx, self._streams = ctx, (sys.stdout, sys.stderr)
        try:
            yield self
        finally:
            self._ctx, self._streams = None, None
            self._origins.clear()

    def call_timeout(self):
        return self._ctx.sandbox.call_timeout if self._ctx is not None else 1.0

    # -- one call -------------------------------------------------------------------------
    def call(self, target, args, kwargs, setup, describe, error_text, **options):
        """Run target(*args, **kwargs) in a new job made by setup(job); returns
        the decoded value, or raises StudentCallError with describe() and
        error_text(result). options: Job.call's timeout_scale and progress."""
        if self._ctx is None:
            raise NotGrading("autograder.ta_checks.student works only while the grader runs the TA "
                             "checks (python -m autograder grade ...)")
        job = setup(Job(f"TA check: {target}", files=[]))
        job.new_unit()
        replayed = {}
        step = job.call(target, *[self._wire(job, a, replayed) for a in args], encode="all", **options,
                        **{k: self._wire(job, v, replayed) for k, v in kwargs.items()})
        # The sandbox logs a failed worker's output on stderr, for the staff's console:
        # gradescope-utils buffers a test's stderr into its feedback, so restore ours meanwhile.
        with contextlib.redirect_stdout(self._streams[0]), contextlib.redirect_stderr(self._streams[1]):
            result = self._ctx.run(job).results[step]
        if not result.ok:
            raise StudentCallError(f"{describe()} failed: {error_text(result)}")
        if isinstance(result.value, Unsupported):
            raise StudentCallError(f"{describe()} returned {result.value.reason}")
        self._remember(result.value, _Record(target, args, kwargs, setup, options), [])
        return result.value

    def _remember(self, value, record, path):
        """Note where each container and object of a returned value came from."""
        if isinstance(value, (tuple, list, dict, Opaque)) and len(path) <= MAX_DEPTH:
            self._origins[id(value)] = (value, record, list(path))
        if isinstance(value, (tuple, list)):
            for index, item in enumerate(value):
                self._remember(item, record, path + [index])
        elif isinstance(value, dict):
            for key, item in value.items():
                self._remember(item, record, path + [key])

    def _wire(self, job, value, replayed):
        """value for Job.call: a returned object becomes a reference to its
        replayed call; containers are walked; the rest is plain data."""
        origin = self._origins.get(id(value))
        if origin is not None and origin[0] is value:
            _, record, path = origin
            return Job.ref(self._replay(job, record, replayed), *path)
        if isinstance(value, (Opaque, Unsupported)):
            raise TypeError("a marker of a value that never left the worker cannot be sent back "
                            "unless it is the very object a student call returned")
        if isinstance(value, tuple):
            return tuple(self._wire(job, item, replayed) for item in value)
        if isinstance(value, list):
            return [self._wire(job, item, replayed) for item in value]
        if isinstance(value, dict):
            return {key: self._wire(job, item, replayed) for key, item in value.items()}
        return value

    def _replay(self, job, record, replayed):
        if id(record) not in replayed:
            record.setup(job)
            args = [self._wire(job, a, replayed) for a in record.args]
            kwargs = {k: self._wire(job, v, replayed) for k, v in record.kwargs.items()}
            replayed[id(record)] = job.call(record.target, *args, encode="none", **record.options, **kwargs)
        return replayed[id(record)]


class _Layers:
    """student.layers.NAME(*args, **kwargs): NAME of the submission's layers.py."""

    def __init__(self, student):
        self._student = student

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            return self._student.call(f"layers.{name}", args, kwargs, _layers_job,
                                      lambda: call_text(name, args, kwargs), lambda r: r.error_text())
        call.__name__ = call.__qualname__ = name
        return call


def _layers_job(job):
    """layers.py in the job, numpy only (no torch, ...) unless the same job
    also runs models.py's calls, which need torch."""
    if LAYERS_FILE not in job.files:
        job.files.append(LAYERS_FILE)
        job.module("layers", LAYERS_FILE)
    if "cnn" not in job.helpers:
        job.forbid(FRAMEWORKS, LAYERS_FILE)
    return job


class _Models:
    """Calls on the submission's models.py classes (ConvNet, FCNet), run by
    the grader's trusted torch helpers next to it."""

    def __init__(self, student):
        self._student = student

    def forward(self, model, x, checkpoint=False, seed=0):
        """Logits (float32 array) of model() built after torch.manual_seed(seed)
        (or with its checkpoint loaded) on x as given, in eval mode."""
        file = CHECKPOINTS[model] if checkpoint else None
        return self._call("ta.forward", (model, np.asarray(x, dtype=np.float32), file, seed), file,
                          lambda: f"{model}().forward on x {fmt_shape(np.shape(x))}"
                                  + (f" with {file} loaded" if file else ""), "load")

    def predict(self, model, images):
        """Logits of the model with its checkpoint loaded on uint8 images
        (N, 3, 32, 32), normalized with the provided data.normalize, as the
        accuracy checks compute them."""
        file = CHECKPOINTS[model]
        return self._call("ta.predict", (model, file, np.asarray(images, dtype=np.uint8)), file,
                          lambda: f"{model} with {file} loaded, on images {fmt_shape(np.shape(images))}",
                          "predict", progress=True)

    def inspect(self, model):
        """What the architecture check sees: weight layers by kind, their
        descriptions, parameters, multiply-adds and activations per image,
        and the output of a (2, 3, 32, 32) batch."""
        return self._call("cnn.inspect_model", (model,), None, lambda: f"{model}() built and inspected",
                          "inspect")

    def _call(self, target, args, checkpoint, describe, allowance, progress=False):
        """allowance: the STARTUP_SECONDS entry of the CNN part that bounds the
        call (for a call with progress, up to its first report)."""
        from autograder.parts.cnn.jobs import error_text, new_job
        from autograder.parts.cnn.data_protocol import STARTUP_SECONDS

        def setup(job):
            job.files.extend(name for name in [MODELS_FILE] + ([checkpoint] if checkpoint else [])
                             if name not in job.files)
            if "cnn" not in job.helpers:
                fresh = new_job(job.name, [])
                job.modules.update(fresh.modules)
                job.helpers.update(fresh.helpers)
                job.helper("ta", TORCH_HELPER)
                job.forbid((), None)        # the models' calls need torch
            return job
        scale = STARTUP_SECONDS[allowance] / self._student.call_timeout()
        return self._student.call(target, args, {}, setup, describe, error_text, timeout_scale=scale,
                                  progress=progress)


student = Student()
