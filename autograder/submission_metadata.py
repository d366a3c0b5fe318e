"""Gradescope's submission_metadata.json: who submitted, when, and what the
earlier graded submissions of the same assignment scored.

On Gradescope the file is /autograder/submission_metadata.json (run_autograder
passes it to ``grade --submission-metadata``); locally a student or TA may
pass a file in the same format. The grader trusts its content only as far
as Gradescope writes it: a missing or malformed file means "no history",
never a failed grade.

The fields read (Gradescope's format): ``created_at`` (ISO 8601 with offset,
this submission's time) and ``previous_submissions``: a list of objects with
``submission_time`` (ISO 8601), ``score`` (number) and ``results`` (that
submission's results.json as an object).
"""
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

GRADESCOPE_PATH = Path("/autograder/submission_metadata.json")


@dataclass(frozen=True)
class PreviousSubmission:
    time: datetime            # submission_time, timezone-aware
    score: float              # None when Gradescope recorded none
    results: dict = field(default_factory=dict)   # its results.json ({} when absent)


@dataclass(frozen=True)
class SubmissionMetadata:
    created_at: datetime = None                   # this submission's time (None: unknown)
    previous: tuple = ()                          # PreviousSubmission, oldest first
    problem: str = None                           # why the file could not be read (None: it could)

    @property
    def last(self):
        """The most recent earlier submission, or None."""
        return self.previous[-1] if self.previous else None


def parse_time(text):
    """A timezone-aware datetime from Gradescope's ISO 8601 text, or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _previous(entry):
    if not isinstance(entry, dict):
        return None
    moment = parse_time(entry.get("submission_time"))
    if moment is None:
        return None
    score = entry.get("score")
    score = float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None
    results = entry.get("results") if isinstance(entry.get("results"), dict) else {}
    return PreviousSubmission(moment, score, results)


def load(path):
    """SubmissionMetadata of the file at path (None: no file given). A file
    that is missing or not in Gradescope's format gives no history and says
    why in .problem (for the console), never an exception."""
    if path is None:
        return SubmissionMetadata()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return SubmissionMetadata(problem=f"{path}: cannot be read as JSON ({type(exc).__name__}: {exc})")
    if not isinstance(data, dict):
        return SubmissionMetadata(problem=f"{path}: expected a JSON object (Gradescope's "
                                          f"submission_metadata.json), got {type(data).__name__}")
    entries = data.get("previous_submissions") or []
    if not isinstance(entries, list):
        return SubmissionMetadata(parse_time(data.get("created_at")),
                                  problem=f"{path}: previous_submissions is not a list")
    previous = sorted(filter(None, map(_previous, entries)), key=lambda entry: entry.time)
    skipped = len(entries) - len(previous)
    problem = (f"{path}: {skipped} of previous_submissions had no valid submission_time and were "
               f"left out") if skipped else None
    return SubmissionMetadata(parse_time(data.get("created_at")), tuple(previous), problem)
