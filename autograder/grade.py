"""``python -m autograder grade SUBMISSION_DIR [--results FILE] [--data-dir DIR]
[--part layers|cnn|all]``: grade a submission, write Gradescope's
results.json and print its overall output (the submission summary first), a
score table and the full feedback of every test that lost points.

This process is trusted: it never imports the submission (parts run student
code through autograder/sandbox/) nor solutions/. A results.json is always
written, also when the grader itself fails (then with an error test and what
was scored before). Exit status: 0 when grading completed, whatever the
score; 2 when the autograder (or its command line) failed; 3 when --replay
could not stand in for the submission's code (autograder/outcomes.py).
"""
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from autograder import budget, outcomes, speed, submission_metadata, upload_notes
from autograder.answers import add_answers, uploaded_notebooks
from autograder.cases import CASES_DIR
from autograder.layout import STUDENT_CODE
from autograder.parts import PARTS, BudgetExceeded, GradingContext, load_part
from autograder.pictures.changes import changes
from autograder.pictures.html import page
from autograder.results import (Results, ResultsError, format_failures, format_table, internal_error,
                                validate, write_results)
from autograder.rubric import RUBRIC_PATH, check_ids_known, read_rubric
from autograder.sandbox import AUTO, CALL_TIMEOUT, Sandbox
from autograder.start_here import start_lines
from autograder.submission import EXPECTED_FILES, find_submission, submission_digests
from autograder.ta import suite as ta_suite

# Gradescope stops a run after 10 minutes (and then scores it 0); grading stops
# starting calls after the budget, and a watchdog ends a part stuck in grader
# code a little later, so results.json is always ours.
TIME_BUDGET = 480.0
WATCHDOG_GRACE = 45


def add_arguments(parser):
    parser.add_argument("submission_dir", metavar="SUBMISSION_DIR",
                        help="folder with layers.py, models.py, convnet.pt, fcnet.pt (or one folder below)")
    parser.add_argument("--results", default="results.json",
                        help="where to write Gradescope's results.json (default: ./results.json)")
    parser.add_argument("--data-dir", default=None,
                        help="CIFAR-10 folder for the CNN part (default: $CIFAR10_DIR, then, when "
                             "grading the handout folder this grader came in, its cnn/data/, where "
                             "data.py puts it; data inside any other submission is never read)")
    parser.add_argument("--part", choices=["layers", "cnn", "all"], default="all",
                        help="grade only one part (default: all)")
    parser.add_argument("--cases-dir", default=str(CASES_DIR),
                        help="test case data (default: the autograder's cases/; without a hidden/ "
                             "folder the grader runs in public mode)")
    parser.add_argument("--rubric", default=str(RUBRIC_PATH),
                        help="rubric file (default: autograder/rubric.yaml)")
    parser.add_argument("--ta-checks", default=str(ta_suite.TA_CHECKS_DIR), metavar="DIR",
                        help="folder of the TA checks, test_*.py files run with the part their tags "
                             "belong to (default: autograder/ta_checks)")
    parser.add_argument("--call-timeout", type=float, default=CALL_TIMEOUT, metavar="SECONDS",
                        help=f"wall-clock limit of one call into the submission on the reference machine, "
                             f"scaled by --slowness (default: {CALL_TIMEOUT:g})")
    parser.add_argument("--slowness", type=float, default=None, metavar="FACTOR",
                        help="scale every call's time limit by this factor (default: measured at "
                             "start-up, how much slower than the reference machine this one runs; "
                             "1 = no scaling)")
    parser.add_argument("--time-budget", type=float, default=TIME_BUDGET, metavar="SECONDS",
                        help=f"wall-clock budget of the whole grade; checks that cannot start in "
                             f"time score 0 as not run (default: {TIME_BUDGET:g})")
    parser.add_argument("--worker-user", default=AUTO,
                        help="user that runs student code when grading as root (default: auto, "
                             "the first of student, nobody; 'none': the grader's own user)")
    parser.add_argument("--worker-python", default=sys.executable,
                        help="interpreter of the worker processes (default: this one)")
    parser.add_argument("--outcomes", default=None, metavar="FILE",
                        help="also store what every call into the submission returned (.npz), so "
                             "that --replay can re-score it later without running it")
    parser.add_argument("--replay", default=None, metavar="FILE",
                        help="grade from outcomes stored by --outcomes instead of running the "
                             "submission (exit status 3 when they do not cover this grade)")
    parser.add_argument("--submission-metadata", dest="submission_metadata", default=None, metavar="FILE",
                        help="Gradescope's submission_metadata.json (or a file in its format): the top of "
                             "the output says what changed since the previous submission, and the "
                             "course's submission budget, if any, counts the earlier ones "
                             "(run_autograder passes /autograder/submission_metadata.json)")
    parser.add_argument("--staff-console", action="store_true",
                        help="also print what only the course staff may see (the integrity report) "
                             "on the console; run_autograder passes it, Gradescope hides that "
                             "console from students")



