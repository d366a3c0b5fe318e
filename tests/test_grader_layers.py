"""The layer checks on whole submissions: the reference earns full marks,
stubs earn nothing, correct alternatives earn full marks, each plausible bug
costs points on its own function only and is named, misbehaving functions
cost only their own points, hidden expected values are never shown."""
import re

import numpy as np
import pytest

from autograder.cases import load_cases
from conftest import load_corpus

support = load_corpus("support")
BUGS = load_corpus("bugs").BUGS
ALTERNATIVES = load_corpus("alternatives").ALTERNATIVES
REFERENCE_DIR = support.REPO / "solutions" / "cnn"
HANDOUT_LAYERS = support.REPO / "assignments" / "cnn" / "layers.py"
STUDENT_FUNCTIONS = ["conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward",
                     "avg_pool_forward", "avg_pool_backward", "batchnorm_forward", "batchnorm_backward",
                     "spatial_batchnorm_forward", "spatial_batchnorm_backward", "dropout_forward",
                     "dropout_backward"]


def stub_layers(path):
    """The reference with every solution region replaced by NotImplementedError,
    as the handout's stubs are (assignments/cnn/layers.py is used when it exists)."""
    if HANDOUT_LAYERS.exists():
        path.write_text(HANDOUT_LAYERS.read_text())
        return
    lines, inside = [], False
    for line in support.REFERENCE_LAYERS.read_text().splitlines():
        if line.strip() == "# BEGIN SOLUTION":
            inside = True
            lines.append(line[:len(line) - len(line.lstrip())] + "raise NotImplementedError")
        elif line.strip() == "# END SOLUTION":
            inside = False
        elif not inside:
            lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def broadcasts(*shapes):
    try:
        np.broadcast_shapes(*shapes)
        return True
    except ValueError:
        return False


def lost_points(results):
    return {function: scores for function, scores in support.score_by_function(results).items()
            if scores[0] < scores[1]}


def test_reference_earns_full_marks_on_every_layer_check(tmp_path):
    results = support.grade(REFERENCE_DIR, tmp_path / "results.json")
    layer_tests = [t for t in results["tests"] if t["max_score"] > 0]
    assert len(layer_tests) == 14
    assert all(t["score"] == t["max_score"] and t["status"] == "passed" for t in layer_tests)
    assert results["score"] == support.points("layers")
    assert {tag for t in layer_tests for tag in t["tags"]} == set(STUDENT_FUNCTIONS)


def test_stubs_earn_zero_on_every_layer_check(tmp_path):
    folder = tmp_path / "stub"
    folder.mkdir()
    stub_layers(folder / "layers.py")
    results = support.grade(folder)
    layer_tests = [t for t in results["tests"] if t["max_score"] > 0]
    assert len(layer_tests) == 14
    for test in layer_tests:
        assert test["score"] == 0, test["name"]
        assert "NotImplementedError" in test["output"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ALTERNATIVES))
def test_correct_alternative_implementations_earn_full_marks(tmp_path, name):
    folder = support.make_submission(tmp_path / name, ALTERNATIVES[name])
    results = support.grade(folder)
    assert lost_points(results) == {}, [t["output"] for t in results["tests"] if t["score"] < t["max_score"]]
    assert results["score"] == support.points("layers")


def test_corpus_is_large_enough_and_covers_every_function():
    assert len(BUGS) >= 25 and len(ALTERNATIVES) >= 8
    assert {bug.function for bug in BUGS} == set(STUDENT_FUNCTIONS)


@pytest.mark.slow
@pytest.mark.parametrize("bug", BUGS, ids=[bug.name for bug in BUGS])
def test_each_bug_costs_its_own_function_only_and_is_named(tmp_path, bug):
    folder = support.make_submission(tmp_path / bug.name, bug.code)
    results = support.grade(folder)
    lost = lost_points(results)
    assert bug.function in lost, f"{bug.name} was not detected"
    # The reference's spatial functions call batchnorm_forward/backward, so a
    # bug there is also a bug of the spatial function in this submission.
    allowed = {bug.function} | support.CALLERS.get(bug.function, set())
    assert set(lost) <= allowed, f"{bug.name} also cost {sorted(set(lost) - allowed)}"
    assert bug.message in support.outputs_of(results, bug.function)


