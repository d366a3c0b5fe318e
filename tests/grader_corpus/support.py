"""Helpers for the grader tests: build a submission from the reference
layers.py plus appended code, grade it through the real command line, and
read the scores per student function."""
import json
import textwrap
from pathlib import Path

from autograder import cli
from autograder.rubric import RUBRIC_PATH, load_rubric

REPO = Path(__file__).resolve().parents[2]
REFERENCE_LAYERS = REPO / "solutions" / "cnn" / "layers.py"

# In the reference, the spatial functions call batchnorm_forward/backward, so a
# bug there is (rightly) also a bug of the spatial function of that submission.
CALLERS = {
    "batchnorm_forward": {"spatial_batchnorm_forward"},
    "batchnorm_backward": {"spatial_batchnorm_backward"},
}


def make_submission(folder, appended_code="", base=REFERENCE_LAYERS):
    """A submission folder whose layers.py is `base` plus appended_code
    (which typically redefines one function)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = Path(base).read_text()
    if appended_code:
        text += "\n\n# ---- appended by the test ----\n" + textwrap.dedent(appended_code)
    (folder / "layers.py").write_text(text)
    return folder


def grade(folder, results=None, part="layers", extra=()):
    """Grade through the CLI in this process; returns the parsed results.json."""
    results = Path(results) if results else Path(folder).parent / f"{Path(folder).name}-results.json"
    status = cli.main(["grade", str(folder), "--results", str(results), "--part", part, *extra])
    assert status == 0, f"grading {folder} exited with {status}"
    return json.loads(results.read_text())


def score_by_function(results):
    """{student function: (score, max_score)} summed over the tests tagged with it."""
    totals = {}
    for test in results["tests"]:
        for tag in test["tags"]:
            score, max_score = totals.get(tag, (0.0, 0.0))
            totals[tag] = (score + test["score"], max_score + test["max_score"])
    return totals


def outputs_of(results, function):
    return "\n".join(test["output"] for test in results["tests"] if function in test["tags"])


def points(part=None, check=None, rubric=RUBRIC_PATH):
    """Points the rubric gives (one part, one check, or in all): tests derive
    totals from the rubric they grade with, so that any consistent rubric passes."""
    return sum(entry.points for entry in load_rubric(rubric)
               if part in (None, entry.part) and check in (None, entry.check))
