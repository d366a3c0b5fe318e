"""The rules that name the mistakes issue #23 found in real student code that
still got only a shape, a count of wrong values or a bare error
(tests/grader_corpus/real_patterns_23.py; each pattern is graded, and must
lose points only where it should and get its name, in
tests/test_grader_real_patterns.py)."""
from types import SimpleNamespace

import numpy as np
import pytest

from autograder.parts.layers import sizes
from autograder.parts.layers.hints import EMPTY_PAD_SLICE, hint_for
from conftest import load_corpus

PATTERNS = load_corpus("real_patterns_23").PATTERNS


def test_every_pattern_fails_and_names_its_mistake():
    assert len(PATTERNS) >= 14
    assert all(p.verdict == "fail" and p.message for p in PATTERNS)


def conv_case(H, W, HH, WW, stride, pad, N=2, C=3, F=4):
    return SimpleNamespace(inputs={"x": np.zeros((N, C, H, W)), "w": np.zeros((F, C, HH, WW))},
                           params={"conv_param": {"stride": stride, "pad": pad}})


def pool_case(H, W, ph, pw, stride, N=2, C=3):
    return SimpleNamespace(inputs={"x": np.zeros((N, C, H, W))},
                           params={"pool_param": {"pool_height": ph, "pool_width": pw, "stride": stride}})


def out_of(shape, expected):
    """An output of `shape` whose common part with `expected` equals it."""
    out = np.full(shape, 7.0)
    h, w = min(shape[2], expected.shape[2]), min(shape[3], expected.shape[3])
    out[:, :, :h, :w] = expected[:, :, :h, :w]
    return out


@pytest.mark.parametrize("case, shape, mistake", [
    (pool_case(32, 32, 3, 3, 2), (2, 3, 16, 16), sizes.ROUNDED_UP),
    (conv_case(9, 7, 5, 3, 3, 0), (2, 4, 3, 2), sizes.ROUNDED_UP),
    (conv_case(11, 13, 4, 2, 2, 1), (2, 4, 5, 6), sizes.WIDTH_FROM_KERNEL_HEIGHT),
    (pool_case(6, 8, 2, 4, 2), (2, 3, 3, 4), sizes.WIDTH_FROM_POOL_HEIGHT),
    (pool_case(7, 7, 3, 3, 2), (2, 3, 2, 2), sizes.WITHOUT_STRIDE),
    (conv_case(4, 6, 2, 3, 1, 0), (2, 4, 3, 3), sizes.HEIGHT_FOR_WIDTH),
])
def test_output_size_mistakes_are_named_from_the_case_sizes(case, shape, mistake):
    H, W = case.inputs["x"].shape[2:]
    if "conv_param" in case.params:
        HH, WW = case.inputs["w"].shape[2:]
        stride, pad = case.params["conv_param"]["stride"], case.params["conv_param"]["pad"]
        F = case.inputs["w"].shape[0]
    else:
        HH, WW = case.params["pool_param"]["pool_height"], case.params["pool_param"]["pool_width"]
        stride, pad, F = case.params["pool_param"]["stride"], 0, 3
    expected = np.random.RandomState(0).randn(2, F, 1 + (H + 2 * pad - HH) // stride,
                                              1 + (W + 2 * pad - WW) // stride)
    assert sizes.size_mistake("out", out_of(shape, expected), expected, case) == mistake
    # the same shape with other values in the common part is not named
    assert sizes.size_mistake("out", np.full(shape, 7.0), expected, case) is None


def test_a_conv_dx_cropped_by_one_is_named_only_where_pad_is_not_1():
    expected = np.zeros((2, 3, 5, 5))
    assert sizes.size_mistake("dx", np.zeros((2, 3, 3, 3)), expected,
                              conv_case(5, 5, 3, 3, 1, 0)) == sizes.CROP_FIXED_ONE
    assert sizes.size_mistake("dx", np.zeros((2, 3, 7, 7)), expected,
                              conv_case(5, 5, 3, 3, 1, 2)) == sizes.CROP_FIXED_ONE
    assert sizes.size_mistake("dx", np.zeros((2, 3, 5, 4)), expected, conv_case(5, 5, 3, 3, 1, 1)) is None


def test_height_for_width_needs_square_cases_right_and_only_others_wrong():
    square, oblong = conv_case(5, 5, 3, 3, 1, 1), conv_case(4, 6, 2, 3, 1, 0)
    assert sizes.signature_mistake([(square, True), (oblong, False)], {}) == sizes.HEIGHT_FOR_WIDTH
    assert sizes.signature_mistake([(square, False), (oblong, False)], {}) is None
    assert sizes.signature_mistake([(oblong, False)], {}) is None, "no square case to compare"
    assert sizes.signature_mistake([(square, True), (oblong, False)], {"another mistake": 1}) is None


def test_an_empty_crop_assigned_into_dx_names_the_minus_zero_slice():
    text = ("raised ValueError: could not broadcast input array from shape (3,0,0) into "
            "shape (3,5,5)")
    assert hint_for(text, "conv_backward") == EMPTY_PAD_SLICE
    assert hint_for(text.replace("(3,0,0)", "(3,4,4)"), "conv_backward") is None
    assert hint_for(text, "conv_forward") is None


def test_rounding_up_is_named_from_the_cases_where_it_adds_a_row():
    divides, rounds_half, rounds_up = (conv_case(5, 5, 3, 3, 1, 1), conv_case(11, 13, 4, 2, 2, 1),
                                       conv_case(9, 7, 5, 3, 3, 0))
    assert sizes.rounded_up(divides) == set()
    assert sizes.rounded_up(rounds_half) == {"ceil", "round", "half_up"}
    assert sizes.rounded_up(rounds_up) == {"ceil"}
    outcomes = [(divides, True), (rounds_half, False), (rounds_up, True)]
    assert sizes.signature_mistake(outcomes, {}) == sizes.ROUNDED_UP
    # ceil would fail both
    assert sizes.signature_mistake([(divides, True), (rounds_half, False), (rounds_up, False)],
                                   {}) == sizes.ROUNDED_UP
    assert sizes.signature_mistake([(divides, False), (rounds_half, False)], {}) is None
