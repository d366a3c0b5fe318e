"""The mistakes real student code makes (tests/grader_corpus/real_patterns.py,
and real_patterns_23.py for those issue #23 found still unnamed): each costs
points on its own function only (or keeps them, for a backward that is right
for its own forward; a pattern's `also` lists the other functions it may
cost) and its feedback names the mistake."""

import pytest

from autograder.parts.layers.hints import hint_for
from conftest import load_corpus

support = load_corpus("support")
PATTERNS = load_corpus("real_patterns").PATTERNS + load_corpus("real_patterns_23").PATTERNS
# A constant batchnorm_forward also makes its spatial caller and the
# backward that follows it wrong; a forward without eps costs its backward
# nothing when the cache is right.
ALSO = {"bn_constant_forward_backward_not_blamed": {"batchnorm_forward", "spatial_batchnorm_forward",
                                                    "spatial_batchnorm_backward"},
        "dropout_backward_follows_a_forward_that_keeps_all": {"dropout_forward"},
        "bn_no_eps_backward_of_its_own_forward": {"batchnorm_forward", "spatial_batchnorm_forward"},
        # a backward needs the cache of its forward: where that forward raised, it cannot run
        "dropout_forward_2d_mask": {"dropout_backward"}}
for name in ("conv_forward_true_division_sizes", "conv_forward_np_int", "conv_forward_np_lib_pad",
             "conv_forward_scipy"):
    ALSO[name] = {"conv_backward"}
for name in ("max_pool_forward_argmax_rows_for_both", "max_pool_forward_xrange"):
    ALSO[name] = {"max_pool_backward"}


def lost_points(results):
    return {function: scores for function, scores in support.score_by_function(results).items()
            if scores[0] < scores[1]}


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.name for p in PATTERNS])
def test_real_pattern_verdict_and_named_mistake(tmp_path, pattern):
    folder = support.make_submission(tmp_path / pattern.name, pattern.code)
    results = support.grade(folder)
    lost = lost_points(results)
    output = support.outputs_of(results, pattern.function)
    if pattern.verdict == "fail":
        assert pattern.function in lost, f"{pattern.name} was not detected"
    else:
        assert pattern.function not in lost, output
    allowed = ({pattern.function} | support.CALLERS.get(pattern.function, set())
               | ALSO.get(pattern.name, set()) | getattr(pattern, "also", frozenset()))
    assert set(lost) <= allowed, f"{pattern.name} also cost {sorted(set(lost) - allowed)}"
    assert pattern.message in output, output
    if pattern.absent:
        assert pattern.absent not in output, output


def test_corpus_covers_the_issue_patterns():
    names = {p.name for p in PATTERNS}
    assert len(PATTERNS) >= 15
    assert {"conv_backward_crop_minus_zero", "max_pool_backward_assigned", "bn_test_eps_outside_sqrt",
            "conv_forward_true_division_sizes", "conv_forward_np_int", "conv_forward_np_lib_pad",
            "conv_forward_scipy", "dropout_forward_2d_mask",
            "dropout_backward_follows_a_forward_that_keeps_all"} <= names


@pytest.mark.parametrize("error, fix", [
    ("raised TypeError: 'float' object cannot be interpreted as an integer", "use // for sizes"),
    ("raised TypeError: slice indices must be integers or None or have an __index__ method",
     "use // for sizes"),
    ("raised AttributeError: module 'numpy' has no attribute 'int'.\n`np.int` was a deprecated alias",
     "np.int was removed in NumPy 1.24: use int"),
    ("raised AttributeError: module 'numpy' has no attribute 'float'", "use float"),
    ("raised AttributeError: module 'numpy' has no attribute 'float_'", "np.float64"),
    ("raised AttributeError: module 'numpy.lib' has no attribute 'pad'", "use np.pad"),
    ("raised ModuleNotFoundError: No module named 'scipy'", "'scipy' is not available"),
    ("raised NameError: name 'xrange' is not defined", "use range"),
    ("raised AttributeError: 'dict' object has no attribute 'iteritems'", "use dict.items()"),
    ("raised TypeError: only 0-dimensional arrays can be converted to Python scalars",
     "take the element"),
    ("raised TypeError: only length-1 arrays can be converted to Python scalars", "take the element"),
])
def test_hints_name_the_fix_for_old_python_and_numpy(error, fix):
    assert fix in hint_for(error)


def test_hints_stay_quiet_on_other_errors():
    assert hint_for("raised ValueError: operands could not be broadcast together with shapes "
                    "(2,3) (3,2)", "conv_forward") is None
    assert hint_for("raised NameError: name 'foo' is not defined") is None
    assert "np.random.rand(*x.shape)" in hint_for(
        "raised ValueError: operands could not be broadcast together with shapes (4,3,10,10) (4,3) ",
        "dropout_forward")


