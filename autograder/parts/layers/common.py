"""What the layer checks share: running a job, unpacking what a student
function returned, judging arrays and gradients, and tallying scoring units
into a CheckResult with feedback.

Scoring: a check is made of units, normally one per output of each case
(e.g. dx, dw and db of a conv_backward case are three units), plus two
contract units worth the share of cases that were correct AND returned
float64 (resp. left their inputs unchanged), so a wrong or crashing function
earns nothing from them. The check earns the share of units passed.
"""
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from autograder.parts.layers.compare import (describe_difference, fmt_number, fmt_shape, fmt_value,
                                is_numeric_array, matches, matching_mistakes)
from autograder.parts.layers.hints import hint_for
from autograder.layout import LAYERS_FILE
from autograder.parts import CheckResult
from autograder.sandbox import Job, JobOutcome, Opaque, StepResult, Unsupported

FILE = LAYERS_FILE
MAX_FAILING_CASES_SHOWN = 3
# Named when a function finished some cases but timed out on others: slow, not stuck.
TOO_SLOW = ("too slow for the larger inputs (it finished the smaller ones, so this is no "
            "infinite loop): each output value should cost one window's work; loops over every "
            "pair of input and output positions, or numpy calls on whole arrays inside the "
            "innermost loop, grow far faster than the input")
GRADIENT_REL_TOL = 1e-5      # CS231n relative error between analytic and numerical derivatives
DEGENERATE_SHARE = 0.1       # a forward whose derivatives are this much smaller than the true ones
DIRECTIONS = 3               # random directions per differentiated input
NUMERIC_STEP = 1e-6          # h of the central differences (float64 inputs)


def new_job(name):
    """A job over layers.py."""
    job = Job(name, files=[FILE])
    job.module("layers", FILE)
    return job


@dataclass
class LayerEnv:
    """What the layer checks grade with: the grading context and the cases."""
    ctx: object                   # autograder.parts.GradingContext
    cases: object                 # autograder.cases.CaseSet

    def run(self, job):
        """Run job; when layers.py is missing or unusable, every step fails
        with the submission's own explanation."""
        if FILE not in self.ctx.submission.files:
            message = self.ctx.submission.missing_message(FILE)
            return JobOutcome(results={step["id"]: StepResult(False, error={
                "kind": "missing_file", "message": message}) for step in job.steps})
        return self.ctx.run(job)


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
        shape_mistake = wrong_shape_mistake(name, actual, expected)
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
    return Verdict(False, lines, found)


NONE_RETURNED = ("{name} is None: it is never computed (the `{name} = None` placeholder is "
                 "returned as it is) or the function does not return it")
EXTRA_AXES = ("the values are right but {name} has extra axes of length 1 (keepdims=True, or a "
              "(1, D) array): return shape {shape}, e.g. with .reshape({reshape}) or without keepdims")
EMPTY_PAD_SLICE = ("dx has no rows or columns left: dx_pad[:, :, pad:-pad, pad:-pad] is empty when "
                   "pad = 0 (-0 is 0); crop with dx_pad[:, :, pad:pad + H, pad:pad + W]")
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


