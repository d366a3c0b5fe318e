"""The worker jobs of the CNN part (autograder/worker/torch_steps.py runs the
steps): the grader's provided data.py and train.py are loaded as helpers
``data`` and ``train`` before the submission's models.py."""
import re
import subprocess

from autograder.parts.cnn.data_protocol import CURVE_PROTOCOL, GRADING_SEED, STARTUP_SECONDS
from autograder.provided import provided_path
from autograder.layout import CHECKPOINTS, MODELS_FILE, WORKER_DIR
from autograder.sandbox import Job, StepResult

TORCH_HELPER = WORKER_DIR / "torch_steps.py"
MODEL_NAMES = ("ConvNet", "FCNet")
MODEL_FILES = (MODELS_FILE,) + tuple(CHECKPOINTS.values())     # what the CNN part grades


class TorchMissing(RuntimeError):
    """The workers' interpreter has no torch: a broken grader install, not a student mistake."""


def require_torch(sandbox):
    """Raise TorchMissing unless the interpreter that runs the workers can find
    torch; otherwise every CNN check would blame the submission for an import
    error that is the installation's."""
    probe = subprocess.run([sandbox.python, "-I", "-c", "import importlib.util, sys; "
                            "sys.exit(importlib.util.find_spec('torch') is None)"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
    if probe.returncode != 0:
        raise TorchMissing(f"torch is not installed for {sandbox.python}, the interpreter that runs "
                           f"the workers; install torch==2.13.0 (CPU build) for it")


def new_job(name, files):
    job = Job(name, files=[MODELS_FILE] + list(files))
    job.helper("data", provided_path("data.py"))
    job.helper("train", provided_path("train.py"))
    job.helper("cnn", TORCH_HELPER)
    job.module("models", MODELS_FILE)
    return job


def _scale(sandbox, what):
    """timeout_scale that gives the call STARTUP_SECONDS[what] of wall time
    (for a call with progress reports: up to its first report)."""
    return STARTUP_SECONDS[what] / sandbox.call_timeout


def cost_limits(settings, name):
    """{'multiply_adds', 'activations'} per image that model `name` may cost (the compute rule)."""
    prefix = name.lower()
    return {"multiply_adds": settings[f"{prefix}_max_multiply_adds"],
            "activations": settings[f"{prefix}_max_activations"]}


# The order in which models predict in one worker: an FCNet that looked up what
# the ConvNet had answered for the same images in the same process would borrow
# its accuracy; going first, it has nothing to look up (and each model's images
# are drawn apart anyway, evaluation.draw_views).
PREDICTION_ORDER = ("FCNet", "ConvNet")


def _load_and_predict(job, sandbox, name, images, limits):
    """One unit: load name's checkpoint; when images is given, predict them
    (with limits, the worker refuses a model over the compute rule). (load
    step, predict step or None)."""
    job.new_unit()
    loaded = job.call("cnn.load_checkpoint", name, CHECKPOINTS[name], encode="out_cache",
                      timeout_scale=_scale(sandbox, "load"))
    if images is None:
        return loaded, None
    return loaded, job.call("cnn.predict", job.ref(loaded, 1), job.array(images), limits, name, progress=True,
                            timeout_scale=_scale(sandbox, "predict"))


def models_job(sandbox, settings, checkpoints, views=None):
    """Inspect both classes, load each present checkpoint and, when views
    ({name: evaluation.Views}) is given, predict its changed test images.
    Returns (job, step ids by purpose)."""
    job = new_job("cnn models", [CHECKPOINTS[name] for name in checkpoints])
    steps = {}
    for name in MODEL_NAMES:
        job.new_unit()
        steps[("inspect", name)] = job.call("cnn.inspect_model", name,
                                            timeout_scale=_scale(sandbox, "inspect"))
    for name in sorted(checkpoints, key=PREDICTION_ORDER.index):
        images = views[name].changed.images if views is not None else None
        steps[("load", name)], predicted = _load_and_predict(job, sandbox, name, images, cost_limits(settings, name))
        if predicted is not None:
            steps[("predict", name)] = predicted
    return job, steps


def unchanged_job(sandbox, views):
    """A worker process of its own, started once the changed images are
    answered: each model of views (all within the compute rule: they were
    evaluated) loads again and predicts its unchanged images
    (evaluation.Views.unchanged). Returns (job, {name: predict step})."""
    job = new_job("cnn unchanged images", [CHECKPOINTS[name] for name in views])
    steps = {}
    for name in sorted(views, key=PREDICTION_ORDER.index):
        _, steps[name] = _load_and_predict(job, sandbox, name, views[name].unchanged.images, None)
    return job, steps


def curves_job(sandbox, subset, protocol=CURVE_PROTOCOL, seeds=(GRADING_SEED,), models=("FCNet", "ConvNet")):
    """Train fresh models on the protocol's subset, one unit per (model, seed).
    The held-out labels (subset['y_val']) are not sent: the worker returns
    held-out logits and the caller scores them (curves.Curve.from_value)."""
    job = new_job("cnn curves", [])
    arrays = {key: job.array(subset[key]) for key in ("x_train", "y_train", "x_val")}
    steps = {}
    for seed in seeds:
        for name in models:
            job.new_unit()
            steps[(name, seed)] = job.call(
                "cnn.train_curve", name, arrays["x_train"], arrays["y_train"], arrays["x_val"],
                protocol["config"], seed, progress=True, timeout_scale=_scale(sandbox, "train"))
    return job, steps


# What torch says when code asks for a GPU on a machine without one (a CPU
# build: "Torch not compiled with CUDA enabled"; a CUDA build: "Found no
# NVIDIA driver", "No CUDA GPUs are available"; Apple's "mps" device).
GPU_ERROR = re.compile(r"CUDA|cuda|NVIDIA|\bmps\b|MPS backend")
NO_GPU = ("The grader has no GPU: it runs your models on the CPU only, so code that moves the "
          "model or tensors to 'cuda' (or 'mps') fails here even though it works on your GPU "
          "machine. Keep models.py device-agnostic: build the layers on the CPU in __init__ (no "
          ".cuda() or .to(device) there) and let the training code move the model "
          "(model.to(device)); in forward, make any new tensor on the input's device "
          "(torch.zeros(..., device=x.device)) instead of a fixed one; where you pick a device, "
          "use torch.device('cuda' if torch.cuda.is_available() else 'cpu').")


def error_text(result: StepResult):
    """The worker's message for a failed step, without the helper's exception
    type; when the error is code asking for a GPU, its first line says that the
    grader has none and the next one how to write device-agnostic code."""
    error = result.error or {}
    if error.get("type") == "StudentError":
        text = error.get("message", "failed")
    else:
        text = result.error_text()
    first, _, rest = text.partition("\n")
    if GPU_ERROR.search(first):
        return "\n".join([first + " (the grader has no GPU)", NO_GPU] + ([rest] if rest else []))
    return text
