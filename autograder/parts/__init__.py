"""Parts of the grade. Each part is a module listed in PARTS that exposes:

- ``TITLE``: a short name for messages ("numpy layers");
- ``FILES``: the submission files it needs (for the "missing file" messages);
- ``CHECKS``: {check id: one-line description}; rubric.yaml entries of the
  part must use these ids;
- ``grade(ctx, check_ids) -> {check id: CheckResult}``;
- optionally ``read_settings(given, where) -> dict``: its settings from the
  rubric's mapping under the part's name (``given``, None when absent;
  ``where`` names the rubric file; a ValueError when they are wrong);
  rubric.py reads them once per grade and grade.py hands them to the part
  as ``ctx.settings``.

A part never imports student code: it describes calls as sandbox Jobs and
runs them with ``ctx.run(job)``.
"""
import importlib
from dataclasses import dataclass, field
from pathlib import Path

from autograder.results import Results

PARTS = {
    "layers": "autograder.parts.layers",
    "cnn": "autograder.parts.cnn",
}


class BudgetExceeded(Exception):
    """grade.py's watchdog fired: the grade overran its time budget. A part
    that catches every exception lets this one through."""


@dataclass
class CheckResult:
    """The outcome of one rubric check: the share of its points earned, the
    feedback shown to the student (summary first) and the pictures shown
    with it on Gradescope (autograder/pictures: each says in a text line of
    the details what it shows)."""
    fraction: float
    summary: str
    details: list = field(default_factory=list)
    pictures: list = field(default_factory=list)

    def __post_init__(self):
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"CheckResult.fraction must be within [0, 1], got {self.fraction}")


@dataclass
class GradingContext:
    submission: object            # autograder.submission.Submission
    sandbox: object               # autograder.sandbox.Sandbox
    cases_dir: Path
    data_dir: str = None          # CIFAR-10 location (--data-dir), for the CNN part
    output_dir: Path = None       # where extra files (plots) may be written next to results.json
    file_prefix: str = ""         # of those files' names: "" next to results.json, "NAME_" next to NAME.json
    settings: dict = None         # the part's rubric settings (its read_settings), None: its defaults
    entries: tuple = ()           # the part's rubric entries (rubric.RubricEntry)
    results: Results = field(default_factory=Results)   # the grade's tests, notes, leaderboard, extra_data
    staff_console: bool = False   # the console is the staff's (Gradescope's, grade --staff-console)

    def output_file(self, name):
        """Where to write the extra file `name` of this grade (None: nowhere)."""
        return None if self.output_dir is None else Path(self.output_dir) / f"{self.file_prefix}{name}"

    def run(self, job):
        """Run a sandbox Job on the submission's files."""
        return self.sandbox.run(job, self.submission.files)


def load_part(name):
    """The module that grades part `name` (see PARTS)."""
    return importlib.import_module(PARTS[name])
