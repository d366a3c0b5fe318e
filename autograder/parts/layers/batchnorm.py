"""batchnorm_forward/backward and spatial_batchnorm_forward/backward:
train-mode output, running statistics (momentum and eps honoured, also over
several calls sharing one bn_param), test mode, gradients."""
import numpy as np

from autograder.parts.layers.compare import FEATURE_AXES, IMAGE_AXES, fmt_value, is_numeric_array
from autograder.parts.layers.env import new_job
from autograder.parts.layers.judging import Verdict, judge_array, unchanged_inputs, unpack_forward
from autograder.parts.layers.plans import Call, Plan, plan_backward, plan_forward, run_plans

OUTPUT_MISTAKES = {
    "unbiased_variance": "the batch variance is divided by N - 1; batch norm uses the biased "
                         "variance (divide by N, as x.var(axis=0) does)",
    "eps_outside_sqrt": "eps is added after the square root; normalize by sqrt(var + eps)",
    "eps_ignored": "bn_param['eps'] is ignored; use it when it is given (default 1e-5)",
    "eps_missing": "eps is left out: normalize by np.sqrt(var + eps), which also keeps a feature "
                   "with (almost) equal values from being divided by ~0",
    "gamma_beta_ignored": "gamma and beta are not applied: out = gamma * x_hat + beta",
    "reshape_without_transpose": "x.reshape(-1, C) without moving the channel axis last first "
                                 "mixes channels: transpose x to (N, H, W, C) before reshaping",
    "per_pixel_statistics": "the statistics are per pixel (over N only); spatial batch norm "
                            "uses one mean and variance per channel, over N, H and W",
    "output_not_transposed_back": "the (N*H*W, C) result is reshaped straight to (N, C, H, W); "
                                  "reshape it to (N, H, W, C), then transpose(0, 3, 1, 2)",
}
DOUT_RESHAPE = ("dout is reshaped to (N*H*W, C) without moving the channel axis last first "
                "(and dx back without the inverse transpose): transpose dout to (N, H, W, C) first")
RUNNING_MISTAKES = {
    "momentum_swapped": "momentum weighs the batch statistic instead of the old running value: "
                        "running = momentum * running + (1 - momentum) * batch",
    "momentum_ignored": "bn_param['momentum'] is ignored; use it when it is given (default 0.9)",
    "unbiased_running_var": "the running variance is updated with the unbiased (N - 1) batch "
                            "variance; use the same biased variance as the normalization",
    "running_std": "the running variance is updated with the standard deviation, not the variance",
    "eps_folded": "eps is folded into the running variance (var + eps is stored): add eps only "
                  "inside np.sqrt(var + eps) and keep running_var = momentum * running_var + "
                  "(1 - momentum) * var",
    "reshape_without_transpose": OUTPUT_MISTAKES["reshape_without_transpose"],
    "per_pixel_statistics": OUTPUT_MISTAKES["per_pixel_statistics"],
}
NOT_UPDATED = "the running statistics are not updated in train mode (store the new values in " \
              "bn_param['running_mean'] and bn_param['running_var'])"
TEST_MISTAKES = {
    "batch_statistics": "test mode normalizes with the batch's own statistics; it must use "
                        "bn_param['running_mean'] and bn_param['running_var']",
    "eps_ignored": OUTPUT_MISTAKES["eps_ignored"],
    "eps_outside_sqrt": "eps is added after the square root; normalize by "
                        "np.sqrt(running_var + eps)",
    "eps_missing": "test mode leaves eps out: divide by np.sqrt(running_var + eps)",
    "gamma_beta_ignored": "gamma and beta are not applied in test mode: "
                          "out = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta",
}
UPDATED_IN_TEST = "test mode changed the running statistics; only train mode updates them"
BACKWARD_MISTAKES = {
    "dx": {"batch_statistics_constant": "dx treats the batch mean and variance as constants "
                                        "(dout * gamma / std); both depend on x, which adds two "
                                        "more terms",
           "reshape_without_transpose": OUTPUT_MISTAKES["reshape_without_transpose"],
           "dout_reshape_without_transpose": DOUT_RESHAPE,
           "count_n": "each channel's mean is over N * H * W values: divide the channel sums in "
                      "dx by N * H * W, not by N"},
    "dgamma": {"batch_mean": "dgamma is averaged over the batch; sum it",
               "eps_missing": "dgamma uses x_hat without eps, (x - mean) / np.sqrt(var); use the "
                              "forward pass's x_hat = (x - mean) / np.sqrt(var + eps)",
               "reshape_without_transpose": OUTPUT_MISTAKES["reshape_without_transpose"],
               "dout_reshape_without_transpose": DOUT_RESHAPE},
    "dbeta": {"batch_mean": "dbeta is averaged over the batch; sum it"},
}
RUNNING = ("running_mean", "running_var")


