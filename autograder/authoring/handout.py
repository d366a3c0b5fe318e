"""``python -m autograder handout``: the student handout, generated from solutions/
(build-only: the authoring package is not shipped to students).

Writes ``assignments/`` (committed) and ``dist/handout.zip`` (the same files
under one folder, plus the public grader and a requirements.txt). With
``--check`` it writes nothing and verifies instead: assignments/ is in sync
with solutions/, no solution line leaks, every stub raises
NotImplementedError, assignments/cnn imports, and the handout notebooks run
against the reference code.

This module is the command; the work is split by concern, and the names
other modules and the tests use are re-exported here:
handout_plan (what each file of solutions/ becomes, Handout, HandoutError),
handout_rubric (the README's rubric table), handout_build (generate, build,
check_sync), handout_zip (dist/handout.zip), handout_leaks (the leak check),
handout_checks (stubs raise, notebooks run).
"""
import sys
from pathlib import Path

from autograder.authoring.handout_build import build, check_sync, generate, ta_check_problems
from autograder.authoring.handout_leaks import PUBLISHED_LINES, find_leaks, texts, tree_texts, zip_texts
from autograder.authoring.handout_plan import Handout, HandoutError, display
from autograder.authoring.handout_rubric import render_rubric
from autograder.authoring.handout_zip import (STUDENT_REQUIREMENTS, ZIP_FOLDER, check_zip, grader_files,
                                              zip_bytes)
from autograder.layout import ASSIGNMENT, ASSIGNMENTS_DIR, DIST_DIR, SOLUTIONS_DIR

__all__ = ["Handout", "HandoutError", "PUBLISHED_LINES", "STUDENT_REQUIREMENTS", "ZIP_FOLDER", "build",
           "check_sync", "check_zip", "find_leaks", "generate", "grader_files", "render_rubric",
           "ta_check_problems", "texts", "tree_texts", "zip_bytes", "zip_texts",
           "add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("--check", action="store_true",
                        help="write nothing; verify that assignments/ is in sync with solutions/, "
                             "that no solution line leaks, that every stub raises "
                             "NotImplementedError, that assignments/cnn imports and that the "
                             "handout notebooks run against the reference code")
    parser.add_argument("--skip-notebooks", action="store_true",
                        help="with --check: do not execute the notebooks (the slow part)")
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS_DIR,
                        help="source folder (default: %(default)s)")
    parser.add_argument("--assignments", type=Path, default=ASSIGNMENTS_DIR,
                        help="handout folder (default: %(default)s)")
    parser.add_argument("--zip", type=Path, default=DIST_DIR / "handout.zip",
                        help="handout archive (default: %(default)s)")


def run(args):
    if args.skip_notebooks and not args.check:
        print("handout: --skip-notebooks only applies to --check", file=sys.stderr)
        return 2
    try:
        if args.check:
            return _run_check(args)
        stale = _stale_cases()
        if stale:
            raise HandoutError(f"the handout ships the public cases, and {stale[0]} "
                               f"(`make handout` runs it for you)")
        handout = build(args.solutions, args.assignments, args.zip)
    except HandoutError as exc:
        print(f"handout: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {display(args.assignments)}/ ({len(handout.files)} files) and "
          f"{display(args.zip)}; leak check: none of {len(handout.secrets)} solution lines found")
    _print_promise_warnings()
    return 0


def _stale_cases():
    """[what is wrong] when autograder/cases were not built from the reference
    layers.py `make cases` builds them from, else []."""
    from autograder.authoring import build_cases

    problem = build_cases.stale_problem()
    return [problem] if problem else []


def _print_promise_warnings():
    from autograder.authoring import promises
    from autograder.ta import suite as ta_suite

    for line in promises.promise_warnings(ta_points=ta_suite.points_by_part()):
        print(f"warning: {line}", file=sys.stderr)


def _run_check(args):
    from autograder.authoring import handout_checks

    handout = generate(args.solutions)
    if not (args.assignments / ASSIGNMENT).is_dir():
        print(f"FAIL: {display(args.assignments / ASSIGNMENT)} does not exist; "
              "run `make handout` to generate it")
        return 1
    steps = [
        ("in sync with solutions/", lambda: check_sync(handout, args.assignments)),
        ("leak check", lambda: find_leaks(handout.secrets, tree_texts(args.assignments))
         + find_leaks(handout.secrets, zip_texts(zip_bytes(handout)))),
        ("stubs raise NotImplementedError, modules import", lambda: handout_checks.check_stubs(
            args.assignments / ASSIGNMENT, args.solutions / ASSIGNMENT, handout.student_functions)),
        ("autograder/cases built from the current reference layers.py", _stale_cases),
        ("TA checks (autograder/ta_checks) declared fully", ta_check_problems),
        (f"{display(args.zip)} in sync (when built)", lambda: check_zip(handout, args.zip)),
    ]
    if not args.skip_notebooks:
        steps.append(("notebooks run against the reference code", lambda: handout_checks.run_notebooks(
            args.assignments / ASSIGNMENT, args.solutions / ASSIGNMENT, handout.notebook_stubs)))
    failed = False
    for title, step in steps:
        problems = step()
        print(f"{'FAIL' if problems else 'ok'}: {title}")
        for problem in problems:
            print("  " + problem.replace("\n", "\n    "))
        failed = failed or bool(problems)
    _print_promise_warnings()
    return 1 if failed else 0
