"""Comparing a student's array with an expected one, in the grader, and
saying how they differ: error sizes and where the wrong entries are.

Hidden expected values are never put into a message: only the student's own
values, error sizes and positions are. Expected values of public cases may
be shown (show_expected=True).
"""
import numpy as np

RTOL = 1e-5     # relative tolerance on values
ATOL = 1e-7     # absolute tolerance, relative to the largest expected magnitude

# Axis names by array role, for messages such as "in filters 0, 2 of 4".
IMAGE_AXES = ("sample", "channel", "row", "column")
CONV_OUT_AXES = ("sample", "filter", "row", "column")
KERNEL_AXES = ("filter", "channel", "kernel row", "kernel column")
FEATURE_AXES = ("sample", "feature")


def fmt_shape(shape):
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def fmt_number(value):
    return f"{value:.4g}"


def fmt_value(value):
    """Compact text for call parameters: dicts in a stable order, floats short."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"'{k}': {fmt_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return fmt_number(value)
    if isinstance(value, np.ndarray):
        return fmt_shape(value.shape)
    return repr(value)


def tolerance(expected):
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    return RTOL * np.abs(expected) + ATOL * scale


def is_numeric_array(value):
    return isinstance(value, np.ndarray) and value.dtype.kind in "biuf"


def matches(actual, expected):
    """Same shape, all finite, every entry within tolerance."""
    if not is_numeric_array(actual) or actual.shape != expected.shape:
        return False
    actual = actual.astype(np.float64)
    if not np.all(np.isfinite(actual)):
        return False
    return bool(np.all(np.abs(actual - expected) <= tolerance(expected)))


def wrong_entries(actual, expected):
    """Boolean mask of entries outside tolerance (non-finite entries are wrong)."""
    actual = actual.astype(np.float64)
    with np.errstate(invalid="ignore"):
        return ~(np.abs(actual - expected) <= tolerance(expected))


def error_sizes(actual, expected):
    """(max absolute error, max relative error) over finite entries."""
    actual = actual.astype(np.float64)
    finite = np.isfinite(actual)
    if not finite.any():
        return float("nan"), float("nan")
    diff = np.abs(actual - expected)[finite]
    scale = (np.abs(actual) + np.abs(expected))[finite]
    relative = diff / np.maximum(scale, 1e-12)
    return float(diff.max()), float(relative.max())


def describe_indices(indices, size, noun):
    indices = sorted(int(i) for i in indices)
    if len(indices) == size:
        return f"every {noun}" if size > 1 else None
    if len(indices) <= 6:
        listed = ", ".join(str(i) for i in indices)
    else:
        listed = ", ".join(str(i) for i in indices[:5]) + f", ... ({len(indices)} in all)"
    plural = noun if len(indices) == 1 else noun + "s"
    return f"{plural} {listed} of 0..{size - 1}"


def describe_location(wrong, axes):
    """Where the wrong entries are: border vs interior for image-like arrays,
    and which samples/channels/filters/features are affected."""
    parts = []
    if len(axes) == 4 and wrong.shape[2] >= 3 and wrong.shape[3] >= 3:
        height, width = wrong.shape[2], wrong.shape[3]
        border = np.zeros((height, width), dtype=bool)
        border[[0, -1], :] = True
        border[:, [0, -1]] = True
        spatial = wrong.any(axis=(0, 1))
        on_border, inside = bool((spatial & border).any()), bool((spatial & ~border).any())
        if on_border and not inside:
            # Corners belong to two sides: a side counts when it is wrong beyond its corners.
            sides = [name for name, line in (("top", spatial[0, 1:-1]), ("bottom", spatial[-1, 1:-1]),
                                              ("left", spatial[1:-1, 0]), ("right", spatial[1:-1, -1]))
                     if line.any()] or ["corners"]
            parts.append(f"only on the border ({', '.join(sides)}); the interior is right")
        elif inside and not on_border:
            parts.append("only in the interior; the border is right")
        else:
            parts.append("on the border and in the interior")
    for axis, name in enumerate(axes):
        if len(axes) == 4 and axis >= 2:
            break
        if wrong.shape[axis] < 2:
            continue
        other_axes = tuple(a for a in range(wrong.ndim) if a != axis)
        affected = np.nonzero(wrong.any(axis=other_axes))[0]
        text = describe_indices(affected, wrong.shape[axis], name)
        if text:
            parts.append("in " + text)
    return "; ".join(parts)


def describe_difference(name, actual, expected, axes, show_expected):
    """Lines that say how `actual` differs from `expected` (same shape)."""
    wrong = wrong_entries(actual, expected)
    count, total = int(wrong.sum()), wrong.size
    actual64 = actual.astype(np.float64)
    lines = []
    bad = ~np.isfinite(actual64)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        lines.append(f"{name} has {int(bad.sum())} NaN or infinite values (first at {first})")
    max_abs, max_rel = error_sizes(actual, expected)
    summary = f"{name}: {count} of {total} values wrong"
    if np.isfinite(max_abs):
        summary += f" (max abs error {fmt_number(max_abs)}, max rel error {fmt_number(max_rel)})"
    location = describe_location(wrong, axes) if len(axes) == wrong.ndim else ""
    if location:
        summary += f", {location}"
    lines.insert(0, summary)
    first = tuple(int(i) for i in np.argwhere(wrong)[0])
    example = f"  e.g. at {list(first)}: yours {fmt_number(float(actual64[first]))}"
    if show_expected:
        example += f", expected {fmt_number(float(expected[first]))}"
    lines.append(example)
    return lines


def matching_mistakes(actual, variants):
    """Ids of the known wrong outputs that `actual` equals."""
    if not is_numeric_array(actual):
        return []
    return [mistake for mistake, variant in variants.items() if matches(actual, variant)]
