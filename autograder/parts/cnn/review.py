"""The integrity stage of the CNN part: after the scored predictions, a
second worker process predicts each evaluated model's unchanged (and fresh)
images; integrity.py turns both into figures and flags. The report goes to
results.json's top-level ``extra_data.integrity`` (the regrade CSV and class
report read it), to the grader's console when it is the staff's (grade
--staff-console, which run_autograder passes: on Gradescope the console is
hidden from students; a student's local grade never prints it) and, when the rubric's
``integrity_test`` is true, into a hidden 0-point test.

No score depends on it, and its failure costs nothing: the report then says
what failed.
"""
import sys
import traceback

import numpy as np

from autograder.outcomes import limit_hit
from autograder.parts import BudgetExceeded
from autograder.parts.cnn import integrity
from autograder.parts.cnn.jobs import error_text, unchanged_job

TEST_NUMBER = "10.2"     # beside the written answers (10.1), after the rubric's; TA checks may not take it
TEST_NAME = "Integrity report (instructors only)"
TEST_TAGS = ("ConvNet", "FCNet")


def review(ctx, settings, views, measured, tensors, protocol):
    """measured: {name: logits on its changed images} of the models whose
    accuracy was measured; tensors: {name: (extra tensors text, values of the
    largest)} from the architecture inspection; views: {name: evaluation.Views}.
    Returns the report (None when there is nothing to report)."""
    try:
        report = _report(ctx, settings, views, measured, tensors, protocol)
    except BudgetExceeded:
        raise
    except Exception as exc:
        traceback.print_exc()
        report = {"flagged": False, "reasons": [],
                  "error": f"the integrity report failed: {type(exc).__name__}: {exc}"}
    if report is None:
        return None
    ctx.results.extra_data["integrity"] = report
    lines = integrity.describe(report) if "models" in report else [report["error"]]
    if ctx.staff_console:     # never on a student's own console (grade --staff-console)
        print("\n".join(["integrity report (instructors only):"] + lines), file=sys.stderr)
    if settings["integrity_test"]:
        ctx.results.add_extra(TEST_NUMBER, TEST_NAME, "\n".join(lines), "hidden", TEST_TAGS,
                              passed=not report["flagged"])
    return report


def _report(ctx, settings, views, measured, tensors, protocol):
    flags = []
    for name, (text, largest) in tensors.items():
        flags += integrity.tensor_reasons(name, text, largest)
    found = {}
    if measured:
        job, steps = unchanged_job(ctx.sandbox, {name: views[name] for name in measured})
        outcome = ctx.run(job).results
        for name, logits in measured.items():
            result, unchanged = outcome[steps[name]], views[name].unchanged
            usable = (result.ok and isinstance(result.value, np.ndarray)
                      and result.value.shape == (len(unchanged.labels), 10))
            found[name] = integrity.figures(logits, views[name].changed,
                                            result.value if usable else None, unchanged if usable else None)
            if not usable:
                why = error_text(result).split("\n", 1)[0] if not result.ok else "predictions of the wrong shape"
                found[name]["error"] = f"unchanged images not measured: {why}"
                # The grade's own time running out is no sign of the model's (integrity's unmeasured flag).
                found[name]["out_of_time"] = not result.ok and limit_hit(result) == "grading time budget"
            flags += integrity.reasons(name, found[name], settings)
    if not found and not flags:
        return None
    withheld = [name for name in found if integrity.withheld(found[name], settings)]
    return integrity.report(found, flags, protocol, withheld)
