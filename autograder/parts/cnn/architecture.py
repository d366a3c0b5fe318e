"""The architecture rules, judged from what worker_torch.inspect_model reports."""
from autograder.parts import CheckResult

INPUT = "(N, 3, 32, 32) float32"
COUNTS = ("conv", "linear", "norm", "other_conv", "other", "parameters")
TEXTS = ("layers_text", "conv_text", "foreign_text")


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
    output = _output_problem(name, report)
    if output:
        problems.append(output)
    if problems:
        return CheckResult(0.0, problems[0], problems[1:] + [f"  found: {head}"] + lines)
    return CheckResult(1.0, f"{name}: {head}, {report['parameters']:,} parameters, "
                            f"maps {INPUT} to (N, 10) float32", lines)


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
