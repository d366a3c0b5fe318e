"""Trusted helper loaded by path into the worker for the CNN part (torch and
numpy; never the autograder package). The worker loads the grader's copies of
the provided data.py and train.py first (as modules ``data`` and ``train``)
and then the submission's models.py (as ``models``); the grader calls the
functions below as job steps and gets back plain data only.

Errors meant for the student are raised as StudentError with a message that
says what was found and what to do; the worker reports its text.
"""
import ctypes
import gc
import inspect
import os
import re
import sys
import time
import zipfile

import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

# Images per forward pass when evaluating. Memory grows with it (a model at
# the compute rule's limits needs 130 MB more at 100 than its weights, 55 MB
# at 25) and speed does not (25 is as fast as 100 on one CPU thread).
EVAL_BATCH = 25
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
WEIGHT_TYPES = (nn.modules.conv._ConvNd, nn.Linear)
# The only tensors a model may hold beyond its layers' weights and biases
# (the architecture rules): the running statistics of its normalization layers.
STATISTICS_TYPES = (nn.modules.batchnorm._NormBase,)
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
MAX_LISTED = 6


# Set by worker.py to its report_progress(done, total, unit): a long call's
# time limit then follows its own pace (autograder/sandbox/clock.py CallClock).
report_progress = None
PROGRESS_EVERY = 0.5          # seconds: at most one progress report per this interval


class StudentError(Exception):
    """A problem of the submission, described for the student."""


class _Progress:
    """Reports done/total to the grader, at most every PROGRESS_EVERY seconds
    (and always at the end)."""

    def __init__(self, total, unit):
        self.total, self.unit, self.done, self.last = total, unit, 0, 0.0

    def advance(self, count=1):
        self.done += count
        now = time.monotonic()
        if report_progress is not None and (now - self.last >= PROGRESS_EVERY or self.done >= self.total):
            self.last = now
            report_progress(self.done, self.total, self.unit)


def _single_thread():
    torch.set_num_threads(1)


