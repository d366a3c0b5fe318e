"""Judging gradients: a gradient that misses the expected one is checked
against the numerical derivatives of the student's own forward (planned as
plain forward calls in a companion job, computed here), so a forward bug is
not charged twice; a forward constant on a case is credited once proven
elsewhere."""
import numpy as np

from autograder.parts.layers.compare import fmt_number, is_numeric_array
from autograder.parts.layers.judging import Verdict, judge_array, unpack_forward

GRADIENT_REL_TOL = 1e-5      # CS231n relative error between analytic and numerical derivatives
DEGENERATE_SHARE = 0.1       # a forward whose derivatives are this much smaller than the true ones
DIRECTIONS = 3               # random directions per differentiated input
NUMERIC_STEP = 1e-6          # h of the central differences (float64 inputs)


def random_directions(case, inputs):
    """Seeded random directions for each differentiated input of a case."""
    seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(f"{case.group}/{case.name}"))
    rng = np.random.RandomState(seed)
    return [[rng.randn(*np.shape(array)) for _ in range(DIRECTIONS)] for array in inputs]


def judge_gradient(name, actual, expected, axes, case, numeric, directions, forward,
                   variants=None, messages=None):
    """A gradient earns its unit when it equals the true gradient, or when it
    is the exact derivative of the student's own forward (so a forward bug is
    not charged twice) and that forward is not degenerate.

    numeric: the directional derivatives of the student's forward along
    `directions`, or a text saying why they are unavailable."""
    verdict = judge_array(name, actual, expected, axes, case, variants, messages)
    if verdict.ok or not is_numeric_array(actual) or actual.shape != expected.shape:
        return verdict
    if not np.all(np.isfinite(actual)):
        return verdict
    if isinstance(numeric, str):
        verdict.lines.append(f"  (no numerical gradient check: {numeric})")
        return verdict
    analytic = np.array([np.sum(actual.astype(np.float64) * v) for v in directions])
    true = np.array([np.sum(expected * v) for v in directions])
    true_size = float(np.linalg.norm(true))
    # Central differences carry rounding noise: differences far below the
    # size of the true derivatives are no evidence either way.
    floor = max(1e-8, 1e-7 * true_size)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel_error = float(np.max(np.abs(analytic - numeric)
                                 / np.maximum(np.abs(analytic) + np.abs(numeric), floor)))
    if not np.isfinite(rel_error):
        verdict.lines.append(f"  (the numerical gradient of your {forward} is not finite)")
        return verdict
    degenerate = np.linalg.norm(numeric) < DEGENERATE_SHARE * true_size
    if rel_error <= GRADIENT_REL_TOL and not degenerate:
        return Verdict(True, [f"{name} differs from the true gradient but is the exact derivative "
                              f"of your {forward} (numerical check, rel error "
                              f"{fmt_number(rel_error)}): credited here, the mistake is in {forward}"])
    if degenerate:
        if np.max(np.abs(analytic - numeric)) <= floor:
            verdict.matches_constant_forward = True
        if np.linalg.norm(analytic) < DEGENERATE_SHARE * true_size:
            verdict.lines.append(f"  {name} matches the numerical gradient of your {forward}, but "
                                 f"your {forward} hardly depends on this input (does it return "
                                 f"zeros or a constant?), so this cannot earn credit")
        else:
            verdict.lines.append(f"  your {forward} hardly depends on this input here (its "
                                 f"numerical gradient is nearly zero; does it return a constant?), "
                                 f"so {name} cannot be checked against it: fix {forward} first")
    else:
        verdict.lines.append(f"  {name} also disagrees with the numerical gradient of your own "
                             f"{forward} (rel error {fmt_number(rel_error)}): the mistake is in "
                             f"the backward pass")
    return verdict


def credit_where_forward_is_constant(verdicts_by_case, forward):
    """A gradient that matches the student's forward where that forward is
    constant (its derivative is ~0 on this case, e.g. batch norm without eps
    on two samples) is credited when the backward earns credit on some other
    case: the forward's mistake is charged to the forward, once. A forward
    that is constant everywhere (a stub returning zeros) earns nothing."""
    proven = any(all(v.ok for v in verdicts) for verdicts in verdicts_by_case.values())
    if not proven:
        return
    for verdicts in verdicts_by_case.values():
        for k, verdict in enumerate(verdicts):
            if verdict.matches_constant_forward:
                verdicts[k] = Verdict(True, [f"your {forward} is constant on this input (its "
                                             f"derivative is ~0) and the gradient returned is "
                                             f"that derivative: credited here, the mistake is "
                                             f"in {forward}"])


def plan_numeric(numeric_job, forward, call, gradients, directions):
    """Central differences of the student's forward, planned as plain forward
    calls in a companion job: the worker only returns outputs, the grader does
    the arithmetic. Returns, per gradient and direction, the (plus, minus) step ids."""
    numeric_job.new_unit()
    steps = []
    for (_, index, _), index_directions in zip(gradients, directions):
        base = np.asarray(call.values[index], dtype=np.float64)
        pairs = []
        for direction in index_directions:
            pair = []
            for sign in (1, -1):
                values = list(call.values)
                values[index] = base + sign * NUMERIC_STEP * direction
                pair.append(numeric_job.call(f"layers.{forward}", *values, encode="out_cache"))
            pairs.append(tuple(pair))
        steps.append(pairs)
    return steps


def numeric_results(outcome, steps, dout):
    """Directional derivatives <d sum(out * dout) / d input, direction> from the
    companion job's forward outputs, one array per gradient; a text saying why
    in place of an array when they cannot be computed."""
    def loss(step):
        result = outcome.results[step]
        if not result.ok:
            raise ValueError(result.error_text().split("\n")[0])
        out, problem = unpack_forward(result.value, "the forward")
        if problem:
            raise ValueError(problem)
        if not is_numeric_array(out) or out.shape != dout.shape:
            raise ValueError("the forward output has the wrong shape or type")
        return float(np.sum(out.astype(np.float64) * dout))

    derivatives = []
    for pairs in steps:
        try:
            derivatives.append(np.array([(loss(plus) - loss(minus)) / (2 * NUMERIC_STEP)
                                         for plus, minus in pairs]))
        except ValueError as problem:
            derivatives.append(str(problem))
    return derivatives
