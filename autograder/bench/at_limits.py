"""A synthetic submission at the limits of the rules, for ``make bench``
(autograder/bench/bench.py grades it in a box of Gradescope's default machine):
layers.py of the reference, and a models.py whose FCNet and ConvNet sit just
under every limit of the rubric (parameters, multiply-adds and activations
per image), measured with the compute rule's own train.model_cost.
Deterministic; checkpoints of freshly initialized models."""
import functools
import sys
from pathlib import Path

from autograder.layout import REFERENCE_DIR


AT_LIMITS_MODELS = '''"""A synthetic submission at the limits of the rules, written by
autograder/bench/at_limits.py: legal, freshly initialized, as costly as the rules allow."""
import torch
from torch import nn

CONV_WIDTH = {conv_width}
CONV_BLOCKS = {conv_blocks}
CONV_RESIDUAL = {conv_residual}
CONV_HALF = {conv_half}
CONV_WIDE = {conv_wide}
CONV_POOL = {conv_pool}
CONV_HIDDEN = {conv_hidden}
FC_WIDTH = {fc_width}
FC_PIXEL_LAYERS = {fc_pixel_layers}
FC_NORMED = {fc_normed}
FC_HIDDEN = {fc_hidden}


class Block(nn.Module):
    """Conv2d 3x3 -> BatchNorm2d -> ReLU at full resolution, plus its input when residual."""

    def __init__(self, c_in, c_out, residual=False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.residual = residual

    def forward(self, x):
        y = self.relu(self.bn(self.conv(x)))
        return x + y if self.residual else y


class ConvNet(nn.Module):
    """A stem and CONV_BLOCKS - CONV_HALF blocks at full 32x32 resolution, then
    (when CONV_HALF > 0) 2x2 max pooling and CONV_HALF wider blocks at 16x16."""

    def __init__(self):
        super().__init__()
        full = [Block(CONV_WIDTH, CONV_WIDTH, residual=i < CONV_RESIDUAL)
                for i in range(CONV_BLOCKS - CONV_HALF)]
        half = [Block(CONV_WIDTH if i == 0 else CONV_WIDE, CONV_WIDE) for i in range(CONV_HALF)]
        width = CONV_WIDE if CONV_HALF else CONV_WIDTH
        self.features = nn.Sequential(Block(3, CONV_WIDTH), *full, *([nn.MaxPool2d(2)] if half else []), *half)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(CONV_POOL), nn.Flatten(),
            nn.Linear(width * CONV_POOL ** 2, CONV_HIDDEN), nn.ReLU(), nn.Linear(CONV_HIDDEN, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class PixelLinear(nn.Module):
    """nn.Linear on each pixel's features, BatchNorm1d when normed, ReLU: (N, P, C) -> (N, P, out)."""

    def __init__(self, c_in, c_out, normed):
        super().__init__()
        self.linear = nn.Linear(c_in, c_out, bias=not normed)
        self.bn = nn.BatchNorm1d(c_out) if normed else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.linear(x)
        if self.bn is not None:
            x = self.bn(x.transpose(1, 2)).transpose(1, 2)
        return self.relu(x)


class FCNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.pixels = nn.Sequential(PixelLinear(3, FC_WIDTH, normed=FC_NORMED > 0), *[
            PixelLinear(FC_WIDTH, FC_WIDTH, normed=i + 1 < FC_NORMED) for i in range(FC_PIXEL_LAYERS)])
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(FC_WIDTH * 32 * 32, FC_HIDDEN, bias=False), nn.BatchNorm1d(FC_HIDDEN),
            nn.ReLU(), nn.Linear(FC_HIDDEN, 10))

    def forward(self, x):
        return self.classifier(self.pixels(x.flatten(2).transpose(1, 2)))
'''
CONV_POOL = 4     # the ConvNet head's AdaptiveAvgPool2d size


def _at_limits_classes(**sizes):
    """{'ConvNet': class, 'FCNet': class} of AT_LIMITS_MODELS with these sizes."""
    namespace = {}
    exec(compile(AT_LIMITS_MODELS.format(**sizes), "at_limits_models.py", "exec"), namespace)
    return namespace


def _parameters(cls):
    """Trainable parameters of cls() (built on the meta device: no memory, no initialization)."""
    import torch

    with torch.device("meta"):
        return sum(p.numel() for p in cls().parameters() if p.requires_grad)


@functools.lru_cache(maxsize=None)
def provided_model_cost():
    """The compute rule's one measurement, model_cost of the grader's provided
    train.py, loaded under a private name (its `from data import ...` gets the
    provided data.py, and sys.modules is left as it was)."""
    import importlib.util

    from autograder.provided import load_data_module, provided_path

    spec = importlib.util.spec_from_file_location("bench_provided_train", provided_path("train.py"))
    module = importlib.util.module_from_spec(spec)
    before = sys.modules.get("data")
    sys.modules["data"] = load_data_module()
    try:
        spec.loader.exec_module(module)
    finally:
        if before is None:
            del sys.modules["data"]
        else:
            sys.modules["data"] = before
    return module.model_cost


def _figures(model):
    """{'parameters', 'multiply_adds', 'activations'} of model, as the grader measures them."""
    return dict(provided_model_cost()(model), parameters=sum(p.numel() for p in model.parameters() if p.requires_grad))