@pytest.mark.slow
def test_hang_exit_crash_raise_and_garbage_cost_only_their_own_functions(tmp_path):
    folder = support.make_submission(tmp_path / "misbehaving", """
        import os
        import sys

        def avg_pool_backward(dout, cache):
            while True:
                pass

        def max_pool_backward(dout, cache):
            sys.exit(3)

        def dropout_backward(dout, cache):
            os._exit(0)

        def batchnorm_backward(dout, cache):
            raise ValueError("shapes do not line up")

        _reference_avg_pool_forward = avg_pool_forward
        def avg_pool_forward(x, pool_param):
            out, cache = _reference_avg_pool_forward(x, pool_param)
            return out.astype(object), cache

        _reference_max_pool_forward = max_pool_forward
        def max_pool_forward(x, pool_param):
            out, cache = _reference_max_pool_forward(x, pool_param)
            return out * np.nan, cache

        _reference_conv_forward = conv_forward
        def conv_forward(x, w, b, conv_param):
            out, cache = _reference_conv_forward(x, w, b, conv_param)
            return out[..., :-1], cache

        def spatial_batchnorm_backward(dout, cache):
            return "dx", [1, 2], None
    """)
    results = support.grade(folder, extra=["--call-timeout", "1"])
    broken = {"avg_pool_backward": "timed out", "max_pool_backward": "called sys.exit(3)",
              "dropout_backward": "exited with code 0",
              "batchnorm_backward": "ValueError: shapes do not line up",
              # not run where its forward's out has the wrong shape: here, every case
              "conv_backward": "not checked: conv_backward not run: conv_forward returned out of "
                               "shape (2, 2, 5, 4), expected (2, 2, 5, 5)",
              "avg_pool_forward": "array of dtype object", "max_pool_forward": "NaN or infinite",
              "conv_forward": "out has shape (2, 2, 5, 4), expected (2, 2, 5, 5)",
              "spatial_batchnorm_backward": "got a str"}
    scores = support.score_by_function(results)
    for function in STUDENT_FUNCTIONS:
        score, max_score = scores[function]
        if function in broken:
            assert score == 0, function
            assert broken[function] in support.outputs_of(results, function)
        else:
            assert score == max_score, function


def test_a_forward_that_raises_is_charged_once_and_its_backward_not_for_the_cases_it_cannot_run(tmp_path):
    # b broadcast along the width axis: crashes unless W_out == F (hidden case h5).
    folder = support.make_submission(tmp_path / "bias", """
        _reference_conv_forward = conv_forward
        def conv_forward(x, w, b, conv_param):
            out, cache = _reference_conv_forward(x, w, np.zeros_like(b), conv_param)
            return out + b, cache
    """)
    results = support.grade(folder)
    assert set(lost_points(results)) == {"conv_forward"}
    assert "broadcast along the width axis" in support.outputs_of(results, "conv_forward")
    backward = next(t for t in results["tests"] if t["tags"] == ["conv_backward"])
    cases = load_cases().group("conv")
    # The backward runs where the forward returned out of the right shape: where
    # out + b broadcasts without growing (a 1x1 output grows to width F).
    runnable = [c for c in cases if broadcasts(c.expected["out"].shape, c.inputs["b"].shape)
                and np.broadcast_shapes(c.expected["out"].shape, c.inputs["b"].shape)
                == c.expected["out"].shape]
    assert len(runnable) < len(cases)
    assert backward["score"] == backward["max_score"]
    assert backward["output"].startswith(
        f"{len(runnable)}/{len(runnable)} cases correct ({len(cases) - len(runnable)} more not "
        f"checked: its forward failed first)")
    assert "conv_backward not run: conv_forward failed first" in backward["output"]


def test_a_backward_is_not_charged_where_its_forward_returned_the_wrong_shape(tmp_path):
    """A max_pool_forward sized with round() returns 16x16 for 15x15 on the
    32x32 case (3x3 windows, stride 2); its backward is then given a 15x15
    dout and may fail: that case is charged to the forward only."""
    folder = support.make_submission(tmp_path / "rounded", """
        _reference_max_pool_forward = max_pool_forward
        _reference_max_pool_backward = max_pool_backward
        def max_pool_forward(x, pool_param):
            out, cache = _reference_max_pool_forward(x, pool_param)
            if x.shape[2] == 32:
                out = np.pad(out, ((0, 0), (0, 0), (0, 1), (0, 1)))
            return out, cache
        def max_pool_backward(dout, cache):
            if cache[0].shape[2] == 32:
                raise IndexError("index 15 is out of bounds for axis 2 with size 15")
            return _reference_max_pool_backward(dout, cache)
    """)
    results = support.grade(folder)
    assert set(lost_points(results)) == {"max_pool_forward"}
    backward = next(t for t in results["tests"] if t["tags"] == ["max_pool_backward"])
    assert "max_pool_backward not run: max_pool_forward returned out of shape" in backward["output"]


def test_a_backward_whose_forward_always_raises_is_not_checked_and_scores_nothing(tmp_path):
    folder = support.make_submission(tmp_path / "raises", """
        def conv_forward(x, w, b, conv_param):
            raise RuntimeError("not done yet")
    """)
    results = support.grade(folder)
    backward = next(t for t in results["tests"] if t["tags"] == ["conv_backward"])
    assert backward["score"] == 0
    assert backward["output"].startswith("not checked: conv_backward not run: conv_forward failed "
                                         "first (raised RuntimeError: not done yet)")


