"""``python -m autograder check FUNCTION [DIR]``: one function of the
submission checked the way Gradescope checks it, in a few seconds.

FUNCTION is a student function (conv_forward, batchnorm_backward, ...) or
model (FCNet, ConvNet): the rubric entries tagged with it are graded through
the same path as ``grade`` (grade.Grading: the submission found the same way,
student code in the sandbox, the same parts, judgement and feedback), every
other entry left out, with the public cases this copy of the grader holds.
The TA checks are not run here (``grade`` runs them). The notebooks call it
after each function through the handout's cnn/checks.py
(``check("conv_forward")``); pack.py runs its quick checks through
grade_checks below.

Exit status: 0 when every check earned its points, 1 when one lost points,
2 when FUNCTION is unknown or the grader failed.
"""
import argparse
import sys
import tempfile
from pathlib import Path

from autograder import grade
from autograder.rubric import RUBRIC_PATH, load_rubric

MAX_LINES = 40          # feedback lines shown per test


def add_arguments(parser):
    parser.add_argument("function", metavar="FUNCTION",
                        help="a function of layers.py (conv_forward, ...) or a model of models.py "
                             "(FCNet, ConvNet); the rubric entries tagged with it are graded")
    parser.add_argument("submission_dir", metavar="DIR", nargs="?", default=".",
                        help="folder with layers.py (and models.py), or one folder above it "
                             "(default: the current folder)")
    parser.add_argument("--data-dir", default=None,
                        help="CIFAR-10 folder, for the model checks that need it (as for grade)")


def entries_for(function, entries):
    """The rubric entries tagged `function` (or whose check id it is)."""
    return [entry for entry in entries if function in entry.tags or function == entry.check]


def known_functions(entries):
    """Every FUNCTION check accepts, in rubric order."""
    return list(dict.fromkeys(tag for entry in entries for tag in entry.tags))


def grade_arguments(submission_dir, results, checks, part, data_dir=None):
    """grade's options for grading only `checks` (rubric check ids) of one
    part ("all": both), writing results there, without the TA checks."""
    parser = argparse.ArgumentParser()
    grade.add_arguments(parser)
    args = parser.parse_args([str(submission_dir), "--results", str(results), "--part", part]
                             + (["--data-dir", str(data_dir)] if data_dir else []))
    args.ta_checks = str(Path(results).parent / "no-ta-checks")     # an empty folder: none
    args.only_checks = set(checks)
    return args


def grade_checks(submission_dir, entries, data_dir=None):
    """(results dict, Grading) of the rubric entries given, graded as grade
    grades them, in a temporary folder (nothing is written next to the files)."""
    parts = sorted({entry.part for entry in entries})
    with tempfile.TemporaryDirectory(prefix="autograder-check-") as scratch:
        (Path(scratch) / "no-ta-checks").mkdir()
        args = grade_arguments(submission_dir, Path(scratch) / "results.json",
                               [entry.check for entry in entries],
                               parts[0] if len(parts) == 1 else "all", data_dir)
        grading = grade.Grading(args)
        grading.run()
        return grading.results_json(pictures=False), grading


def format_tests(tests, max_lines=MAX_LINES):
    """Every test with its score and its whole feedback (cut at max_lines)."""
    lines = []
    for test in tests:
        lines.append(f"{test['number']} {test['name']}: {test['score']:.2f} / {test['max_score']:g}")
        text = test["output"].rstrip("\n").split("\n") if test["output"] else ["(no feedback)"]
        lines += ["    " + line for line in text[:max_lines]]
        if len(text) > max_lines:
            lines.append(f"    ... {len(text) - max_lines} more lines (python -m autograder grade "
                         f"writes them all to results.json)")
        lines.append("")
    return lines


def run(args):
    entries = load_rubric(RUBRIC_PATH)
    chosen = entries_for(args.function, entries)
    if not chosen:
        print(f"check: no check of {args.function!r}. FUNCTION is one of: "
              f"{', '.join(known_functions(entries))}", file=sys.stderr)
        return 2
    results, grading = grade_checks(args.submission_dir, chosen, args.data_dir)
    numbers = {entry.number for entry in chosen}
    tests = [test for test in results["tests"] if test["number"] in numbers]
    print(f"check {args.function}: {'the public cases, ' if public_only(grading) else ''}"
          f"graded as on Gradescope")
    notes = student_notes(results["output"], grading)
    if notes:
        print(notes + "\n")
    print("\n".join(format_tests(tests)).rstrip("\n"))
    if grading.failed:
        return 2
    return 0 if all(test["score"] >= test["max_score"] for test in tests) else 1


def public_only(grading):
    """Whether this copy of the grader has only the public cases."""
    return not (Path(grading.args.cases_dir) / "hidden").is_dir()


def student_notes(output, grading):
    """The grade's notes without those about its temporary folder (gone by now)."""
    scratch = str(Path(grading.args.results).parent)
    return "\n".join(line for line in output.split("\n") if scratch not in line).strip("\n")