def _largest(low, high, fits):
    """The largest integer n in [low, high] with fits(n) (fits is monotone, fits(low) holds)."""
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def at_limits_sizes(settings):
    """The sizes of AT_LIMITS_MODELS that put each model just under every limit of
    settings (a load_settings mapping), searched with the grader's own measure
    (worker_torch.model_cost); a few seconds.

    ConvNet: the most weight layers allowed (a stem, the blocks, two Linear):
    blocks at full 32x32 resolution, which take the activations, then 2x2 max
    pooling and wider blocks at 16x16, which take the multiply-adds, so that
    both limits bind at once (grading time grows with both: multiply-adds in
    the convolutions, activations in batch norm, ReLU and pooling and in the
    training memory). Searched: how many blocks run at 16x16, the full-resolution
    width on a coarse grid, and for each the largest 16x16 width that fits; the
    hidden Linear takes the parameters left. An all-full-resolution net (the
    earlier design here) meets the activation limit of 1.0M at only 137M
    multiply-adds.

    FCNet: nn.Linear layers only, the first ones on each pixel's features (reused
    at all 1,024 pixels: the only way a Linear-only net comes near the
    multiply-add and activation limits without breaking the parameter limit; a
    plain flatten-then-Linear net costs about as many multiply-adds as it has
    parameters and almost no activations), then a flattening Linear whose width
    takes the parameters left; the number of pixel layers and of those with
    batch norm (one activation tensor more each) that bring the multiply-adds and
    activations closest to their limits."""
    keys = ("parameters", "multiply_adds", "activations")

    def figures(kind, sizes, prefix):
        """(every figure under its limit, figures); the forward pass only once the parameters fit."""
        cls = _at_limits_classes(**sizes)[kind]
        if _parameters(cls) > settings[f"{prefix}_max_parameters"]:
            return False, None
        measured = _figures(cls())
        return all(measured[key] <= settings[f"{prefix}_max_{key}"] for key in keys), measured

    def fill(kind, sizes, key, prefix):
        """sizes with the hidden width `key` just under the parameter limit (parameters are linear in it)."""
        counts = [_parameters(_at_limits_classes(**dict(sizes, **{key: hidden}))[kind]) for hidden in (16, 32)]
        hidden = 16 + (settings[f"{prefix}_max_parameters"] - counts[0]) * 16 // (counts[1] - counts[0])
        return dict(sizes, **{key: max(1, int(hidden))})

    def best(kind, prefix, trials, width_key, fill_key):
        """Of the trials (width searched, hidden width filled), the sizes closest to the
        multiply-add and activation limits."""
        chosen = (-1, None, None)
        for trial in trials:
            def fits(width):
                return figures(kind, fill(kind, dict(trial, **{width_key: width}), fill_key, prefix), prefix)[0]
            sizes = fill(kind, dict(trial, **{width_key: _largest(1, 1024, fits)}), fill_key, prefix)
            ok, measured = figures(kind, sizes, prefix)
            if ok:
                closeness = min(measured[key] / settings[f"{prefix}_max_{key}"] for key in keys[1:])
                chosen = max(chosen, (closeness, sizes, measured), key=lambda item: item[0])
        if chosen[1] is None:
            raise ValueError(f"no {kind} of autograder/bench/at_limits.py's design meets the rubric's limits")
        return chosen[1]

    sizes = {"conv_width": 8, "conv_blocks": settings["convnet_weight_layers"][1] - 3, "conv_residual": 0,
             "conv_half": 0, "conv_wide": 8, "conv_pool": CONV_POOL, "conv_hidden": 16,
             "fc_width": 4, "fc_pixel_layers": 1, "fc_normed": 0, "fc_hidden": 16}
    full_widths = sorted({round(8 * 1.25 ** k) for k in range(15)})      # 8 ... 182
    sizes = best("ConvNet", "convnet", [dict(sizes, conv_half=half, conv_width=width)
                                        for half in range(1, sizes["conv_blocks"] + 1)
                                        for width in full_widths],
                 "conv_wide", "conv_hidden")
    return best("FCNet", "fcnet", [dict(sizes, fc_pixel_layers=layers, fc_normed=normed)
                                   for layers in (1, 2) for normed in range(layers + 2)],
                "fc_width", "fc_hidden")


def write_at_limits_submission(folder, settings):
    """Write the at-limits submission into folder: the reference layers.py,
    AT_LIMITS_MODELS sized by at_limits_sizes, and state_dict checkpoints of
    freshly initialized models (seed 0). Returns {class name: figures}
    (parameters, multiply_adds, activations), each asserted under its limit."""
    import shutil

    import torch

    folder = Path(folder)
    shutil.copy(REFERENCE_DIR / "layers.py", folder / "layers.py")
    sizes = at_limits_sizes(settings)
    (folder / "models.py").write_text(AT_LIMITS_MODELS.format(**sizes))
    classes = _at_limits_classes(**sizes)
    measured = {}
    for name, checkpoint, prefix in (("FCNet", "fcnet.pt", "fcnet"), ("ConvNet", "convnet.pt", "convnet")):
        torch.manual_seed(0)
        model = classes[name]()
        torch.save(model.state_dict(), folder / checkpoint)
        measured[name] = _figures(classes[name]())
        for key, value in measured[name].items():
            assert value <= settings[f"{prefix}_max_{key}"], (name, key, value)
    return measured