def bn_param(case, **changes):
    """A fresh bn_param for the case: its parameters plus copies of its running statistics."""
    param = dict(case.params["bn_param"], **changes)
    for key in RUNNING:
        if key in case.inputs:
            param[key] = case.inputs[key].copy()
    return param


def forward_call(case):
    return Call(case, [("x", case.inputs["x"]), ("gamma", case.inputs["gamma"]),
                       ("beta", case.inputs["beta"]), ("bn_param", bn_param(case))])


def judge_running(case, after, before, expected, variants, call_index=None, axis="feature"):
    """Verdicts for running_mean and running_var after one train-mode call.
    after: bn_param as the student left it; before: the statistics passed in."""
    verdicts = []
    suffix = f" after call {call_index + 1}" if call_index is not None else ""
    for key in RUNNING:
        value = after.get(key) if isinstance(after, dict) else None
        if value is None:
            verdicts.append(Verdict(False, [f"bn_param has no '{key}'{suffix}; store the updated "
                                            f"value in bn_param['{key}']"]))
            continue
        verdict = judge_array(f"bn_param['{key}']{suffix}", value, expected[key], (axis,), case,
                              variants.get(key), RUNNING_MISTAKES)
        if (not verdict.ok and not verdict.mistakes and is_numeric_array(value)
                and value.shape == before[key].shape and np.array_equal(value, before[key])):
            verdict.mistakes.append(NOT_UPDATED)
        verdicts.append(verdict)
    return verdicts


def plan_running_stats(job, function, cases, axis="feature"):
    """Running statistics after single train calls and over sequences of
    calls that share one bn_param dict; returns evaluate(outcome, tally)."""
    plans = []
    for case in cases:
        job.new_unit()
        D = case.inputs["gamma"].shape[0]
        before = {key: case.inputs.get(key, np.zeros(D)) for key in RUNNING}
        if case.kind == "train":
            step = job.call(f"layers.{function}", case.inputs["x"], case.inputs["gamma"],
                            case.inputs["beta"], bn_param(case), encode="none", report=[3])
            plans.append((case, [step], before, forward_call(case).text(function)))
        else:
            shared = job.let(bn_param(case))
            steps = [job.call(f"layers.{function}", batch, case.inputs["gamma"], case.inputs["beta"],
                              job.ref(shared), encode="none", report=[3])
                     for batch in case.inputs["batches"]]
            count, (N, D) = len(steps), case.inputs["batches"].shape[1:]
            text = (f"{count} calls of {function}(x ({N}, {D}), gamma, beta, bn_param "
                    f"{fmt_value(case.params['bn_param'])}) sharing one bn_param dict")
            plans.append((case, steps, before, text))
    return lambda outcome, tally: evaluate_running_stats(outcome, tally, plans, axis)


def evaluate_running_stats(outcome, tally, plans, axis):
    for case, steps, before, text in plans:
        failed = next((outcome.results[s] for s in steps if not outcome.results[s].ok), None)
        if failed is not None:
            tally.failed_call(case, text, 2, failed.error_text(), "running statistics", contract=False)
            continue
        if case.kind == "train":
            verdicts = judge_running(case, outcome.results[steps[0]].args.get(3), before,
                                     case.expected, case.variants, axis=axis)
        else:
            verdicts = [Verdict(True), Verdict(True)]
            for index, step in enumerate(steps):
                expected = {key: case.expected[key][index] for key in RUNNING}
                variants = {key: {m: v[index] for m, v in case.variants.get(key, {}).items()}
                            for key in RUNNING}
                after = outcome.results[step].args.get(3)
                call_verdicts = judge_running(case, after, before, expected, variants, index, axis)
                for k, verdict in enumerate(call_verdicts):
                    if verdicts[k].ok and not verdict.ok:   # keep the first failing call's story
                        verdicts[k] = verdict
                if isinstance(after, dict):
                    before = {key: after.get(key) if is_numeric_array(after.get(key)) else before[key]
                              for key in RUNNING}
        tally.case(case, text, verdicts, "running statistics", contract=False)