def test_feedback_says_where_values_differ_and_never_shows_hidden_expected_values(tmp_path):
    folder = support.make_submission(tmp_path / "pad", """
        _reference_conv_forward = conv_forward
        def conv_forward(x, w, b, conv_param):
            pad = conv_param['pad']
            x_pad = np.pad(x, ((0, 0), (0, 0), (0, 2 * pad), (0, 2 * pad)))
            out, _ = _reference_conv_forward(x_pad, w, b, dict(conv_param, pad=0))
            return out, (x, w, b, conv_param)
    """)
    results = support.grade(folder)
    output = support.outputs_of(results, "conv_forward")
    assert "2*pad zeros are added below and right" in output
    assert "max abs error" in output and "on the border and in the interior" in output
    assert re.search(r"public case p\d.*\n.*\n\s+e\.g\. at \[.*\]: yours \S+, expected \S+", output)
    current = None
    for line in output.splitlines():
        label = re.match(r"- (public|hidden) case", line)
        if label:
            current = label.group(1)
        if current == "hidden":
            assert not re.search(r"expected -?\d", line), line


def test_a_backward_consistent_with_a_wrong_forward_keeps_its_points(tmp_path):
    # A true convolution, forward and backward: the forward is wrong, but its
    # backward is the exact derivative of that forward, so conv_backward keeps its points.
    folder = support.make_submission(tmp_path / "consistent", """
        _reference_conv_forward = conv_forward
        def conv_forward(x, w, b, conv_param):
            return _reference_conv_forward(x, w[:, :, ::-1, ::-1], b, conv_param)

        _reference_conv_backward = conv_backward
        def conv_backward(dout, cache):
            dx, dw, db = _reference_conv_backward(dout, cache)
            return dx, dw[:, :, ::-1, ::-1], db
    """)
    results = support.grade(folder)
    assert set(lost_points(results)) == {"conv_forward"}
    assert "exact derivative of your conv_forward" in support.outputs_of(results, "conv_backward")


def test_a_degenerate_forward_does_not_let_a_zero_backward_pass(tmp_path):
    folder = support.make_submission(tmp_path / "zeros", """
        def batchnorm_forward(x, gamma, beta, bn_param):
            return np.zeros_like(x), None

        def batchnorm_backward(dout, cache):
            return np.zeros_like(dout), np.zeros(dout.shape[1]), np.zeros(dout.shape[1])
    """)
    results = support.grade(folder)
    backward = next(t for t in results["tests"] if t["tags"] == ["batchnorm_backward"])
    assert backward["score"] == 0
    assert "hardly depends on this input" in backward["output"]


def test_every_known_mistake_in_the_case_data_has_a_message():
    from autograder.parts.layers import batchnorm, conv, pool
    messages = {
        ("conv", "standard", "out"): conv.FORWARD_MISTAKES,
        ("max_pool", "standard", "out"): pool.MAX_FORWARD_MISTAKES,
        ("max_pool", "standard", "dx"): pool.MAX_BACKWARD_MISTAKES["dx"],
        ("avg_pool", "standard", "out"): pool.AVG_FORWARD_MISTAKES,
        ("avg_pool", "standard", "dx"): pool.AVG_BACKWARD_MISTAKES["dx"],
    }
    for name in ("dx", "dw", "db"):
        messages[("conv", "standard", name)] = conv.BACKWARD_MISTAKES[name]
    for group in ("batchnorm", "spatial_batchnorm"):
        messages[(group, "train", "out")] = batchnorm.OUTPUT_MISTAKES
        messages[(group, "test", "out")] = batchnorm.TEST_MISTAKES
        for kind in ("train", "sequence"):
            for name in ("running_mean", "running_var"):
                messages[(group, kind, name)] = batchnorm.RUNNING_MISTAKES
        for name in ("dx", "dgamma", "dbeta"):
            messages[(group, "train", name)] = batchnorm.BACKWARD_MISTAKES[name]
    seen = 0
    for group, cases in load_cases().groups.items():
        for case in cases:
            for output, variants in case.variants.items():
                known = messages[(group, case.kind, output)]
                for mistake in variants:
                    assert mistake in known, f"{group} {case.name} {output}: no message for {mistake}"
                    seen += 1
    assert seen > 100


def test_location_feedback_names_sides_and_channels():
    from autograder.parts.layers.compare import IMAGE_AXES, describe_location
    wrong = np.zeros((2, 3, 5, 5), dtype=bool)
    wrong[:, 1, 0, :] = True
    assert describe_location(wrong, IMAGE_AXES) == (
        "only on the border (top); the interior is right; in every sample; in channel 1 of 0..2")
    wrong[:] = False
    wrong[1, :, 2, 2] = True
    assert describe_location(wrong, IMAGE_AXES) == (
        "only in the interior; the border is right; in sample 1 of 0..1; in every channel")
