"""Judging what a student layer function returned: unpacking it into named
outputs, comparing an array with the expected one (naming known mistakes and
wrong shapes) into a Verdict, the call as shown in feedback, which inputs a
call changed, and why a backward could not run."""
from dataclasses import dataclass, field

import numpy as np

from autograder.parts.layers.compare import (describe_difference, fmt_number, fmt_shape, fmt_value,
                                             is_numeric_array, matches, matching_mistakes, wrong_entries)
from autograder.parts.layers.hints import EMPTY_PAD_SLICE, hint_for
from autograder.parts.layers.sizes import size_mistake
from autograder.sandbox import Opaque, Unsupported


def call_text(function, **arguments):
    """conv_forward(x (2, 3, 5, 5), conv_param {'stride': 1, 'pad': 1})"""
    shown = []
    for name, value in arguments.items():
        if isinstance(value, np.ndarray):
            shown.append(f"{name} {fmt_shape(value.shape)}")
        else:
            shown.append(f"{name} {fmt_value(value)}")
    return f"{function}(" + ", ".join(shown) + ")"


def describe_returned(value):
    """What a student function returned, for messages about wrong types."""
    if value is None:
        return "None (is a return statement missing?)"
    if isinstance(value, Unsupported):
        return value.reason
    if isinstance(value, Opaque):
        return f"a {value.type_name} object"
    if isinstance(value, np.ndarray):
        return f"an array of shape {fmt_shape(value.shape)}"
    if isinstance(value, float):
        return f"the number {fmt_number(value)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


def unpack(value, names, function):
    """Split what a function returned into named items: (dict, problem text).
    One name: the value itself; several: a tuple or list of that length."""
    if len(names) == 1:
        return {names[0]: value}, None
    if not isinstance(value, (tuple, list)) or len(value) != len(names):
        return None, (f"{function} must return a tuple ({', '.join(names)}); "
                      f"it returned {describe_returned(value)}")
    return dict(zip(names, value)), None


def unpack_forward(value, function):
    """A forward's (out, cache) with the worker's encode="out_cache": out or a problem."""
    if isinstance(value, Unsupported):
        return None, f"{function} must return a pair (out, cache); {value.reason}"
    if not isinstance(value, tuple) or len(value) != 2:
        return None, f"{function} must return a pair (out, cache); it returned {describe_returned(value)}"
    return value[0], None


@dataclass
class Verdict:
    ok: bool
    lines: list = field(default_factory=list)
    mistakes: list = field(default_factory=list)   # messages of recognised mistakes
    # A gradient that equals the derivative of the student's forward where that
    # forward is constant on this case (e.g. batch norm without eps on 2 samples):
    # credited only if the function earns credit on a case where it is not.
    matches_constant_forward: bool = False
    # Where a 4-d output of a public case is wrong: per row and column, the share of wrong
    # values over samples and channels (a picture on Gradescope); None otherwise.
    error_map: object = None


def judge_array(name, actual, expected, axes, case, variants=None, messages=None):
    """Compare one returned array with the expected one; name known mistakes."""
    variants = variants or {}
    messages = messages or {}
    found = [messages[m] for m in matching_mistakes(actual, variants) if m in messages]
    if matches(actual, expected):
        return Verdict(True)
    if not is_numeric_array(actual):
        if actual is None and not found:
            found.append(NONE_RETURNED.format(name=name))
        return Verdict(False, [f"{name}: expected an array of shape {fmt_shape(expected.shape)}, "
                               f"got {describe_returned(actual)}"], found)
    if actual.shape != expected.shape:
        lines = [f"{name} has shape {fmt_shape(actual.shape)}, expected {fmt_shape(expected.shape)}"]
        shape_mistake = (wrong_shape_mistake(name, actual, expected)
                         or size_mistake(name, actual, expected, case))
        if shape_mistake and not found:
            found.append(shape_mistake)
        if not found:
            same_shape = [messages[m] for m, v in variants.items()
                          if v.shape == actual.shape and m in messages]
            if same_shape:
                lines.append(f"  (that is the shape you get when {same_shape[0]})")
        return Verdict(False, lines, found)
    lines = describe_difference(name, actual, expected, axes, show_expected=case.public)
    if not np.any(actual):
        lines.append(f"  {name} is all zeros")
    # Hidden cases get no picture: the hidden tests carry nothing drawn from hidden data.
    where = wrong_entries(actual, expected).mean(axis=(0, 1)) if case.public and actual.ndim == 4 else None
    return Verdict(False, lines, found, error_map=where)