def plan_test_mode(job, function, cases, axes):
    """Test mode: output from the running statistics, which stay unchanged.
    Returns evaluate(outcome, tally)."""
    steps = []
    for case in cases:
        job.new_unit()
        steps.append(job.call(f"layers.{function}", case.inputs["x"], case.inputs["gamma"],
                              case.inputs["beta"], bn_param(case), encode="out_cache",
                              report=[0, 1, 2, 3]))
    return lambda outcome, tally: evaluate_test_mode(outcome, tally, function, cases, steps, axes)


def evaluate_test_mode(outcome, tally, function, cases, steps, axes):
    for case, step in zip(cases, steps):
        call = forward_call(case)
        result = outcome.results[step]
        if not result.ok:
            tally.failed_call(case, call.text(function), 2, result.error_text(), "test mode")
            continue
        out, problem = unpack_forward(result.value, function)
        if problem:
            tally.failed_call(case, call.text(function), 2, problem, "test mode")
            continue
        output = judge_array("out", out, case.expected["out"], axes, case,
                             case.variants.get("out"), TEST_MISTAKES)
        after = result.args.get(3)
        kept = isinstance(after, dict) and all(
            is_numeric_array(after.get(key)) and after[key].shape == case.inputs[key].shape
            and np.array_equal(after[key], case.inputs[key]) for key in RUNNING)
        running = Verdict(True) if kept else Verdict(False, [UPDATED_IN_TEST], [UPDATED_IN_TEST])
        tally.case(case, call.text(function), [output, running], "test mode")
        tally.outputs(case, {"out": out})
        tally.inputs(case, unchanged_inputs(result.args, call.array_args()))


def gradients(axes, parameter_axis):
    return [("dx", 0, axes), ("dgamma", 1, (parameter_axis,)), ("dbeta", 2, (parameter_axis,))]


def grade(env, check_ids):
    """Batch norm checks: one worker process for batchnorm_forward/backward,
    one for the spatial pair."""
    cases = env.cases.group("batchnorm")
    train = [c for c in cases if c.kind == "train"]
    job = new_job("batchnorm")
    function = "batchnorm_forward"
    plans = {}
    if "batchnorm_forward_train" in check_ids:
        plans["batchnorm_forward_train"] = Plan([plan_forward(
            job, function, [forward_call(c) for c in train], FEATURE_AXES, OUTPUT_MISTAKES)], function)
    if "batchnorm_running_stats" in check_ids:
        plans["batchnorm_running_stats"] = Plan([plan_running_stats(
            job, function, [c for c in cases if c.kind in ("train", "sequence")])], function,
            contract=False)
    if "batchnorm_forward_test" in check_ids:
        plans["batchnorm_forward_test"] = Plan([plan_test_mode(
            job, function, [c for c in cases if c.kind == "test"], FEATURE_AXES)], function,
            contract=False)
    if "batchnorm_backward" in check_ids:
        plans["batchnorm_backward"] = Plan([plan_backward(
            job, function, "batchnorm_backward", [forward_call(c) for c in train],
            gradients(FEATURE_AXES, "feature"), BACKWARD_MISTAKES)], "batchnorm_backward")
    results = run_plans(env, job, plans)

    spatial = env.cases.group("spatial_batchnorm")
    spatial_train = [c for c in spatial if c.kind == "train"]
    job = new_job("spatial_batchnorm")
    function = "spatial_batchnorm_forward"
    plans = {}
    if function in check_ids:
        plans[function] = Plan([
            plan_forward(job, function, [forward_call(c) for c in spatial_train], IMAGE_AXES,
                         OUTPUT_MISTAKES, "train mode"),
            plan_running_stats(job, function, spatial_train, axis="channel"),
            plan_test_mode(job, function, [c for c in spatial if c.kind == "test"], IMAGE_AXES),
        ], function)
    if "spatial_batchnorm_backward" in check_ids:
        plans["spatial_batchnorm_backward"] = Plan([plan_backward(
            job, function, "spatial_batchnorm_backward", [forward_call(c) for c in spatial_train],
            gradients(IMAGE_AXES, "channel"), BACKWARD_MISTAKES)], "spatial_batchnorm_backward")
    results.update(run_plans(env, job, plans))
    return results