def find_data_dir(given, submission):
    """Where the CNN part reads CIFAR-10: --data-dir, then $CIFAR10_DIR, then
    cnn/data/ of the handout this grader came in (where the handout's `python
    data.py` puts it) when that handout's own cnn/ is what is graded. Data in
    any other submission is never read (upload_notes mentions it);
    None: nowhere (the CNN part then says how to point at it). Gradescope
    always passes --data-dir."""
    if given or os.environ.get("CIFAR10_DIR"):
        return given or os.environ["CIFAR10_DIR"]
    own = upload_notes.handout_data_dir()
    for name in STUDENT_CODE:
        if name in submission.files and Path(submission.files[name]).resolve().parent == own.parent:
            if (own / "cifar-10-batches-py" / "test_batch").is_file():
                return str(own)
    return None


def select_entries(rubric, only=None):
    """The rubric to grade: all of it, or only the entries whose check is in
    `only` (check and pack grade a few checks through this same path)."""
    return rubric if only is None else replace(rubric, entries=[entry for entry in rubric.entries
                                                                if entry.check in only])


def _watchdog(signum, frame):
    raise BudgetExceeded("the grading time budget ran out")


class Grading:
    """One grading run, step by step (run): find the submission, make the
    sandbox, grade each part (its rubric checks, then its TA checks), save.
    Everything found goes to self.results; a results.json is always left."""

    def __init__(self, args):
        self.args = args
        self.results_path = Path(args.results)
        self.started = time.monotonic()
        self.deadline = self.started + args.time_budget
        self.results = Results(time_budget=args.time_budget)
        self.submission = None
        self.failed = False
        self.timings = []          # (part, grader CPU-s, worker CPU-s, wall s) for the console
        self.ta_modules = []       # ta_suite.TAModule of the TA checks
        self.sandbox = None        # outcomes.Ledger over the Sandbox (or a Replay)
        self.replay_problem = None
        self.rubric = None         # rubric.Rubric, read once in run()
        self.budget_result = None  # the previous graded result, when over the submission budget
        self.metadata = read_metadata(args)           # submission_metadata.SubmissionMetadata, read once
        self.previous = self.metadata.last            # submission_metadata.PreviousSubmission or None

    def run(self):
        """Grade, save, and return the exit status."""
        previous_handler = None
        try:
            # Before any work: the plots go next to results.json, and a missing
            # folder must not surface only after minutes of grading.
            self.results_path.parent.mkdir(parents=True, exist_ok=True)
            rubric = self.rubric = select_entries(read_rubric(self.args.rubric),
                                                  getattr(self.args, "only_checks", None))
            if self.over_budget(rubric):
                return 0
            self.discover_ta_checks(rubric.entries)
            self.find_submission()
            ctx = self.context()
            if threading.current_thread() is threading.main_thread():
                previous_handler = signal.signal(signal.SIGALRM, _watchdog)
                signal.alarm(int(self.args.time_budget) + WATCHDOG_GRACE)
            for name in (list(PARTS) if self.args.part == "all" else [self.args.part]):
                self.grade_whole_part(name, rubric, ctx)
        except outcomes.ReplayError as exc:
            self.replay_problem = str(exc)
        except Exception as exc:
            self.internal_error("this submission", exc)
        finally:
            if previous_handler is not None:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, previous_handler)
            self.save()
            self.save_outcomes()
        self.replay_problem = self.replay_problem or getattr(self.sandbox, "problem", None)
        if self.replay_problem:
            print(f"replay: {self.replay_problem}; grade it without --replay", file=sys.stderr)
            return 3
        return 2 if self.failed else 0

    def over_budget(self, rubric):
        """Whether the course's submission budget (autograder/budget.py) is used
        up: then the results are the previous graded ones, nothing is graded."""
        settings = rubric.course["submission_budget"]
        if settings is None:
            return False
        metadata = self.metadata
        now = metadata.created_at or datetime.now(timezone.utc)
        result = budget.refusal(settings, metadata, now)
        try:
            if result is not None:
                validate(result)
        except ResultsError as exc:      # never a broken result instead of a grade
            print(f"submission budget: the previous result is not valid results.json ({exc}); "
                  f"grading this submission", file=sys.stderr)
            result = None
        self.budget_result = result
        return result is not None

    # -- finding the submission ---------------------------------------------------------

    def find_submission(self):
        """The submission, its summary and import warnings at the top of the
        output, and its written answers (with the CNN part)."""
        submission = self.submission = find_submission(self.args.submission_dir)
        for line in upload_notes.upload_notes(self.args, submission):
            self.results.note(line)
        if self.args.part != "layers" and uploaded_notebooks(submission):
            add_answers(self.results, submission)

    def discover_ta_checks(self, entries):
        self.ta_modules = ta_suite.discover(self.args.ta_checks, reserved=[e.number for e in entries])
        for module in self.ta_modules:
            if module.error:
                self.failed = True
                print(f"TA checks: {module.error}", file=sys.stderr)
                self.results.add_test("0", f"Autograder error: TA checks {module.path.name}", 0, 0,
                                      internal_error("its own checks", module.error))

    # -- making the sandbox -------------------------------------------------------------

    def context(self):
        """The GradingContext the parts share (each gets its own rubric share
        in grade_whole_part), over a new sandbox."""
        args, submission = self.args, self.submission
        data_dir = find_data_dir(args.data_dir, submission)
        output_dir = self.results_path.resolve().parent
        # Where workers get a mount namespace, these are hidden from them
        # too (the grader's own tree always is): test labels, hidden cases
        # kept elsewhere, the results.
        hidden = [Path(args.cases_dir), output_dir] + ([data_dir] if data_dir else [])
        self.sandbox = make_sandbox(args, submission, self.deadline, hidden)
        return GradingContext(submission=submission, sandbox=self.sandbox, cases_dir=Path(args.cases_dir),
                              data_dir=data_dir, output_dir=output_dir,
                              file_prefix="" if self.results_path.name == "results.json"
                              else f"{self.results_path.stem}_",
                              results=self.results, staff_console=getattr(args, "staff_console", False))

    # -- grading a part -----------------------------------------------------------------

    def grade_whole_part(self, name, rubric, ctx):
        """The rubric's checks of part `name`, then its TA checks; saved at once."""
        entries = rubric.of_part(name)
        ctx = replace(ctx, settings=rubric.settings.get(name), entries=tuple(entries))
        try:
            if time.monotonic() >= self.deadline:
                self.not_run(entries)
            else:
                self.grade_part(name, ctx)
        except BudgetExceeded:
            self.not_run([e for e in entries if e.number not in self.results.numbers()])
        except Exception as exc:
            self.internal_error(f"the {name} part", exc, entries)
        self.grade_ta_checks(name, ctx)
        self.save()   # what is scored so far survives a later crash or timeout

    def grade_part(self, name, ctx):
        """Run the part's grade on its rubric entries (ctx.entries) and record a test per entry."""
        module = load_part(name)
        check_ids_known(ctx.entries, name, module.CHECKS)
        cpu, workers, wall = time.process_time(), ctx.sandbox.total_cpu_seconds, time.monotonic()
        try:
            found = module.grade(ctx, [entry.check for entry in ctx.entries])
        except BudgetExceeded:
            self.not_run(ctx.entries)
            return
        except Exception as exc:
            self.internal_error(f"the {name} part", exc, ctx.entries)
            return
        finally:
            self.timings.append((name, time.process_time() - cpu,
                                 ctx.sandbox.total_cpu_seconds - workers, time.monotonic() - wall))
        for entry in ctx.entries:
            result = found.get(entry.check)
            if result is None:
                self.internal_error(f"check {entry.check}", LookupError("no result"), [entry])
                continue
            self.results.add_check(entry, result.fraction, "\n".join([result.summary] + list(result.details)),
                                   result.pictures)

    def not_run(self, entries):
        if entries and self.sandbox is not None:
            self.sandbox.limits.append({"limit": "grading time budget", "job": "grader",
                                        "message": f"{len(entries)} checks not run"})
        self.results.add_not_run(entries)

    def internal_error(self, what, exc, entries=()):
        """A failure of the autograder: a zero test per affected entry (or
        one error test), the traceback on the console only."""
        self.failed = True
        traceback.print_exc()
        self.results.add_error(what, exc, entries)

    # -- TA checks ----------------------------------------------------------------------

    def grade_ta_checks(self, name, ctx):
        """The TA checks of part `name` (autograder/ta/suite.py): each costs
        only its own points, whatever it does."""
        checks = [c for m in self.ta_modules for c in m.checks if c.part == name and not c.leaderboard]
        if not checks:
            return
        try:
            notes = ta_suite.run(self.ta_modules, name, ctx, self.deadline)
        except BudgetExceeded:
            self.not_run([c for c in checks if c.number not in self.results.numbers()])
            return
        except Exception as exc:
            done = self.results.numbers()
            self.internal_error(f"the TA checks of the {name} part", exc,
                                [c for c in checks if not c.problem and c.number not in done])
            return
        for note in notes:
            print(note, file=sys.stderr)

    # -- saving -------------------------------------------------------------------------

    def results_json(self, pictures=True):
        """The results.json mapping (pictures=False: all text, for the console),
        with what changed since the previous submission at the top; past the
        submission budget, the previous graded result instead."""
        if self.budget_result is not None:
            return self.budget_result
        limits = list(self.sandbox.limits) if self.sandbox is not None and self.sandbox.limits else None
        arguments = dict(execution_time=time.monotonic() - self.started,
                         extra_data={"limits": limits} if limits else None)
        self.results.changes = []        # a text-only pass, only when there is a previous submission to compare
        if self.previous is not None:
            self.results.changes = changes(self.previous, self.results.as_json(**arguments, pictures=False))
        return self.results.as_json(**arguments, pictures=pictures)

    def save(self):
        try:
            results = self.results_json()
            write_results(self.results_path, results)
            save_page(self.results_path, results)
        except Exception as exc:
            # The last resort must still be a valid file: an error and no score.
            self.failed = True
            traceback.print_exc()
            fallback = Results()
            fallback.add_error("the results", exc)
            write_results(self.results_path, fallback.as_json())

    def save_outcomes(self):
        """Write the stored outcomes (--outcomes); a failure here is the staff's, never the grade's."""
        if not self.args.outcomes or self.sandbox is None or self.sandbox.store is None or self.replay_problem:
            return
        try:
            self.sandbox.store.save(self.args.outcomes)
        except Exception as exc:
            print(f"outcomes: could not write {self.args.outcomes}: {type(exc).__name__}: {exc}",
                  file=sys.stderr)


