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
from pathlib import Path

from autograder import outcomes, speed, upload_notes
from autograder.ta import suite as ta_suite
from autograder.answers import answers_test, uploaded_notebooks
from autograder.cases import CASES_DIR
from autograder.layout import STUDENT_CODE
from autograder.parts import PARTS, BudgetExceeded, GradingContext, load_part
from autograder.results import format_failures, format_table, make_results, make_test, write_results
from autograder.rubric import RUBRIC_PATH, check_ids_known, load_rubric
from autograder.sandbox import AUTO, CALL_TIMEOUT, Sandbox
from autograder.start_here import start_lines
from autograder.submission import EXPECTED_FILES, find_submission, submission_digests

# Gradescope stops a run after 10 minutes (and then scores it 0); grading stops
# starting calls after the budget, and a watchdog ends a part stuck in grader
# code a little later, so results.json is always ours.
TIME_BUDGET = 480.0
WATCHDOG_GRACE = 45
NOT_RUN = "not run: the grading time budget of {budget:g} s ran out before this check could run"

INTERNAL_ERROR = ("The autograder itself failed while grading {what}. This is not a problem with "
                  "your submission; please tell the course staff. ({error})")


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


def select_entries(entries, only=None):
    """The rubric entries to grade: all, or those whose check is in `only`
    (check and pack grade a few checks through this same path)."""
    return entries if only is None else [entry for entry in entries if entry.check in only]

def _watchdog(signum, frame):
    raise BudgetExceeded("the grading time budget ran out")