def _release_memory():
    """Hand freed memory back to the OS. glibc keeps the heap a training run
    grew (its mmap threshold rises after large frees), so without this the
    ConvNet's run would start on top of what the FCNet's left behind: 100-200
    MB more at the peak, on a machine with 768 MB in all."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):     # not glibc
        pass


def _model_class(class_name):
    module = sys.modules.get("models")
    cls = getattr(module, class_name, None)
    if cls is None:
        raise StudentError(f"models.py defines no class {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise StudentError(f"models.{class_name} must be a subclass of torch.nn.Module, "
                           f"found a {type(cls).__name__}")
    return cls


def build_model(class_name, seed=0):
    """A fresh instance of the student's class, built after torch.manual_seed(seed)."""
    _single_thread()
    cls = _model_class(class_name)
    required = [p.name for p in inspect.signature(cls).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if required:
        raise StudentError(f"{class_name}() must be constructible with no arguments; its __init__ "
                           f"requires {', '.join(required)} (give them default values)")
    torch.manual_seed(seed)
    return cls()


def model_cost(model):
    """{'multiply_adds', 'activations'} per image (the compute rule), measured
    by the provided train.model_cost on a copy of model, single-threaded."""
    _single_thread()
    return sys.modules["train"].model_cost(model)


def _describe_layer(name, module):
    if isinstance(module, nn.Conv2d):
        kernel = "x".join(str(k) for k in module.kernel_size)
        return f"{name} Conv2d({module.in_channels}->{module.out_channels}, {kernel})"
    if isinstance(module, nn.Linear):
        return f"{name} Linear({module.in_features}->{module.out_features})"
    return f"{name} {type(module).__name__}"


def _join(texts, limit=40):
    """Layer descriptions as one string (the worker caps how many values a result holds)."""
    more = f"\n(+{len(texts) - limit} more)" if len(texts) > limit else ""
    return "\n".join(texts[:limit]) + more


def inspect_model(class_name):
    """What the architecture rules look at, as a few plain values: counts of
    the modules that own parameters by kind (conv = nn.Conv2d, linear =
    nn.Linear, norm, other_conv = other convolutions, other), their
    descriptions, the parameter count, the compute cost per image
    (model_cost: multiply_adds, activations), and the output of a forward
    pass in eval mode on a (2, 3, 32, 32) float32 batch."""
    model = build_model(class_name)
    kinds = {"conv": [], "linear": [], "norm": [], "other_conv": [], "other": []}
    texts = []
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        if isinstance(module, nn.Conv2d):
            kind = "conv"
        elif isinstance(module, nn.Linear):
            kind = "linear"
        elif isinstance(module, NORM_TYPES):
            kind = "norm"
        elif isinstance(module, nn.modules.conv._ConvNd):
            kind = "other_conv"
        else:
            kind = "other"
        text = _describe_layer(name or f"({class_name} itself)", module)
        kinds[kind].append(text)
        texts.append(text)
    report = {kind: len(found) for kind, found in kinds.items()}
    report.update({
        "layers_text": _join(texts),
        "conv_text": _join(kinds["conv"] + kinds["other_conv"], 10),
        "foreign_text": _join(kinds["other_conv"] + kinds["other"], 10),
        # Frozen parameters (requires_grad=False) count too: they hold values all the same.
        "parameters": int(sum(p.numel() for p in model.parameters())),
    })
    report.update(extra_tensors(model, class_name))
    report.update(model_cost(model))
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    rows = []
    hooks = _table_hooks(model, rows)
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    report["layer_table"] = _cut_lines(rows, MAX_TABLE_TEXT)
    if not isinstance(out, torch.Tensor):
        report["output"] = f"a {type(out).__name__}, not a tensor"
    else:
        report["output_shape"] = list(out.shape)
        report["output_dtype"] = str(out.dtype).replace("torch.", "")
        report["output_finite"] = bool(torch.isfinite(out).all()) if out.is_floating_point() else True
    return report


MAX_TABLE_ROWS = 40
MAX_TABLE_TEXT = 1900        # a returned string holds at most worker.MAX_TEXT characters


def _layer_row(name, rows):
    """A forward hook adding one tab-separated line per module that ran: name,
    type, output shape of one image, parameters, multiply-adds per image
    (nn.Conv2d and nn.Linear; other modules count 0)."""
    def hook(module, inputs, output):
        if len(rows) >= MAX_TABLE_ROWS or not isinstance(output, torch.Tensor) or output.dim() < 1:
            return
        per_image = output[0].numel()
        if isinstance(module, nn.Conv2d):
            madds = per_image * (module.in_channels // module.groups) * int(np.prod(module.kernel_size))
        elif isinstance(module, nn.Linear):
            madds = per_image * module.in_features
        else:
            madds = 0
        params = sum(p.numel() for p in module.parameters(recurse=False))
        cells = [name[:24], type(module).__name__[:24], "x".join(str(n) for n in output.shape[1:]) or "1",
                 str(params), str(madds)]
        rows.append("\t".join(re.sub(r"\s", " ", cell) for cell in cells))
    return hook


def _table_hooks(model, rows):
    """Forward hooks on the modules without children (the layer table's rows);
    a module that takes none is left out of the table, never an error."""
    hooks = []
    for name, module in model.named_modules():
        if name and next(module.children(), None) is None:
            try:
                hooks.append(module.register_forward_hook(_layer_row(name, rows)))
            except Exception:
                continue
    return hooks


def _cut_lines(lines, limit):
    """Lines joined by newlines, whole lines only, within limit characters."""
    kept, size = [], 0
    for line in lines:
        size += len(line) + 1
        if size > limit:
            break
        kept.append(line)
    return "\n".join(kept)


def first_filters(model, count=64, channels=3, size=11):
    """The weights of the model's first nn.Conv2d (at most count filters of
    channels x size x size), or None when it has none."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            weight = module.weight.detach().cpu().float()[:count, :channels, :size, :size]
            return weight.numpy().copy()
    return None


def extra_tensors(model, class_name):
    """The tensors model holds beyond what the rules allow (the weight and bias
    of its Conv2d, Linear and normalization layers, and its normalization
    layers' running statistics): every other buffer, saved or not, and every
    other parameter of those layers (parameters of other modules are the
    weight-layer rule's). Returns their count, a line per tensor, the values
    of the largest, and the values of the running statistics."""
    found, statistics = [], 0
    for module_name, module in model.named_modules():
        owner = f"{type(module).__name__} {module_name}" if module_name else class_name
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, WEIGHT_TYPES + NORM_TYPES):
            found += [(prefix + name, tensor, f"parameter of {owner}")
                      for name, tensor in module.named_parameters(recurse=False)
                      if name not in ("weight", "bias")]
        for name, tensor in module.named_buffers(recurse=False):
            if isinstance(module, STATISTICS_TYPES) and name in STATISTICS:
                statistics += tensor.numel()
            else:
                saved = "" if name not in module._non_persistent_buffers_set else ", not saved"
                found.append((prefix + name, tensor, f"buffer of {owner}{saved}"))
    lines = [f"{name} {tuple(tensor.shape)} ({what})" for name, tensor, what in found]
    return {"extra_tensors": len(found), "extra_tensors_text": _join(lines, MAX_LISTED),
            "largest_extra_tensor": max((tensor.numel() for _, tensor, _ in found), default=0),
            "norm_statistics": int(statistics)}


# -- checkpoints ---------------------------------------------------------------------

SAVE_HINT = "save it with torch.save(model.state_dict(), '{file}')"


def _is_torchscript(path):
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _load_state_dict(path, file_name):
    hint = SAVE_HINT.format(file=file_name)
    if os.path.getsize(path) == 0:
        raise StudentError(f"{file_name} is empty; {hint}")
    with open(path, "rb") as handle:
        first = handle.read(1)
    # torch.save writes a zip archive (or, in its legacy format, a pickle, which starts with 0x80).
    if not zipfile.is_zipfile(path) and first != b"\x80":
        raise StudentError(f"{file_name} is not a file torch.save wrote; {hint}")
    if _is_torchscript(path):
        raise StudentError(f"{file_name} is a TorchScript archive (torch.jit.save); the grader "
                           f"loads plain state_dict files only: {hint}")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # the unpickler's errors vary; all mean the same to the student
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found or "Unsupported global" in text or "Weights only load failed" in text:
            what = f" (it refers to {found.group(1)})" if found else ""
            raise StudentError(
                f"{file_name} stores Python objects, not just tensors{what}: it looks like the "
                f"whole model was saved with torch.save(model, ...). Save model.state_dict(), "
                f"not the model: {hint}") from None
        raise StudentError(f"{file_name} is not a file torch.save wrote ({type(exc).__name__}: "
                           f"{text.splitlines()[0] if text else ''}); {hint}") from None
    if not isinstance(state, dict):
        raise StudentError(f"{file_name} holds a {type(state).__name__}, not a state_dict; {hint}")
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        nested = [key for key in not_tensors if isinstance(state[key], dict)]
        what = (f"a dict with entries {sorted(map(str, state))[:MAX_LISTED]} (a training checkpoint "
                f"with the weights nested under {nested[0]!r}?)" if nested
                else f"entries that are not tensors: {not_tensors[:MAX_LISTED]}")
        raise StudentError(f"{file_name} is not a plain state_dict: it holds {what}; {hint}")
    return state


def _location_note(path, file_name):
    """A note when the file was saved from a GPU (loading maps it to the CPU)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = next((archive.read(n) for n in archive.namelist() if n.endswith("/data.pkl")), b"")
    except (zipfile.BadZipFile, OSError):
        return ""
    if b"cuda" in pickled:
        return (f"{file_name} was saved from a GPU; it was loaded onto the CPU (map_location='cpu'). "
                f"Nothing to fix; model.cpu() before saving avoids the GPU dependency.")
    return ""


def _key_problems(model, state, class_name, file_name):
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shapes = [f"{k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
                    for k in expected if k in state and state[k].shape != expected[k].shape]
    if not (missing or unexpected or wrong_shapes):
        return None
    lines = [f"{file_name} does not fit the {class_name} class in models.py:"]
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("wrong shapes", wrong_shapes)):
        if items:
            more = f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
            lines.append(f"  {label} ({len(items)}): {', '.join(items[:MAX_LISTED])}{more}")
    prefixes = {"module.": "nn.DataParallel", "_orig_mod.": "torch.compile"}
    for prefix, cause in prefixes.items():
        if unexpected and all(k.startswith(prefix) for k in unexpected):
            lines.append(f"  every key starts with {prefix!r}: the state_dict of a {cause} wrapper "
                         f"was saved; save the inner model's state_dict instead")
    lines.append(f"  Save the state_dict of a {class_name}() built from the models.py you submit "
                 f"(did the class change after training?).")
    return "\n".join(lines)


def load_checkpoint(class_name, file_name):
    """(info, model): the student's class with the checkpoint loaded strictly.
    info has 'tensors', 'parameters' and 'note'."""
    model = build_model(class_name)
    path = os.path.join(os.getcwd(), file_name)
    state = _load_state_dict(path, file_name)
    problems = _key_problems(model, state, class_name, file_name)
    if problems:
        raise StudentError(problems)
    not_finite = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if not_finite:
        raise StudentError(f"{file_name} has NaN or infinite values in {len(not_finite)} tensors "
                           f"({', '.join(not_finite[:MAX_LISTED])}): training diverged before it was "
                           f"saved. Retrain (e.g. with a lower learning rate) and save a model whose "
                           f"loss stayed finite.")
    model.load_state_dict(state, strict=True)
    model.eval()
    info = {"tensors": len(state), "parameters": int(sum(p.numel() for p in model.parameters())),
            "note": _location_note(path, file_name)}
    filters = first_filters(model)
    if filters is not None:
        info["first_filters"] = filters      # what the network learned to look for (a picture)
    return info, model


def check_cost(model, limits, class_name):
    """Raise StudentError when model exceeds limits {'multiply_adds',
    'activations'} per image: the grader then never pays for the work the
    rules forbid. (model_cost measures a copy: the loaded statistics stay.)"""
    cost = model_cost(model)
    for key, what in (("multiply_adds", "multiply-adds"), ("activations", "activation values")):
        if cost[key] > limits[key]:
            raise StudentError(f"not run: {class_name} needs {cost[key]:,.0f} {what} per image; "
                               f"the limit is {limits[key]:,.0f} (see its architecture test)")


def predict(model, images, limits=None, class_name="the model"):
    """Logits (N, 10) float32 of the loaded model on uint8 images (N, 3, 32, 32),
    normalized with the provided data.normalize, in float32, in batches of
    EVAL_BATCH (inference mode, channels-last: about 1.5x faster on the CPU
    than plain no_grad). With limits, refuses a model over the compute rule."""
    _single_thread()
    if limits is not None:
        check_cost(model, limits, class_name)
    normalize = sys.modules["data"].normalize
    model.eval()
    model.to(memory_format=torch.channels_last)
    progress = _Progress(len(images), "images")
    # One array for all logits: a small array kept per batch would sit above
    # that batch's freed temporaries and pin the heap (measured: 5,000 images
    # through a model at the compute limits grew the worker by 620 MB).
    logits = np.empty((len(images), 10), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(images), EVAL_BATCH):
            batch = images[start:start + EVAL_BATCH]
            out = model(normalize(batch).contiguous(memory_format=torch.channels_last))
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(batch), 10):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise StudentError(f"the model returned {shape} for a batch of {len(batch)} "
                                   f"images; expected logits of shape ({len(batch)}, 10)")
            logits[start:start + len(batch)] = out.float().numpy()
            del out
            progress.advance(len(batch))
    _release_memory()
    return logits


# -- training curves -------------------------------------------------------------------

def train_curve(class_name, x_train, y_train, x_val, config, seed):
    """Train a fresh class_name() with the provided train.train and config
    (TrainConfig fields) on x_train/y_train. The held-out labels never reach
    this process: at every evaluation (and once before training, step 0) it
    records the model's logits on x_val, and the grader scores them.

    Returns the per-step training loss as the loop reported it, the
    evaluation steps, the held-out logits (evaluations, N, 10) as float32,
    and the step at which the loss stopped being finite (0: never)."""
    _single_thread()
    train = sys.modules["train"]
    model = build_model(class_name, seed)
    logits = []

    def record_logits(model, images, labels=None, batch_size=EVAL_BATCH, bf16=False, amp_dtype=None):
        # Smaller batches than evaluate()'s default of 500 keep the worker within its memory budget.
        out = np.asarray(train.predict(model, images, batch_size=EVAL_BATCH, bf16=bf16, amp_dtype=amp_dtype))
        if out.shape != (len(images), 10):
            raise StudentError(f"{class_name} returned logits of shape {out.shape} for the "
                               f"{len(images)} held-out images; expected ({len(images)}, 10)")
        logits.append(out.astype(np.float32))
        return float("nan"), float("nan")     # the loss is the grader's to compute

    record_logits(model, x_val)               # step 0: before any training

    # train.train needs labels next to x_val to evaluate; it gets placeholders.
    data = {"x_train": x_train, "y_train": y_train, "x_val": x_val,
            "y_val": np.zeros(len(x_val), dtype=np.int64)}
    evaluate = train.evaluate
    train.evaluate = record_logits
    progress = _Progress(config["max_steps"], "training steps")
    # Every optimizer.step() of the provided loop is one training step done.
    hook = register_optimizer_step_post_hook(lambda *_: progress.advance())
    try:
        history = train.train(model, data, train.TrainConfig(**dict(config, seed=seed)), progress=False)
    finally:
        hook.remove()
        train.evaluate = evaluate
    run = {"train_loss": np.array(history["train_loss"], dtype=np.float64),
           "val_step": np.array([0] + [v["step"] for v in history["val"]], dtype=np.int64),
           "val_logits": np.stack(logits),
           "diverged_at_step": int(history.get("diverged_at_step", 0)),
           "parameters": int(history["parameters"])}
    del model, data, history
    _release_memory()
    return run
