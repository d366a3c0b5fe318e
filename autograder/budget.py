"""The optional submission budget (issue #20): at most N graded submissions
per day (any 24 hours) or in all, a course setting of rubric.yaml, off by
default:

    course:
      submission_budget: {max_graded: 3, per: day}    # or per: all; null = off

Repeated uploads would let a student probe the secret test-image draws and
the hidden cases; Gradescope's documented remedy is the autograder reading
submission_metadata.json's previous_submissions (autograder/submission_metadata.py).
Past the budget a submission is not graded: its results are the previous
graded submission's results object, as Gradescope recorded it (hidden tests
stay hidden as they were), with a first output line saying why and when the
next submission counts. Such a result is marked (its output starts with
MARKER) so that it never counts as graded itself. Without a previous graded
result to return, or with the setting off, the submission is graded as usual.
"""
import copy
from dataclasses import dataclass
from datetime import timedelta, timezone

COURSE_KEYS = ("submission_budget",)
PERIODS = {"day": "in any 24 hours", "all": "in all"}
MARKER = "Submission budget: "
WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Budget:
    max_graded: int
    per: str                        # "day" (a rolling 24 hours) or "all"


def read_course_settings(given, where):
    """{"submission_budget": Budget or None} from the rubric's ``course:``
    mapping (None: none); ValueError naming `where` and the key when wrong."""
    where = f"{where}: course settings (read by autograder/budget.py)"
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise ValueError(f"{where}: expected a mapping with keys {', '.join(COURSE_KEYS)}")
    unknown = sorted(set(given) - set(COURSE_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(map(str, unknown))}; known: {', '.join(COURSE_KEYS)}")
    return {"submission_budget": _budget(given.get("submission_budget"), where)}


def _budget(value, where):
    if value is None or value is False:
        return None
    expected = "submission_budget must be null (off) or {max_graded: N, per: day|all} with N >= 1"
    if not isinstance(value, dict) or set(value) != {"max_graded", "per"}:
        raise ValueError(f"{where}: {expected}, got {value!r}")
    count, per = value["max_graded"], value["per"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1 or per not in PERIODS:
        raise ValueError(f"{where}: {expected}, got {value!r}")
    return Budget(count, per)


def counts(previous):
    """Whether an earlier submission was graded (not itself a budget refusal)."""
    output = previous.results.get("output")
    return bool(previous.results) and not (isinstance(output, str) and output.startswith(MARKER))


def next_counts_at(graded_times, budget):
    """When a submission counts again (None: never, with per: all)."""
    if budget.per == "all":
        return None
    times = sorted(graded_times)
    return times[len(times) - budget.max_graded] + WINDOW


def refusal(budget, metadata, now):
    """The results object to return instead of grading, or None to grade.
    metadata: submission_metadata.SubmissionMetadata; now: this submission's
    time (timezone-aware)."""
    if budget is None:
        return None
    graded = [p for p in metadata.previous if counts(p)]
    window = [p for p in graded if budget.per == "all" or now - p.time < WINDOW]
    if len(window) < budget.max_graded or not graded:
        return None
    last = graded[-1]
    results = copy.deepcopy(last.results)
    when = next_counts_at([p.time for p in window], budget)
    line = (f"{MARKER}this course grades at most {budget.max_graded} submission"
            f"{'s' if budget.max_graded != 1 else ''} {PERIODS[budget.per]}, and {len(window)} of yours "
            f"{'were' if len(window) != 1 else 'was'} graded {'in the last 24 hours' if budget.per == 'day' else 'already'}. "
            f"This submission was not graded: below is the result of your graded submission of "
            f"{_moment(last.time, now)}. "
            + (f"Your next submission counts from {_moment(when, now)}." if when
               else "No further submission will be graded."))
    earlier = results.get("output") if isinstance(results.get("output"), str) else ""
    results["output"] = line + ("\n\n" + earlier if earlier else "")
    extra = results.get("extra_data") if isinstance(results.get("extra_data"), dict) else {}
    results["extra_data"] = {**extra, "submission_budget": {
        "graded": False, "result_of": last.time.isoformat(),
        "next_counts_at": when.isoformat() if when else None}}
    return results


def _moment(moment, now):
    """"2026-11-21 18:00 UTC (10:00 -08:00, your time)": UTC and the offset of `now` (the student's)."""
    utc = moment.astimezone(timezone.utc)
    text = f"{utc:%Y-%m-%d %H:%M} UTC"
    if now.utcoffset() and now.utcoffset() != timedelta(0):
        local = moment.astimezone(now.tzinfo)
        offset = f"{local:%z}"
        text += f" ({local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:5]}, your time)"
    return text
