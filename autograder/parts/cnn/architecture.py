"""The architecture rules, judged from what worker_torch.inspect_model reports."""
from autograder.parts import CheckResult

INPUT = "(N, 3, 32, 32) float32"
COUNTS = ("conv", "linear", "norm", "other_conv", "other", "parameters", "multiply_adds", "activations",
          "extra_tensors", "largest_extra_tensor", "norm_statistics")
TEXTS = ("layers_text", "conv_text", "foreign_text", "extra_tensors_text")
ALLOWED_TENSORS = ("Beyond the weight and bias of its layers, a model may hold only the running statistics of "
                   "its normalization layers (running_mean, running_var, num_batches_tracked): keep "
                   "constants out of the model's state (a Python number or tuple, or a tensor made in "
                   "forward on the input's device) and register no other buffers or parameters.")


def readable(report):
    """The report with its counts as ints, or None when it is not the expected shape."""
    if not isinstance(report, dict):
        return None
    if not all(isinstance(report.get(key), float) for key in COUNTS):
        return None
    if not all(isinstance(report.get(key), str) for key in TEXTS):
        return None
    return dict(report, **{key: int(report[key]) for key in COUNTS})


def judge(name, report, settings):
    """CheckResult of one class's architecture check."""
    report = readable(report)
    if report is None:
        return CheckResult(0.0, f"{name} could not be inspected: the worker returned an unreadable report")
    weight = report["conv"] + report["linear"]
    head = f"{weight} weight layers (Conv2d x{report['conv']}, Linear x{report['linear']})"
    lines = ["  layers with parameters, in order:"] + [
        f"    {line}" for line in report["layers_text"].splitlines()]
    budget = settings[f"{name.lower()}_max_parameters"]
    problems = []
    if name == "ConvNet":
        low, high = settings["convnet_weight_layers"]
        if not low <= weight <= high:
            problems.append(f"ConvNet has {head}; it must have {low} to {high} "
                            f"(nn.Conv2d and nn.Linear count, batch norm does not)")
        if report["conv"] < 2:
            problems.append(f"ConvNet has {report['conv']} nn.Conv2d layers; it needs at least 2")
        if report["other_conv"] + report["other"]:
            problems.append("ConvNet's weight layers must be nn.Conv2d and nn.Linear (plus "
                            "normalization); found " + _inline(report["foreign_text"]))
    else:
        if report["conv"] + report["other_conv"]:
            problems.append(f"FCNet must use nn.Linear weight layers only; found convolutions: "
                            f"{_inline(report['conv_text'])}")
        elif report["other"]:
            problems.append("FCNet's weight layers must be nn.Linear (plus normalization); found "
                            + _inline(report["foreign_text"]))
        if not report["linear"]:
            problems.append("FCNet has no nn.Linear layer")
    if report["parameters"] > budget:
        problems.append(f"{name} has {report['parameters']:,} parameters; the limit is {budget:,}")
    problems += _tensor_problems(name, report, settings)
    problems += _compute_problems(name, report, settings)
    output = _output_problem(name, report)
    if output:
        problems.append(output)
    if problems:
        return CheckResult(0.0, problems[0], problems[1:] + [f"  found: {head}"] + lines)
    return CheckResult(1.0, f"{name}: {head}, {report['parameters']:,} parameters, "
                            f"maps {INPUT} to (N, 10) float32", [compute_text(name, report, settings)] + lines)


def amount(count):
    """2410000000 -> '2.41 G', 76974000 -> '77.0 M', 8300 -> '8.3 k'."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= size:
            value = count / size
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{count:.0f}"


def compute_text(name, report, settings):
    """The model's cost per image next to the limits of the compute rule."""
    prefix = name.lower()
    return (f"  compute per image: {amount(report['multiply_adds'])} multiply-adds (limit "
            f"{amount(settings[prefix + '_max_multiply_adds'])}), {amount(report['activations'])} "
            f"activation values (limit {amount(settings[prefix + '_max_activations'])})")


def _compute_problems(name, report, settings):
    """The compute rule: multiply-adds and activation values of one forward
    pass per image (worker_torch.model_cost), each under its limit."""
    prefix, problems = name.lower(), []
    limit = settings[f"{prefix}_max_multiply_adds"]
    if report["multiply_adds"] > limit:
        problems.append(f"{name}: {amount(report['multiply_adds'])} multiply-adds per image; the limit "
                        f"is {amount(limit)} (convolutions at full 32x32 resolution cost the most: "
                        f"pool earlier or use fewer channels there)")
    limit = settings[f"{prefix}_max_activations"]
    if report["activations"] > limit:
        problems.append(f"{name}: {amount(report['activations'])} activation values per image (every "
                        f"tensor a forward pass creates); the limit is {amount(limit)} (wide layers at "
                        f"full resolution create the most: pool earlier or use fewer channels there)")
    return problems


def _tensor_problems(name, report, settings):
    """State-dict hygiene: no tensor beyond the allowed ones, and running
    statistics within max_norm_statistics values."""
    problems = []
    if report["extra_tensors"]:
        problems.append(f"{name} holds {report['extra_tensors']} tensor{'s' if report['extra_tensors'] > 1 else ''} "
                        f"the architecture rules do not allow: {_inline(report['extra_tensors_text'])}. "
                        + ALLOWED_TENSORS)
    limit = settings["max_norm_statistics"]
    if report["norm_statistics"] > limit:
        problems.append(f"{name}'s normalization layers hold {report['norm_statistics']:,} running-statistic "
                        f"values; the limit is {limit:,}")
    return problems


def _inline(text):
    return "; ".join(text.splitlines())


def _output_problem(name, report):
    if isinstance(report.get("output"), str):
        return f"{name}()(x) for x {INPUT} returned {report['output']}; expected logits (N, 10)"
    shape, dtype = report.get("output_shape"), report.get("output_dtype")
    if shape != [2.0, 10.0]:
        shown = tuple(int(v) for v in shape) if isinstance(shape, list) else shape
        return f"{name}() maps a (2, 3, 32, 32) batch to shape {shown}; expected (2, 10)"
    if dtype != "float32":
        return f"{name}() returns {dtype} logits; expected float32"
    if report.get("output_finite") != 1.0:
        return f"{name}() returns NaN or infinite logits for a random input batch"
    return None
