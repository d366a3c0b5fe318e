"""max_pool_forward/backward and avg_pool_forward/backward."""
import numpy as np

from autograder.parts.layers.compare import IMAGE_AXES, fmt_number, is_numeric_array, matching_mistakes
from autograder.parts.layers.env import new_job
from autograder.parts.layers.judging import Verdict, judge_array
from autograder.parts.layers.plans import Call, Plan, plan_backward, plan_forward, run_plans

MAX_FORWARD_MISTAKES = {
    "average_instead": "each window's mean is taken instead of its maximum",
    "min_instead": "each window's minimum is taken instead of its maximum",
    "window_swapped": "pool_height and pool_width are swapped: pool_height counts rows",
    "stride_ignored": "the stride is ignored: windows move one pixel at a time",
    "stride_ignored_cropped": "window (i, j) starts at row i, column j instead of i*stride, j*stride",
}
MAX_BACKWARD_MISTAKES = {"dx": {
    "whole_window": "the gradient goes to every position of the window; only the position of "
                    "the maximum gets it",
    "overlap_overwritten": "overlapping windows overwrite each other's gradient (dx[...] = ...); "
                           "gradients from different windows must add up (+=)",
    "all_ties": "when several positions tie for the maximum, each gets the gradient; exactly one "
                "of them (any) must get it",
    "argmax_assigned": "dx[max position] = dout keeps only the last window's gradient where "
                       "overlapping windows share a maximum; add them up: dx[...] += dout[...]",
    "argmax_without_stride": "the gradient goes to row i + a, column j + k; window (i, j) starts "
                             "at row i*stride, column j*stride",
    "argmax_without_offset": "the gradient goes to the maximum's position inside the window (a, k) "
                             "without adding the window's start (i*stride, j*stride)",
}}
AVG_FORWARD_MISTAKES = {
    "not_divided": "the window is summed but not divided by pool_height * pool_width",
    "max_instead": "each window's maximum is taken instead of its mean",
    "window_swapped": "pool_height and pool_width are swapped: pool_height counts rows",
    "stride_ignored": "the stride is ignored: windows move one pixel at a time",
    "stride_ignored_cropped": "window (i, j) starts at row i, column j instead of i*stride, j*stride",
}
AVG_BACKWARD_MISTAKES = {"dx": {
    "not_divided": "each position gets the whole window gradient; it gets dout / "
                   "(pool_height * pool_width)",
    "overlap_overwritten": "overlapping windows overwrite each other's share (dx[...] = ...); "
                           "shares from different windows must add up (+=)",
}}


def calls(env, group):
    return [Call(case, [("x", case.inputs["x"]), ("pool_param", dict(case.params["pool_param"]))])
            for case in env.cases.group(group)]


class TiedMaxima:
    """Max-pool backward on inputs with ties (non-overlapping windows): any one
    position holding the window's maximum may get the gradient, so it is
    judged by that property rather than against one expected array."""

    @staticmethod
    def applies(case):
        return "ties" in case.tags

    def __call__(self, case, returned):
        x, dout, dx = case.inputs["x"], case.inputs["dout"], returned["dx"]
        if not is_numeric_array(dx) or dx.shape != x.shape or not np.all(np.isfinite(dx)):
            # Wrong type, shape or NaN: the usual comparison explains it.
            return [judge_array("dx", dx, case.expected["dx"], IMAGE_AXES, case)]
        param = case.params["pool_param"]
        ph, pw, stride = param["pool_height"], param["pool_width"], param["stride"]
        dx = dx.astype(np.float64)
        covered = np.zeros(x.shape[2:], dtype=bool)
        problems = []
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                rows = slice(i * stride, i * stride + ph)
                cols = slice(j * stride, j * stride + pw)
                covered[rows, cols] = True
                problem = self._window_problem(x[:, :, rows, cols], dx[:, :, rows, cols],
                                               dout[:, :, i, j], (i, j))
                if problem:
                    problems.append(problem)
        if np.any(dx[:, :, ~covered] != 0):
            problems.append("positions outside every window have a nonzero gradient")
        if not problems:
            return [Verdict(True)]
        messages = MAX_BACKWARD_MISTAKES["dx"]
        mistakes = [messages[m] for m in matching_mistakes(dx, case.variants.get("dx", {})) if m in messages]
        if not mistakes and any("every tied" in p for p in problems):
            mistakes = [messages["all_ties"]]
        return [Verdict(False, [f"dx: {len(problems)} windows wrong on an input with tied maxima",
                                "  e.g. " + problems[0]], mistakes)]

    @staticmethod
    def _window_problem(x_window, dx_window, dout_ij, position):
        flat_x = x_window.reshape(x_window.shape[0], x_window.shape[1], -1)
        flat_dx = dx_window.reshape(flat_x.shape)
        is_max = flat_x == flat_x.max(axis=2, keepdims=True)
        receivers = np.abs(flat_dx) > 1e-12
        for n in range(flat_x.shape[0]):
            for c in range(flat_x.shape[1]):
                got = np.nonzero(receivers[n, c])[0]
                where = f"sample {n}, channel {c}, window {position}"
                if len(got) > 1 and set(got) == set(np.nonzero(is_max[n, c])[0]):
                    return f"{where}: every tied maximum got the gradient"
                if len(got) != 1:
                    return f"{where}: {len(got)} positions got a gradient, expected exactly one"
                k = got[0]
                if not is_max[n, c, k]:
                    return f"{where}: the gradient went to a position that is not a maximum"
                if abs(flat_dx[n, c, k] - dout_ij[n, c]) > 1e-6 * (1 + abs(dout_ij[n, c])):
                    return (f"{where}: the maximum got {fmt_number(flat_dx[n, c, k])}, "
                            f"not the window's dout {fmt_number(dout_ij[n, c])}")
        return None


def grade_family(env, check_ids, group, forward, backward, forward_mistakes, backward_mistakes,
                 judge_special=None):
    """One pooling function pair, in one worker process."""
    job = new_job(group)
    plans = {}
    if forward in check_ids:
        plans[forward] = Plan([plan_forward(job, forward, calls(env, group), IMAGE_AXES,
                                            forward_mistakes)], forward)
    if backward in check_ids:
        plans[backward] = Plan([plan_backward(job, forward, backward, calls(env, group),
                                              [("dx", 0, IMAGE_AXES)], backward_mistakes,
                                              judge_special)], backward)
    return run_plans(env, job, plans)


def grade(env, check_ids):
    results = grade_family(env, check_ids, "max_pool", "max_pool_forward", "max_pool_backward",
                           MAX_FORWARD_MISTAKES, MAX_BACKWARD_MISTAKES, TiedMaxima())
    results.update(grade_family(env, check_ids, "avg_pool", "avg_pool_forward", "avg_pool_backward",
                                AVG_FORWARD_MISTAKES, AVG_BACKWARD_MISTAKES))
    return results