class Tally:
    """Scoring units and feedback of one rubric check."""

    def __init__(self, function, public_only):
        self.function = function
        self.public_only = public_only
        self.units = 0.0
        self.passed = 0.0
        self.cases = 0
        self.correct_cases = 0
        self.failures = []              # (case label, call, lines)
        self.notes = []                 # remarks on passed cases (e.g. credit via the own forward)
        self.mistakes = Counter()       # recognised mistake message -> cases
        self.skipped = []               # (case label, call, why): not checked, not charged
        self.case_correct = []          # per case: every unit passed
        self.timeouts = 0               # cases whose call ran out of time
        self.contract_cases = 0         # cases the dtype and unchanged-inputs units are about
        self.dtype_ok = []              # per such case that ran: correct and float64
        self.dtype_problems = []
        self.inputs_ok = []             # per such case that ran: correct and inputs unchanged
        self.input_problems = []

    def case(self, case, call, verdicts, label="", contract=True):
        """One case (label: what part of it, e.g. "running statistics");
        verdicts: one Verdict per scoring unit. contract: the case counts for
        the dtype and unchanged-inputs units (reported by outputs() and inputs())."""
        self.cases += 1
        self.contract_cases += contract
        self.units += len(verdicts)
        passed = sum(1 for v in verdicts if v.ok)
        self.passed += passed
        lines, seen = [], set()
        for verdict in verdicts:
            for mistake in verdict.mistakes:
                if mistake not in seen:
                    seen.add(mistake)
                    self.mistakes[mistake] += 1
            if verdict.ok:
                self.notes.extend(f"{case.label}: {line}" for line in verdict.lines)
            else:
                lines.extend(verdict.lines)
        self.case_correct.append(passed == len(verdicts))
        if passed == len(verdicts):
            self.correct_cases += 1
        else:
            self.failures.append((case.label + (f" ({label})" if label else ""), call, lines))

    def failed_call(self, case, call, units, problem, label="", contract=True):
        """A case whose call raised, hung or returned something unusable; an
        error with a known cause (Python 2 habits, removed numpy aliases,
        missing packages) names it."""
        hint = hint_for(problem, self.function)
        if problem.startswith("timed out"):
            self.timeouts += 1
        self.case(case, call, [Verdict(False, [problem], [hint] if hint else [])]
                  + [Verdict(False)] * (units - 1), label, contract)

    def skip(self, case, call, why):
        """A case this function could not be checked on through no fault of
        its own (its forward failed first): neither scored nor charged."""
        self.skipped.append((case.label, call, why))

    def outputs(self, case, arrays):
        """Record the dtype contract for the arrays the last case returned."""
        wrong = [f"{name} is {value.dtype}" for name, value in arrays.items()
                 if isinstance(value, np.ndarray) and value.dtype != np.float64]
        self.dtype_ok.append(self.case_correct[-1] and not wrong)
        if wrong:
            self.dtype_problems.append(f"{case.label}: {', '.join(wrong)}")

    def inputs(self, case, changed):
        """Record which inputs the last case's call changed."""
        self.inputs_ok.append(self.case_correct[-1] and not changed)
        if changed:
            self.input_problems.append(f"{case.label}: {', '.join(changed)}")

    def result(self, contract=True):
        if self.timeouts and self.correct_cases and TOO_SLOW not in self.mistakes:
            self.mistakes[TOO_SLOW] += self.timeouts
        units, passed = self.units, self.passed
        if contract:
            units += 2
            passed += (sum(self.dtype_ok) + sum(self.inputs_ok)) / max(1, self.contract_cases)
        fraction = passed / units if units else 0.0
        return CheckResult(fraction=min(1.0, max(0.0, fraction)),
                           summary=self._summary(contract), details=self._details(contract))

    def _summary(self, contract):
        if not self.cases and self.skipped:
            return f"not checked: {self.skipped[0][2]}, in every case".split("\n")[0]
        text = f"{self.correct_cases}/{self.cases} cases correct"
        if self.skipped:
            text += f" ({len(self.skipped)} more not checked: its forward failed first)"
        if contract and self.dtype_problems:
            text += "; outputs not float64"
        if contract and self.input_problems:
            text += "; inputs modified"
        mistake, count = self.mistakes.most_common(1)[0] if self.mistakes else (None, 0)
        if mistake and 2 * count >= len(self.failures):
            text += f"; likely mistake: {mistake}"
        elif self.failures:
            # A mistake that explains only a few failing cases is no headline (the
            # details still list it with its count): the first problem is.
            first_problem = next((line for _, _, lines in self.failures for line in lines), "")
            text += f"; {first_problem.strip()}"
        return text.split("\n")[0]

    def _details(self, contract):
        lines = []
        if self.public_only:
            lines.append("(public mode: only the public cases were checked)")
        for mistake, count in self.mistakes.most_common():
            lines.append(f"Likely mistake (your output matches it in {count} "
                         f"case{'s' if count > 1 else ''}): {mistake}")
        if self.failures:
            shown = self.failures[:MAX_FAILING_CASES_SHOWN]
            lines.append(f"Failing cases ({len(self.failures)}" +
                         (f", first {len(shown)} shown):" if len(shown) < len(self.failures) else "):"))
            for label, call, problem_lines in shown:
                lines.append(f"- {label}: {call}")
                lines.extend("    " + line.replace("\n", "\n    ") for line in problem_lines)
        if contract and self.dtype_problems:
            lines.append("Outputs must be float64 for float64 inputs: " + "; ".join(self.dtype_problems[:3]))
        if contract and self.input_problems:
            lines.append(f"{self.function} modified its inputs in place (work on copies): "
                         + "; ".join(self.input_problems[:3]))
        if self.skipped:
            lines.append(f"Not checked, and not charged here ({len(self.skipped)} cases: the forward "
                         f"is charged for them): {self.skipped[0][2]}")
        lines.extend(self.notes[:3])
        return lines


