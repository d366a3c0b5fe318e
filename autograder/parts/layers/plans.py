"""Planning the layer checks' calls into a job and reading its outcome:
Call (one call of a student function), plan_forward and plan_backward (the
steps of a forward or backward check and the evaluate function that judges
them), Plan (how one rubric check reads the outcome) and run_plans (run the
job once, score every planned check).
"""
from dataclasses import dataclass

import numpy as np

from autograder.parts.layers.compare import fmt_shape, matches
from autograder.parts.layers.env import new_job
from autograder.parts.layers.gradients import (credit_where_forward_is_constant, judge_gradient,
                                               numeric_results, plan_numeric, random_directions)
from autograder.parts.layers.judging import (call_text, forward_failed, forward_wrong_shape,
                                             judge_array, unchanged_inputs, unpack, unpack_forward)
from autograder.parts.layers.sizes import signature_mistake
from autograder.parts.layers.tally import Tally


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
        outcomes = []
        for call, step in zip(calls, steps):
            evaluate_call(call, outcome.results[step], tally)
            outcomes.append((call.case, tally.case_correct[-1]))
        mistake = signature_mistake(outcomes, tally.mistakes)
        if mistake:
            tally.name_failures(mistake)

    def evaluate_call(call, result, tally):
        case = call.case
        if not result.ok:
            tally.failed_call(case, call.text(function), 1, result.error_text(), label)
            return
        out, problem = unpack_forward(result.value, function)
        if problem:
            tally.failed_call(case, call.text(function), 1, problem, label)
            return
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
        # out comes back so that a case whose forward returned the wrong shape is not charged
        forward_step = job.call(f"layers.{forward}", *call.values, encode="out_cache")
        backward_step = job.call(f"layers.{backward}", call.case.inputs["dout"],
                                 job.ref(forward_step, 1), report=[0])
        steps.append((forward_step, backward_step))
    return BackwardPlan(job.name, forward, backward, calls, steps, gradients, messages,
                        judge_special).evaluate


@dataclass
class BackwardPlan:
    """The planned steps of a backward check (see plan_backward) and how its
    outcome is read: the returned gradients, the numerical derivatives where
    needed, one verdict per gradient, then the tally."""
    job_name: str
    forward: str
    backward: str
    calls: list                   # [Call]
    steps: list                   # per call: (forward step id, backward step id)
    gradients: list               # [(name, forward argument index, axes)]
    messages: dict                # gradient name -> {mistake: message}
    judge_special: object = None

    @property
    def names(self):
        return [name for name, _, _ in self.gradients]

    def special(self, case):
        return self.judge_special is not None and self.judge_special.applies(case)

    def evaluate(self, outcome, tally):
        returned_by_case, problems = self.collect(outcome)
        numeric_by_case = self.numerical_derivatives(outcome, returned_by_case)
        verdicts_by_case = {call.case.name: self.verdicts(call.case, returned_by_case[call.case.name],
                                                          numeric_by_case.get(call.case.name))
                            for call in self.calls if call.case.name in returned_by_case}
        credit_where_forward_is_constant(verdicts_by_case, self.forward)
        for call, (_, backward_step) in zip(self.calls, self.steps):
            self.record(tally, outcome, call, backward_step, returned_by_case, problems,
                        verdicts_by_case)

    def collect(self, outcome):
        """({case name: {gradient name: value}}, {case name: (problem, charge)})."""
        returned_by_case, problems = {}, {}
        for call, (forward_step, backward_step) in zip(self.calls, self.steps):
            returned, problem = self.returned_gradients(outcome, call, forward_step, backward_step)
            if problem:
                problems[call.case.name] = problem
            else:
                returned_by_case[call.case.name] = returned
        return returned_by_case, problems

    def returned_gradients(self, outcome, call, forward_step, backward_step):
        """(returned {name: value}, None) or (None, (why the case failed, whether to charge it))."""
        forward_result, result = outcome.results[forward_step], outcome.results[backward_step]
        if not forward_result.ok:
            return None, forward_failed(self.forward, self.backward, forward_result)
        if isinstance(forward_result.value, tuple) and forward_result.value:
            wrong_shape = forward_wrong_shape(self.forward, self.backward, forward_result.value[0],
                                              call.case.inputs["dout"])
            if wrong_shape:
                return None, (wrong_shape, False)
        if not result.ok:
            return None, (result.error_text(), True)
        returned, problem = unpack(result.value, self.names, self.backward)
        return returned, (problem, True) if problem else None

    def numerical_derivatives(self, outcome, returned_by_case):
        """Central differences of the student's forward, only for the cases
        whose gradients miss the expected ones (a correct backward needs none).
        They run as plain forward calls in a job of their own, so nothing in the
        process that ran the backward can reach them; the grader does the arithmetic.
        Returns {case name: (derivatives per gradient, directions per gradient)}."""
        numeric_job = new_job(f"{self.job_name}: numerical gradients of {self.forward}")
        planned = {}
        for call in self.calls:
            returned = returned_by_case.get(call.case.name)
            if returned is None or self.special(call.case) or all(
                    matches(returned[name], call.case.expected[name]) for name in self.names):
                continue
            inputs = [call.values[index] for _, index, _ in self.gradients]
            directions = random_directions(call.case, inputs)
            planned[call.case.name] = (plan_numeric(numeric_job, self.forward, call, self.gradients,
                                                    directions),
                                       directions, call.case.inputs["dout"])
        if not planned:
            return {}
        numeric_outcome = outcome.run_more(numeric_job)
        return {name: (numeric_results(numeric_outcome, numeric_steps, dout), directions)
                for name, (numeric_steps, directions, dout) in planned.items()}

    def verdicts(self, case, returned, numeric_and_directions):
        """One Verdict per gradient of a case whose backward returned them."""
        if self.special(case):
            return self.judge_special(case, returned)
        none = [None] * len(self.gradients)
        numeric, directions = numeric_and_directions or (none, none)
        return [judge_gradient(name, returned[name], case.expected[name], axes, case, numeric[k],
                               directions[k], self.forward, case.variants.get(name),
                               self.messages.get(name))
                for k, (name, _, axes) in enumerate(self.gradients)]

    def record(self, tally, outcome, call, backward_step, returned_by_case, problems,
               verdicts_by_case):
        """Tally one case: its verdicts and contract, or why it failed or was skipped."""
        case = call.case
        text = (f"{call.text(self.forward)}, then {self.backward}"
                f"(dout {fmt_shape(case.inputs['dout'].shape)}, cache)")
        if case.name in problems:
            problem, charge = problems[case.name]
            if charge:
                tally.failed_call(case, text, len(self.gradients), problem)
            else:
                tally.skip(case, text, problem)
            return
        returned = returned_by_case[case.name]
        tally.case(case, text, verdicts_by_case[case.name])
        tally.outputs(case, returned)
        result = outcome.results[backward_step]
        tally.inputs(case, unchanged_inputs(result.args, {0: ("dout", case.inputs["dout"])}))

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