NONE_RETURNED = ("{name} is None: it is never computed (the `{name} = None` placeholder is "
                 "returned as it is) or the function does not return it")
EXTRA_AXES = ("the values are right but {name} has extra axes of length 1 (keepdims=True, or a "
              "(1, D) array): return shape {shape}, e.g. with .reshape({reshape}) or without keepdims")
RESHAPED = ("the values are right but arranged in shape {actual}: return them in shape {shape} "
            "(reshape at the end)")


def wrong_shape_mistake(name, actual, expected):
    """The likely mistake behind an array of the wrong shape, or None: extra
    axes of length 1 with the right values (keepdims), an empty crop of a
    padded gradient (pad:-pad with pad 0), a gradient not summed over the
    batch, the right values in another shape."""
    values = actual.astype(np.float64)
    if actual.size == expected.size and actual.size:
        flat = values.reshape(expected.shape)
        if matches(flat, expected):
            if tuple(d for d in actual.shape if d != 1) == tuple(d for d in expected.shape if d != 1):
                reshape = ", ".join(str(d) for d in expected.shape) + ("," if expected.ndim == 1 else "")
                return EXTRA_AXES.format(name=name, shape=fmt_shape(expected.shape), reshape=reshape)
            return RESHAPED.format(actual=fmt_shape(actual.shape), shape=fmt_shape(expected.shape))
    if (name == "dx" and actual.ndim == expected.ndim == 4 and actual.shape[:2] == expected.shape[:2]
            and actual.size == 0 and expected.size > 0):
        return EMPTY_PAD_SLICE
    if (name.startswith("d") and actual.ndim == expected.ndim + 1
            and actual.shape[1:] == expected.shape and actual.shape[0] > 1):
        if matches(values.sum(axis=0), expected):
            return "the gradient is not summed over the batch: add .sum(axis=0)"
    return None


def forward_failed(forward, backward, result):
    """(why a backward could not run because its forward, which makes the
    cache, failed; whether to charge the backward for it). A forward that
    failed on this case is charged for it already (a forward bug is charged
    once), so the backward is not; a missing file, an import error or the
    budget leave nothing to check, and cost both."""
    if result.error and result.error.get("kind") in ("missing_file", "import_error", "not_run"):
        return result.error_text(), True
    first_line = result.error_text().split("\n")[0]
    hint = hint_for(result.error_text(), forward)
    cause = f"; likely mistake in {forward}: {hint}" if hint else ""
    return (f"{backward} not run: {forward} failed first ({first_line}{cause}) and {backward} "
            f"needs its cache"), False


def forward_wrong_shape(forward, backward, out, dout):
    """Why a backward is not checked on a case where its forward returned an
    output of the wrong shape: the case's dout cannot fit what that forward
    made (charged to the forward, once), or None when the shape is right."""
    if not is_numeric_array(out) or out.shape == dout.shape:
        return None
    return (f"{backward} not run: {forward} returned out of shape {fmt_shape(out.shape)}, "
            f"expected {fmt_shape(dout.shape)} (charged to {forward}), so this case's dout "
            f"does not fit its cache")


def unchanged_inputs(reported, originals):
    """Names of the inputs a call changed. reported: {arg index: value after the
    call}; originals: {arg index: (name, array before)}."""
    changed = []
    for index, (name, before) in originals.items():
        after = reported.get(index)
        if not (isinstance(after, np.ndarray) and after.shape == before.shape
                and after.dtype == before.dtype and np.array_equal(after, before)):
            changed.append(name)
    return changed