@dataclass
class Call:
    """One call of a student function: its arguments by name, in order."""
    case: object
    args: list                    # [(name, value)]

    @property
    def values(self):
        return [value for _, value in self.args]

    def text(self, function):
        return call_text(function, **dict(self.args))

    def array_args(self):
        """{argument index: (name, array)}, to check they come back unchanged."""
        return {i: (name, value) for i, (name, value) in enumerate(self.args)
                if isinstance(value, np.ndarray)}


def plan_forward(job, function, calls, axes, messages, label=""):
    """Add one unit per call to job; returns evaluate(outcome, tally), which
    adds one scoring unit per call to tally once the job has run."""
    steps = []
    for call in calls:
        job.new_unit()
        steps.append(job.call(f"layers.{function}", *call.values, encode="out_cache",
                              report=list(call.array_args())))

    def evaluate(outcome, tally):
        for call, step in zip(calls, steps):
            case, result = call.case, outcome.results[step]
            if not result.ok:
                tally.failed_call(case, call.text(function), 1, result.error_text(), label)
                continue
            out, problem = unpack_forward(result.value, function)
            if problem:
                tally.failed_call(case, call.text(function), 1, problem, label)
                continue
            tally.case(case, call.text(function), [judge_array(
                "out", out, case.expected["out"], axes, case, case.variants.get("out"), messages)],
                label)
            tally.outputs(case, {"out": out})
            tally.inputs(case, unchanged_inputs(result.args, call.array_args()))
    return evaluate