def test_an_unpacking_error_in_dropout_names_the_2d_mask_only_where_the_line_takes_shapes_apart():
    def raised(line):
        return ("raised ValueError: too many values to unpack (expected 2)\n"
                "  Traceback (your code, most recent call last):\n"
                f"    layers.py, line 12, in dropout_backward\n        {line}")
    assert "np.random.rand(*x.shape)" in hint_for(raised("N, D = x.shape"), "dropout_backward")
    # Unpacking the cache wrongly is another mistake: no hint rather than a wrong one.
    assert hint_for(raised("dropout_param, mask = cache[0]"), "dropout_backward") is None


def test_a_mistake_that_explains_few_failing_cases_is_listed_but_not_the_headline():
    from types import SimpleNamespace

    from autograder.parts.layers.judging import Verdict
    from autograder.parts.layers.tally import Tally
    tally = Tally("batchnorm_backward", public_only=False)
    cases = [SimpleNamespace(label=f"h{i}") for i in range(4)]
    tally.case(cases[0], "call", [Verdict(False, ["dgamma has shape (1, 5)"], ["an extra axis"])])
    for case in cases[1:]:
        tally.case(case, "call", [Verdict(False, ["dx: 20 of 20 values wrong"])])
    result = tally.result(contract=False)
    assert result.summary == "0/4 cases correct; dgamma has shape (1, 5)"
    assert "Likely mistake (your output matches it in 1 case): an extra axis" in result.details


def test_partial_credit_next_to_no_correct_case_is_explained():
    """conv_backward with dx and db right but dw wrong on its only case: 0/1
    cases correct, yet two of its outputs earn their share, and it says so."""
    from types import SimpleNamespace

    from autograder.parts.layers.judging import Verdict
    from autograder.parts.layers.tally import Tally
    tally = Tally("conv_backward", public_only=False)
    case = SimpleNamespace(label="p1")
    tally.case(case, "call", [Verdict(True), Verdict(False, ["dw: 9 of 9 values wrong"]), Verdict(True)])
    tally.skip(case, "call", "its forward failed")
    result = tally.result(contract=True)
    assert 0 < result.fraction < 1
    assert result.summary.startswith("0/1 cases correct (partial credit: some outputs right)")
    assert "Partial credit: 2 of 3 outputs checked were right" in result.details[0]
    assert "(1 case: the forward is charged for them)" in result.details[-1]


def test_an_assertion_that_sizes_divide_evenly_is_named():
    text = ("raised AssertionError\n  Traceback (your code, most recent call last):\n"
            "    layers.py, line 40, in conv_forward\n        assert (H + 2 * pad - HH) % stride == 0")
    assert "need not" in hint_for(text, "conv_forward")
    assert hint_for(text.replace("% stride == 0", "> 0"), "conv_forward") is None


def test_a_function_that_times_out_only_on_large_inputs_is_called_slow_not_stuck():
    """Real code (a loop over every pair of input and output pixels) finishes
    the small cases and runs out of time on the large ones."""
    from types import SimpleNamespace

    from autograder.parts.layers.judging import Verdict
    from autograder.parts.layers.tally import TOO_SLOW, Tally

    tally = Tally("conv_backward", public_only=False)
    small, large = SimpleNamespace(label="public case p1"), SimpleNamespace(label="hidden case h10")
    tally.case(small, "conv_backward(small)", [Verdict(True)] * 3)
    tally.failed_call(large, "conv_backward(large)", 3,
                      "timed out: conv_backward did not finish within 10 s (an infinite loop?)")
    result = tally.result(contract=False)
    assert "likely mistake: too slow for the larger inputs" in result.summary
    assert any(TOO_SLOW in line for line in result.details)
    stuck = Tally("conv_backward", public_only=False)
    stuck.failed_call(small, "conv_backward(small)", 3, "timed out: conv_backward did not finish within 10 s")
    assert "too slow" not in stuck.result(contract=False).summary, "nothing finished: it may be stuck"


def test_constant_forward_credit_needs_credit_elsewhere():
    """A backward matching a forward that is constant on one case is credited
    there only if it earns credit on another case (a zeros stub earns nothing)."""
    from autograder.parts.layers.gradients import credit_where_forward_is_constant
    from autograder.parts.layers.judging import Verdict

    flagged = Verdict(False, ["constant"], matches_constant_forward=True)
    alone = {"h1": [flagged]}
    credit_where_forward_is_constant(alone, "batchnorm_forward")
    assert not alone["h1"][0].ok
    proven = {"p1": [Verdict(True)], "h1": [flagged]}
    credit_where_forward_is_constant(proven, "batchnorm_forward")
    assert proven["h1"][0].ok and "constant on this input" in proven["h1"][0].lines[0]
