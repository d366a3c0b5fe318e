"""Tallying one rubric check: scoring units per case, the dtype and
unchanged-inputs contract units, and the feedback (summary, likely
mistakes, failing cases) into a CheckResult.

Scoring: a check is made of units, normally one per output of each case
(e.g. dx, dw and db of a conv_backward case are three units), plus two
contract units worth the share of cases that were correct AND returned
float64 (resp. left their inputs unchanged), so a wrong or crashing function
earns nothing from them. The check earns the share of units passed.
"""
from collections import Counter

import numpy as np

from autograder.parts import CheckResult
from autograder.parts.layers.hints import hint_for
from autograder.parts.layers.judging import Verdict
from autograder.pictures import Picture, draw, drawn

MAX_FAILING_CASES_SHOWN = 3
# Named when a function finished some cases but timed out on others: slow, not stuck.
TOO_SLOW = ("too slow for the larger inputs (it finished the smaller ones, so this is no "
            "infinite loop): each output value should cost one window's work; loops over every "
            "pair of input and output positions, or numpy calls on whole arrays inside the "
            "innermost loop, grow far faster than the input")


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
        self.worst = None               # (wrong positions, case label, Verdict): the worst error map

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
                self.keep_worst(case.label + (f" ({label})" if label else ""), verdict)
        self.case_correct.append(passed == len(verdicts))
        if passed == len(verdicts):
            self.correct_cases += 1
        else:
            self.failures.append((case.label + (f" ({label})" if label else ""), call, lines))

    def keep_worst(self, label, verdict):
        """Remember the failing output with an error map that has the most
        wrong positions (rows x columns), the first of equals."""
        if verdict.error_map is None or not verdict.lines:
            return
        wrong = int((verdict.error_map > 0).sum())
        if self.worst is None or wrong > self.worst[0]:
            self.worst = (wrong, label, verdict)

    def picture(self):
        """[where the worst failing output is wrong, as a heat map], or []."""
        if self.worst is None:
            return []
        _, label, verdict = self.worst
        line = f"{label}: {verdict.lines[0].strip()}"
        name = verdict.lines[0].split(":", 1)[0]
        png = drawn(draw.error_map, verdict.error_map, f"{name} wrong: share per row, column")
        return [Picture(title=f"{self.function}: where {name} is wrong on its worst failing case "
                              f"({label}), by row and column", png=png, text=line)] if png else []

    def failed_call(self, case, call, units, problem, label="", contract=True):
        """A case whose call raised, hung or returned something unusable; an
        error with a known cause (Python 2 habits, removed numpy aliases,
        missing packages) names it."""
        hint = hint_for(problem, self.function)
        if problem.startswith("timed out"):
            self.timeouts += 1
        self.case(case, call, [Verdict(False, [problem], [hint] if hint else [])]
                  + [Verdict(False)] * (units - 1), label, contract)

    def name_failures(self, mistake):
        """Name a mistake recognised from the pattern of failing cases (not
        from any one of them): it explains every failure so far."""
        self.mistakes[mistake] = max(self.mistakes[mistake], len(self.failures))

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
        shown = self.picture()
        return CheckResult(fraction=min(1.0, max(0.0, fraction)), summary=self._summary(contract),
                           details=self._details(contract) + [f"Worst failing case: {p.text}" for p in shown],
                           pictures=shown)

    def _credit_line(self, contract):
        """How a partial score came about: the outputs are scored one by one."""
        outputs = f"{self.passed:g} of {self.units:g} outputs checked were right"
        if contract:
            outputs += (" (each output of each case counts, plus two shares for float64 outputs "
                        "and for unchanged inputs, earned by the cases that were fully correct)")
        return f"Partial credit: {outputs}; the score is that share of the points."

    def _summary(self, contract):
        if not self.cases and self.skipped:
            return f"not checked: {self.skipped[0][2]}, in every case".split("\n")[0]
        text = f"{self.correct_cases}/{self.cases} cases correct"
        if self.failures and self.passed:
            text += " (partial credit: some outputs right)"
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
        if self.failures and self.passed:
            lines.append(self._credit_line(contract))
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
            lines.append(f"Not checked, and not charged here ({_cases(len(self.skipped))}: the forward "
                         f"is charged for them): {self.skipped[0][2]}")
        lines.extend(self.notes[:3])
        return lines


def _cases(count):
    return f"{count} case{'' if count == 1 else 's'}"