def read_metadata(args):
    """The SubmissionMetadata of --submission-metadata, read once per grade (no
    file given, or Gradescope's file absent in this run: no history; a file
    that cannot be read is said on the console, never fails the grade)."""
    path = getattr(args, "submission_metadata", None)
    if path is not None and not Path(path).exists():
        return submission_metadata.SubmissionMetadata()
    metadata = submission_metadata.load(path)
    if metadata.problem:
        print(f"submission metadata: {metadata.problem}", file=sys.stderr)
    return metadata


def save_page(results_path, results):
    """NAME.html next to NAME.json: the results as Gradescope shows them."""
    path = Path(results_path).with_suffix(".html")
    path.write_text(page(results, title=f"Autograder results: {Path(results_path).name}"), encoding="utf-8")


def make_sandbox(args, submission, deadline, hidden):
    """The Ledger every call goes through: over a Sandbox that runs the
    submission, or over the outcomes stored for it (--replay)."""
    if args.replay:
        store = outcomes.Store.load(args.replay)
        outcomes.check_submission(store, submission.files)
        return outcomes.Ledger(outcomes.Replay(store, args.call_timeout, args.slowness or 1.0))
    slowness = args.slowness
    if slowness is None:
        slowness, seconds = speed.slowness()
        print(f"machine speed: the calibration workload took {seconds:.2f} s "
              f"({speed.REFERENCE_SECONDS:g} s on the reference machine): time limits "
              f"x{slowness:.2f}", file=sys.stderr)
    sandbox = Sandbox(python=args.worker_python, call_timeout=args.call_timeout, deadline=deadline,
                      user=None if args.worker_user == "none" else args.worker_user, hidden=hidden,
                      slowness=slowness)
    for warning in sandbox.warnings:
        print(f"sandbox: {warning}", file=sys.stderr)
    store = outcomes.Store(submission_digests(submission.files)) if args.outcomes else None
    return outcomes.Ledger(sandbox, store)


def run(args):
    grading = Grading(args)
    status = grading.run()
    results = grading.results_json(pictures=False)
    print("\n".join(start_lines(results, grading.rubric.entries if grading.rubric else [])), end="")
    if results["output"]:
        print(results["output"] + "\n")
    print(format_table(results))
    submission = grading.submission
    brief = {submission.missing_message(name): f"{name} {'not graded' if name in submission.problems else 'not found'}"
                                                f" (see SUBMISSION FILES at the top)"
             for name in EXPECTED_FILES if name not in submission.files} if submission else {}
    print("\n" + format_failures(results, grading.results_path, brief=brief))
    for name, grader_cpu, worker_cpu, wall in grading.timings:
        print(f"[{name}] {grader_cpu + worker_cpu:.1f} CPU-s (grader {grader_cpu:.1f}, "
              f"workers {worker_cpu:.1f}), {wall:.1f} s wall", file=sys.stderr)
    print(f"\nresults written to {grading.results_path}")
    return status
