"""dropout_forward and dropout_backward, graded by properties only, so that
every correct implementation passes whatever random generator it uses:

- train mode: each output is 0 or x/p; the share of kept units is within a
  Hoeffding bound of p (a correct implementation fails with probability
  below 1e-6 per case); the same seed gives the same output and another seed
  a different one;
- test mode: the output equals x;
- backward: dx = dout * mask / p with the mask of the forward call that made
  the cache (or, when the forward itself is wrong, dx is the derivative of
  what that forward computed, dout * out / x).
"""
import math

import numpy as np

from autograder.parts.layers.compare import fmt_number, fmt_shape, fmt_value, is_numeric_array
from autograder.parts.layers.env import new_job
from autograder.parts.layers.judging import Verdict, forward_failed, unpack_forward
from autograder.parts.layers.plans import Plan, run_plans

FALSE_FAILURE_PROBABILITY = 1e-6
VALUE_TOLERANCE = 1e-9
NOT_SCALED = "kept units are not scaled: inverted dropout divides them by p during training"
DROP_PROBABILITY = ("p is used as the probability of dropping a unit; it is the probability "
                    "of KEEPING one (mask = rand < p)")
SCALED_BY_DROP = "kept units are divided by 1 - p; p is the keep probability: divide by p"
SEED_IGNORED = ("the same seed gave different outputs: when dropout_param has a 'seed', seed "
                "your generator with it (np.random.seed(seed) or np.random.default_rng(seed))")
SEED_FIXED = "two different seeds gave the same output: the seed must change the mask"
TEST_NOT_IDENTITY = "test mode must return x unchanged (inverted dropout needs no test-time scaling)"
MASK_IGNORED = "dropout_backward ignores the mask: dx = dout * mask / p, with the forward's mask"
BACKWARD_NOT_SCALED = "dropout_backward does not divide by p: dx = dout * mask / p"
NORMAL_MASK = ("np.random.randn draws normal values, so rand < p keeps a share Phi(p) of the "
               "units, not p; the mask needs uniform ones: np.random.rand(*x.shape) < p")
BACKWARD_TEST = "in test mode dropout_backward must return dout unchanged"


def keep_bound(n):
    """Hoeffding: P(|kept/n - p| >= t) <= 2 exp(-2 n t^2) = FALSE_FAILURE_PROBABILITY."""
    return math.sqrt(math.log(2 / FALSE_FAILURE_PROBABILITY) / (2 * n))


def train_param(case, seed):
    return {"p": case.params["p"], "mode": "train", "seed": seed}


def call_text(case, param):
    return f"dropout_forward(x {fmt_shape(case.inputs['x'].shape)}, dropout_param {fmt_value(param)})"


def close(a, b):
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= VALUE_TOLERANCE * (1 + np.abs(b))))


def usable(out, x):
    return is_numeric_array(out) and out.shape == x.shape and bool(np.all(np.isfinite(out)))


def judge_values(out, x, p):
    """Each entry is 0 or x/p; names the scaling mistake otherwise."""
    if not usable(out, x):
        what = f"shape {fmt_shape(out.shape)}" if is_numeric_array(out) else type(out).__name__
        return Verdict(False, [f"out must be a finite array of shape {fmt_shape(x.shape)}, got {what}"])
    out = out.astype(np.float64)
    kept = out != 0
    if close(out[kept], x[kept] / p):
        return Verdict(True)
    for factor, mistake in ((1.0, NOT_SCALED), (1 / (1 - p), SCALED_BY_DROP)):
        if kept.any() and close(out[kept], x[kept] * factor):
            return Verdict(False, [f"kept units equal x * {fmt_number(factor)}, expected x / p "
                                   f"= x * {fmt_number(1 / p)}"], [mistake])
    wrong = int(np.sum(kept & ~np.isclose(out, x / p)))
    return Verdict(False, [f"{wrong} of {out.size} outputs are neither 0 nor x / p"])


def judge_keep_rate(out, x, p):
    if not usable(out, x):
        return Verdict(False, ["no keep rate without a usable output"])
    rate, bound = float(np.mean(out != 0)), keep_bound(out.size)
    if abs(rate - p) <= bound:
        return Verdict(True)
    line = (f"{fmt_number(rate * 100)}% of the units were kept; with p = {p} expect "
            f"{fmt_number(p * 100)}% +- {fmt_number(bound * 100)}%")
    normal_share = 0.5 * (1 + math.erf(p / math.sqrt(2)))    # P(randn < p)
    mistakes = ([DROP_PROBABILITY] if abs(rate - (1 - p)) <= bound
                else [NORMAL_MASK] if abs(rate - normal_share) <= bound else [])
    return Verdict(False, [line], mistakes)


def judge_seeds(first, again, other, x):
    if not (usable(first, x) and usable(again, x) and usable(other, x)):
        return [Verdict(False, ["seeds not checked: no usable output"]), Verdict(False)]
    same = Verdict(True) if np.array_equal(first, again) else Verdict(
        False, ["two calls with the same seed returned different outputs"], [SEED_IGNORED])
    different = Verdict(True) if not np.array_equal(first != 0, other != 0) else Verdict(
        False, ["two calls with different seeds dropped exactly the same units"], [SEED_FIXED])
    return [same, different]


def plan_dropout_forward(job, cases):
    """Train mode: three calls per case (a seed, the same seed, another
    seed); test mode: one call. Returns evaluate(outcome, tally)."""
    plans = []
    for case in cases:
        job.new_unit()
        x = case.inputs["x"]
        if case.kind == "train":
            seed, other = case.params["seed"], case.params["other_seed"]
            params = [train_param(case, seed), train_param(case, seed), train_param(case, other)]
        else:
            params = [{"p": case.params["p"], "mode": "test"}]
        steps = [job.call("layers.dropout_forward", x, param, encode="out_cache", report=[0])
                 for param in params]
        plans.append((case, params, steps))
    return lambda outcome, tally: evaluate_dropout_forward(outcome, tally, plans)