def plan_backward(job, forward, backward, calls, gradients, messages, judge_special=None):
    """Backward checks on train-mode forward calls; returns evaluate(outcome, tally).

    gradients: [(gradient name, index of the forward argument it belongs to,
    axis names)], e.g. [("dx", 0, IMAGE_AXES), ("dw", 1, KERNEL_AXES), ...].
    Each gradient of each case is one unit, judged by judge_gradient against
    the case's expected gradient and, where it misses that, the numerical
    derivatives of the student's own forward. judge_special(case, returned)
    may take over a case (e.g. max pooling with ties) and return its verdicts.
    """
    steps = []
    for call in calls:
        job.new_unit()
        forward_step = job.call(f"layers.{forward}", *call.values, encode="none")
        backward_step = job.call(f"layers.{backward}", call.case.inputs["dout"],
                                 job.ref(forward_step, 1), report=[0])
        steps.append((forward_step, backward_step))
    names = [name for name, _, _ in gradients]

    def returned_gradients(outcome, call, forward_step, backward_step):
        """(returned {name: value}, None) or (None, why the case failed)."""
        forward_result, result = outcome.results[forward_step], outcome.results[backward_step]
        if not forward_result.ok:
            return None, forward_failed(forward, backward, forward_result)
        if not result.ok:
            return None, (result.error_text(), True)
        returned, problem = unpack(result.value, names, backward)
        return returned, (problem, True) if problem else None

    def numerical_derivatives(outcome, returned_by_case):
        """Central differences of the student's forward, only for the cases
        whose gradients miss the expected ones (a correct backward needs none).
        They run as plain forward calls in a job of their own, so nothing in the
        process that ran the backward can reach them; the grader does the arithmetic."""
        numeric_job = new_job(f"{job.name}: numerical gradients of {forward}")
        planned = {}
        for call in calls:
            returned = returned_by_case.get(call.case.name)
            special = judge_special is not None and judge_special.applies(call.case)
            if returned is None or special or all(
                    matches(returned[name], call.case.expected[name]) for name in names):
                continue
            inputs = [call.values[index] for _, index, _ in gradients]
            directions = random_directions(call.case, inputs)
            planned[call.case.name] = (plan_numeric(numeric_job, forward, call, gradients, directions),
                                       directions, call.case.inputs["dout"])
        if not planned:
            return {}
        numeric_outcome = outcome.run_more(numeric_job)
        return {name: (numeric_results(numeric_outcome, numeric_steps, dout), directions)
                for name, (numeric_steps, directions, dout) in planned.items()}

    def evaluate(outcome, tally):
        returned_by_case, problems = {}, {}
        for call, (forward_step, backward_step) in zip(calls, steps):
            returned, problem = returned_gradients(outcome, call, forward_step, backward_step)
            if problem:
                problems[call.case.name] = problem
            else:
                returned_by_case[call.case.name] = returned
        numeric_by_case = numerical_derivatives(outcome, returned_by_case)
        verdicts_by_case = {}
        for call in calls:
            case = call.case
            if case.name not in returned_by_case:
                continue
            returned = returned_by_case[case.name]
            if judge_special is not None and judge_special.applies(case):
                verdicts_by_case[case.name] = judge_special(case, returned)
                continue
            numeric, directions = numeric_by_case.get(case.name, ([None] * len(gradients),
                                                                  [None] * len(gradients)))
            verdicts_by_case[case.name] = [
                judge_gradient(name, returned[name], case.expected[name], axes, case, numeric[k],
                               directions[k], forward, case.variants.get(name), messages.get(name))
                for k, (name, _, axes) in enumerate(gradients)]
        credit_where_forward_is_constant(verdicts_by_case, forward)
        for call, (_, backward_step) in zip(calls, steps):
            case = call.case
            text = (f"{call.text(forward)}, then {backward}"
                    f"(dout {fmt_shape(case.inputs['dout'].shape)}, cache)")
            if case.name in problems:
                problem, charge = problems[case.name]
                if charge:
                    tally.failed_call(case, text, len(gradients), problem)
                else:
                    tally.skip(case, text, problem)
                continue
            returned = returned_by_case[case.name]
            tally.case(case, text, verdicts_by_case[case.name])
            tally.outputs(case, returned)
            result = outcome.results[backward_step]
            tally.inputs(case, unchanged_inputs(result.args, {0: ("dout", case.inputs["dout"])}))
    return evaluate


@dataclass
class Plan:
    """How one rubric check reads a job's outcome: its evaluate functions (see
    plan_forward), the function its feedback is about, whether the dtype and
    unchanged-inputs units apply."""
    evaluators: list
    function: str
    contract: bool = True


def run_plans(env, job, plans):
    """Run the job once (forward units were planned first, so a crashing
    backward cannot cost forward results) and score each planned check."""
    if not plans:
        return {}
    outcome = env.run(job)
    outcome.run_more = env.run    # for the jobs an evaluator finds it needs (numerical gradients)
    results = {}
    for check, plan in plans.items():
        tally = Tally(plan.function, env.cases.public_only)
        for evaluate in plan.evaluators:
            evaluate(outcome, tally)
        results[check] = tally.result(contract=plan.contract)
    return results