class Grading:
    """One grading run: collects tests part by part and always leaves a results.json."""

    def __init__(self, args):
        self.args = args
        self.results_path = Path(args.results)
        self.started = time.monotonic()
        self.tests = []
        self.notes = []
        self.submission = None
        self.leaderboard = []
        self.extra_tests = []      # 0-point tests the parts add (e.g. a hidden integrity report)
        self.failed = False
        self.timings = []          # (part, grader CPU-s, worker CPU-s, wall s) for the console
        self.ta_modules = []       # ta_suite.TAModule of the TA checks
        self.extra_data = {}       # results.json's extra_data (instructors only)
        self.sandbox = None        # outcomes.Ledger over the Sandbox (or a Replay)
        self.replay_problem = None

    def internal_error(self, what, exc, entries=()):
        """Record a failure of the autograder: a zero test per affected rubric
        entry (or one error test), the traceback on the console only."""
        self.failed = True
        traceback.print_exc()
        message = INTERNAL_ERROR.format(what=what, error=f"{type(exc).__name__}: {exc}")
        if entries:
            for entry in entries:
                self.tests.append(make_test(entry.number, entry.name, 0, entry.points, message,
                                            entry.visibility, entry.tags))
        else:
            self.tests.append(make_test("0", "Autograder error", 0, 0, message))

    def results(self):
        extra = dict(self.extra_data)
        if self.sandbox is not None and self.sandbox.limits:
            extra["limits"] = list(self.sandbox.limits)
        return make_results(sorted(self.tests + self.extra_tests, key=lambda t: [int(n) for n in t["number"].split(".")]),
                            output="\n".join(self.notes), leaderboard=self.leaderboard,
                            execution_time=time.monotonic() - self.started, extra_data=extra)

    def save(self):
        try:
            write_results(self.results_path, self.results())
        except Exception as exc:
            # The last resort must still be a valid file: an error and no score.
            self.failed = True
            traceback.print_exc()
            fallback = make_results([make_test("0", "Autograder error", 0, 0, INTERNAL_ERROR.format(
                what="the results", error=f"{type(exc).__name__}: {exc}"))])
            write_results(self.results_path, fallback)

    def not_run(self, entries):
        message = NOT_RUN.format(budget=self.args.time_budget)
        if entries and self.sandbox is not None:
            self.sandbox.limits.append({"limit": "grading time budget", "job": "grader",
                                        "message": f"{len(entries)} checks not run"})
        for entry in entries:
            self.tests.append(make_test(entry.number, entry.name, 0, entry.points, message,
                                        entry.visibility, entry.tags))

    def grade_part(self, name, entries, ctx):
        module = load_part(name)
        check_ids_known(entries, name, module.CHECKS)
        cpu, workers, wall = time.process_time(), ctx.sandbox.total_cpu_seconds, time.monotonic()
        try:
            results = module.grade(ctx, [entry.check for entry in entries])
        except BudgetExceeded:
            self.not_run(entries)
            return
        except Exception as exc:
            self.internal_error(f"the {name} part", exc, entries)
            return
        finally:
            self.timings.append((name, time.process_time() - cpu,
                                 ctx.sandbox.total_cpu_seconds - workers, time.monotonic() - wall))
        for entry in entries:
            result = results.get(entry.check)
            if result is None:
                self.internal_error(f"check {entry.check}", LookupError("no result"), [entry])
                continue
            output = "\n".join([result.summary] + list(result.details))
            self.tests.append(make_test(entry.number, entry.name, entry.points * result.fraction,
                                        entry.points, output, entry.visibility, entry.tags))

    def grade_ta_checks(self, name, ctx, deadline):
        """The TA checks of part `name` (autograder/ta/suite.py): each costs
        only its own points, whatever it does."""
        checks = [c for m in self.ta_modules for c in m.checks if c.part == name and not c.leaderboard]
        if not checks:
            return
        try:
            tests, leaderboard, notes = ta_suite.run(self.ta_modules, name, ctx, deadline)
        except BudgetExceeded:
            done = {t["number"] for t in self.tests}
            self.not_run([c for c in checks if c.number not in done])
            return
        except Exception as exc:
            self.internal_error(f"the TA checks of the {name} part", exc,
                                [c for c in checks if not c.problem])
            return
        self.tests.extend(tests)
        self.leaderboard.extend(leaderboard)
        for note in notes:
            print(note, file=sys.stderr)

    def discover_ta_checks(self, entries):
        self.ta_modules = ta_suite.discover(self.args.ta_checks, reserved=[e.number for e in entries])
        for module in self.ta_modules:
            if module.error:
                self.failed = True
                print(f"TA checks: {module.error}", file=sys.stderr)
                self.tests.append(make_test("0", f"Autograder error: TA checks {module.path.name}", 0, 0,
                                            INTERNAL_ERROR.format(what="its own checks", error=module.error)))

    def run(self):
        args = self.args
        previous_handler = None
        try:
            # Before any work: the plots go next to results.json, and a missing
            # folder must not surface only after minutes of grading.
            self.results_path.parent.mkdir(parents=True, exist_ok=True)
            entries = select_entries(load_rubric(args.rubric), getattr(args, "only_checks", None))
            self.discover_ta_checks(entries)
            submission = self.submission = find_submission(args.submission_dir)
            self.notes.extend(upload_notes.upload_notes(args, submission))
            if args.part != "layers" and uploaded_notebooks(submission):
                answers, self.extra_data["written_answers"] = answers_test(submission)
                self.tests.append(answers)
            deadline = self.started + args.time_budget
            user = None if args.worker_user == "none" else args.worker_user
            data_dir = find_data_dir(args.data_dir, submission)
            # Where workers get a mount namespace, these are hidden from them
            # too (the grader's own tree always is): test labels, hidden cases
            # kept elsewhere, the results.
            hidden = [Path(args.cases_dir), self.results_path.resolve().parent] + ([data_dir] if data_dir else [])
            sandbox = self.sandbox = self.make_sandbox(submission, deadline, user, hidden)
            ctx = GradingContext(submission=submission, sandbox=sandbox,
                                 cases_dir=Path(args.cases_dir),
                                 data_dir=data_dir,
                                 output_dir=self.results_path.resolve().parent,
                                 file_prefix="" if self.results_path.name == "results.json"
                                 else f"{self.results_path.stem}_",
                                 rubric_path=Path(args.rubric),
                                 leaderboard=self.leaderboard, notes=self.notes,
                                 extra_data=self.extra_data, extra_tests=self.extra_tests,
                                 staff_console=getattr(args, "staff_console", False))
            parts = list(PARTS) if args.part == "all" else [args.part]
            if threading.current_thread() is threading.main_thread():
                previous_handler = signal.signal(signal.SIGALRM, _watchdog)
                signal.alarm(int(args.time_budget) + WATCHDOG_GRACE)
            for name in parts:
                self.grade_whole_part(name, [e for e in entries if e.part == name], ctx, deadline)
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

    def grade_whole_part(self, name, part_entries, ctx, deadline):
        """The rubric's checks of part `name`, then its TA checks; saved at once."""
        try:
            if time.monotonic() >= deadline:
                self.not_run(part_entries)
            else:
                self.grade_part(name, part_entries, ctx)
        except BudgetExceeded:
            self.not_run([e for e in part_entries if e.number not in {t["number"] for t in self.tests}])
        except Exception as exc:
            self.internal_error(f"the {name} part", exc, part_entries)
        self.grade_ta_checks(name, ctx, deadline)
        self.save()   # what is scored so far survives a later crash or timeout

    def make_sandbox(self, submission, deadline, user, hidden):
        """The Ledger every call goes through: over a Sandbox that runs the
        submission, or over the outcomes stored for it (--replay)."""
        args = self.args
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
        sandbox = Sandbox(python=args.worker_python, call_timeout=args.call_timeout,
                          deadline=deadline, user=user, hidden=hidden, slowness=slowness)
        for warning in sandbox.warnings:
            print(f"sandbox: {warning}", file=sys.stderr)
        store = outcomes.Store(submission_digests(submission.files)) if args.outcomes else None
        return outcomes.Ledger(sandbox, store)

    def save_outcomes(self):
        """Write the stored outcomes (--outcomes); a failure here is the staff's, never the grade's."""
        if not self.args.outcomes or self.sandbox is None or self.sandbox.store is None or self.replay_problem:
            return
        try:
            self.sandbox.store.save(self.args.outcomes)
        except Exception as exc:
            print(f"outcomes: could not write {self.args.outcomes}: {type(exc).__name__}: {exc}",
                  file=sys.stderr)


def run(args):
    grading = Grading(args)
    status = grading.run()
    results = grading.results()
    print("\n".join(start_lines(results, args.rubric)), end="")
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