def evaluate_dropout_forward(outcome, tally, plans):
    for case, params, steps in plans:
        x, text = case.inputs["x"], call_text(case, params[0])
        units = 4 if case.kind == "train" else 1
        outs = []
        for step in steps:
            result = outcome.results[step]
            out, problem = unpack_forward(result.value, "dropout_forward") if result.ok else (
                None, result.error_text())
            if problem:
                break
            outs.append(out)
        if problem:
            tally.failed_call(case, text, units, problem)
            continue
        if case.kind == "train":
            p = case.params["p"]
            verdicts = [judge_values(outs[0], x, p), judge_keep_rate(outs[0], x, p)]
            verdicts += judge_seeds(*outs, x)
            text += f", again with the same seed and with seed {params[2]['seed']}"
        else:
            identity = usable(outs[0], x) and close(outs[0].astype(np.float64), x)
            verdicts = [Verdict(True) if identity
                        else Verdict(False, [TEST_NOT_IDENTITY], [TEST_NOT_IDENTITY])]
        tally.case(case, text, verdicts)
        tally.outputs(case, {"out": outs[0]})
        tally.inputs(case, [] if all(_unchanged(outcome.results[s], x) for s in steps) else ["x"])


def _unchanged(result, x):
    after = result.args.get(0)
    return isinstance(after, np.ndarray) and after.shape == x.shape and np.array_equal(after, x)


def judge_backward(case, out, dx):
    x, dout, p = case.inputs["x"], case.inputs["dout"], case.params["p"]
    if not usable(dx, dout):
        what = f"shape {fmt_shape(dx.shape)}" if is_numeric_array(dx) else type(dx).__name__
        return Verdict(False, [f"dx must be a finite array of shape {fmt_shape(dout.shape)}, got {what}"])
    dx = dx.astype(np.float64)
    if case.kind == "test":
        return Verdict(True) if close(dx, dout) else Verdict(False, [BACKWARD_TEST], [BACKWARD_TEST])
    if not usable(out, x):
        return Verdict(False, ["dropout_backward cannot be checked: dropout_forward returned no "
                               "usable output for this call"])
    out = out.astype(np.float64)
    kept = out != 0
    own_derivative = ["dx differs from dout * mask / p but is the exact derivative of your "
                      "dropout_forward: credited here, the mistake is in dropout_forward"]
    if not kept.any():
        return Verdict(False, ["dropout_backward cannot be checked: your dropout_forward dropped "
                               "every unit, so there is no mask to follow"])
    if kept.all():
        # The forward kept every unit (a forward bug, charged there): the
        # backward is right when it is the derivative of what that forward did.
        if close(dx, dout * out / x):
            return Verdict(True, own_derivative)
        return Verdict(False, ["your dropout_forward kept every unit, and dx is not the derivative "
                               "of what it computed (dout * out / x)"])
    if close(dx, dout * kept / p):
        return Verdict(True)
    if close(dx, dout * out / x):
        return Verdict(True, own_derivative)
    for candidate, mistake in ((dout, MASK_IGNORED), (dout / p, MASK_IGNORED),
                               (dout * kept, BACKWARD_NOT_SCALED)):
        if close(dx, candidate):
            return Verdict(False, ["dx is not dout * mask / p for the forward's mask"], [mistake])
    wrong = int(np.sum(~np.isclose(dx, dout * kept / p)))
    return Verdict(False, [f"dx: {wrong} of {dx.size} values differ from dout * mask / p "
                           f"(mask from the forward call that made the cache)"])


def plan_dropout_backward(job, cases):
    """A forward call, then the backward on its cache; returns evaluate(outcome, tally)."""
    plans = []
    for case in cases:
        job.new_unit()
        param = (train_param(case, case.params["seed"]) if case.kind == "train"
                 else {"p": case.params["p"], "mode": "test"})
        forward = job.call("layers.dropout_forward", case.inputs["x"], param, encode="out_cache")
        backward = job.call("layers.dropout_backward", case.inputs["dout"], job.ref(forward, 1),
                            report=[0])
        plans.append((case, param, forward, backward))
    return lambda outcome, tally: evaluate_dropout_backward(outcome, tally, plans)


def evaluate_dropout_backward(outcome, tally, plans):
    for case, param, forward, backward in plans:
        text = call_text(case, param) + ", then dropout_backward(dout, cache)"
        forward_result, result = outcome.results[forward], outcome.results[backward]
        if not forward_result.ok:
            problem, charge = forward_failed("dropout_forward", "dropout_backward", forward_result)
            if charge:
                tally.failed_call(case, text, 1, problem)
            else:
                tally.skip(case, text, problem)
            continue
        if not result.ok:
            tally.failed_call(case, text, 1, result.error_text())
            continue
        out, _ = unpack_forward(forward_result.value, "dropout_forward")
        tally.case(case, text, [judge_backward(case, out, result.value)])
        tally.outputs(case, {"dx": result.value})
        tally.inputs(case, [] if _unchanged(result, case.inputs["dout"]) else ["dout"])


def grade(env, check_ids):
    """dropout_forward and dropout_backward, in one worker process."""
    cases = env.cases.group("dropout")
    job = new_job("dropout")
    plans = {}
    if "dropout_forward" in check_ids:
        plans["dropout_forward"] = Plan([plan_dropout_forward(job, cases)], "dropout_forward")
    if "dropout_backward" in check_ids:
        plans["dropout_backward"] = Plan([plan_dropout_backward(job, cases)], "dropout_backward")
    return run_plans(env, job, plans)
