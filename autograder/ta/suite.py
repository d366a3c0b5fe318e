"""TA checks: unittest modules ``autograder/ta_checks/test_*.py`` written with
gradescope-utils' decorators (@weight, @number, @visibility, @tags,
@partial_credit, @leaderboard, @hide_errors), run by the grader with
gradescope-utils' JSONTestRunner and merged into results.json.

A check belongs to the CNN part when one of its @tags is a model class
(ConvNet, FCNet), else to the layers part, and runs with that part. Every
check must be declared fully (TACheck.problem says what is missing): a
@number not used by the rubric or another check, a @weight (or
@partial_credit), @tags; a @leaderboard check sets a value and has no
weight. A misdeclared check scores 0 with a message saying so, and `make
handout`, `make autograder-zip` and the test suite refuse it.

What gradescope-utils' runner leaves out is filled in here (TAResult): an
error in setUpClass, a skipped test and a failed subTest each give the test
an entry with 0 points, and an exception that is not the student's (a bug
in the check) says so instead of blaming the submission. A check that fails
or crashes costs its own points only.
"""
import importlib.util
import io
import sys
import time
import traceback
import unittest
from dataclasses import dataclass, field
from pathlib import Path

from autograder.results import VISIBILITIES
from autograder.rubric import NUMBER
from autograder.ta.student import StudentCallError, student

from autograder.layout import TA_CHECKS_DIR
PATTERN = "test_*.py"
MODEL_TAGS = ("ConvNet", "FCNet")
CHECK_BROKEN = ("This check of the course staff could not run ({error}). This is not a problem with "
                "your submission; please tell the course staff.")


@dataclass
class TACheck:
    file: str                     # e.g. "test_conv_extra.py"
    test: object                  # the unittest.TestCase
    number: str = None
    weight: float = None
    visibility: str = "visible"
    tags: tuple = ()
    leaderboard: str = None
    problem: str = None           # why it is misdeclared, or None
    number_taken: bool = False    # its @number is the rubric's or another check's

    @property
    def id(self):
        return f"{self.file}: {type(self.test).__name__}.{self.test._testMethodName}"

    @property
    def name(self):
        """The docstring's first line (as gradescope-utils names it), else Class.method."""
        return self.test.shortDescription() or f"{type(self.test).__name__}.{self.test._testMethodName}"

    @property
    def part(self):
        return "cnn" if set(self.tags) & set(MODEL_TAGS) else "layers"

    @property
    def points(self):
        return 0.0 if self.problem or self.leaderboard else float(self.weight)


@dataclass
class TAModule:
    path: Path
    checks: list = field(default_factory=list)
    error: str = None             # it could not be imported

    @property
    def public(self):
        """Whether it ships to students: it loads and every check is visible."""
        return self.error is None and all(c.visibility == "visible" for c in self.checks)


def discover(folder=TA_CHECKS_DIR, reserved=()):
    """The TA modules of folder, each imported (in this trusted process) and
    its checks declared-checked; reserved: test numbers the rubric uses (the
    grader's own 0-point tests, written answers and integrity report, keep
    their numbers too)."""
    from autograder.answers import TEST_NUMBER as ANSWERS_NUMBER
    from autograder.parts.cnn.review import TEST_NUMBER as INTEGRITY_NUMBER

    folder = Path(folder)
    modules, seen = [], set(reserved) | {ANSWERS_NUMBER, INTEGRITY_NUMBER}
    for path in sorted(folder.glob(PATTERN)):
        module = TAModule(path)
        modules.append(module)
        try:
            loaded = _import(path)
        except BaseException as exc:      # SystemExit too: one bad file costs only its own checks
            module.error = f"{path.name} could not be imported: {type(exc).__name__}: {exc}"
            continue
        for test in _tests(unittest.defaultTestLoader.loadTestsFromModule(loaded)):
            check = _declared(path.name, test)
            if check.problem is None and not check.leaderboard:
                if check.number in seen:
                    check.number_taken = True
                    check.problem = (f"{check.id}: @number({check.number!r}) is already used by the "
                                     f"rubric or another TA check")
                seen.add(check.number)
            module.checks.append(check)
    return modules


def _import(path):
    name = f"autograder.ta_checks.{path.stem}"
    if path.parent.resolve() != TA_CHECKS_DIR:
        name = f"ta_checks_{abs(hash(str(path.parent.resolve())))}.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _tests(item)
        else:
            yield item


def _declared(file, test):
    """The TACheck of one test, from gradescope-utils' decorator attributes."""
    method = getattr(test, test._testMethodName)
    check = TACheck(file, test, number=getattr(method, "__number__", None),
                    weight=getattr(method, "__weight__", None),
                    visibility=getattr(method, "__visibility__", None) or "visible",
                    tags=tuple(getattr(method, "__tags__", None) or ()),
                    leaderboard=getattr(method, "__leaderboard_column__", None))
    problems = []
    if not check.tags or not all(isinstance(tag, str) and tag for tag in check.tags):
        problems.append("@tags naming the student functions or model classes it exercises")
    if check.visibility not in VISIBILITIES:
        problems.append(f"@visibility one of {', '.join(VISIBILITIES)} (not {check.visibility!r})")
    if check.leaderboard:
        if check.weight is not None:
            problems.append("no @weight (gradescope-utils gives a @leaderboard check no points)")
    else:
        if not isinstance(check.number, str) or not NUMBER.fullmatch(check.number):
            problems.append(f"@number like \"8.1\" (found {check.number!r})")
        weight = check.weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            problems.append(f"@weight (or @partial_credit) with a number of points >= 0 (found {weight!r})")
    if problems:
        check.problem = f"{check.id} needs " + "; ".join(problems)
    return check


def problems(modules):
    """Every import error and misdeclared check, one line each (for the build commands)."""
    found = [module.error for module in modules if module.error]
    found += [check.problem for module in modules for check in module.checks if check.problem]
    return found


def points_by_part(folder=TA_CHECKS_DIR):
    """{part: points of the well-declared TA checks of folder}."""
    totals = {}
    for module in discover(folder):
        for check in module.checks:
            totals[check.part] = totals.get(check.part, 0.0) + check.points
    return totals


def table_rows(folder=TA_CHECKS_DIR):
    """{part: rows for the students' rubric table}: each visible check as
    {number, name, tags, points}, and the other checks of a part summed into
    one row (they are graded on Gradescope only)."""
    rows, unseen = {}, {}
    for module in discover(folder):
        for check in module.checks:
            if check.problem or check.leaderboard:
                continue
            if check.visibility == "visible":
                rows.setdefault(check.part, []).append(
                    {"number": check.number, "name": check.name, "tags": list(check.tags), "points": check.points})
            else:
                unseen[check.part] = unseen.get(check.part, 0.0) + check.points
    for part, points in unseen.items():
        rows.setdefault(part, []).append({"number": "", "name": "Further checks of the course staff "
                                          "(graded on Gradescope only)", "tags": [], "points": points})
    return rows


def build_problems(folder=TA_CHECKS_DIR, reserved=None):
    """What stops `make handout` and `make autograder-zip`: TA modules that do
    not import, misdeclared checks (numbers checked against the rubric's),
    files that mix visible checks with others."""
    if reserved is None:
        from autograder.rubric import load_rubric
        reserved = [entry.number for entry in load_rubric()]
    found = problems(discover(folder, reserved))
    return found + unshipped(folder)[1]


def unshipped(folder=TA_CHECKS_DIR):
    """(paths relative to the grader folder of TA modules that must not reach
    students, problems that stop a build): a module ships only when all its
    checks are visible, and one that mixes visible and hidden checks is an error."""
    excluded, found = [], []
    for module in discover(folder):
        if module.public:
            continue
        excluded.append(f"{Path(folder).name}/{module.path.name}")
        visible = [c for c in module.checks if c.visibility == "visible"]
        if visible and module.error is None:
            found.append(f"{module.path.name} mixes visible checks ({visible[0].id}) with others: a file "
                         f"ships to students only when all its checks are visible, so put the others in "
                         f"a file of their own")
    return excluded, found


# -- running ------------------------------------------------------------------------------------

def _runner_classes():
    """gradescope-utils' JSONTestRunner, with TAResult filling in what it leaves out."""
    from gradescope_utils.autograder_utils.json_test_runner import JSONTestResult, JSONTestRunner

    class TAResult(JSONTestResult):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.recorded = set()             # ids of the tests with an entry
            self.subtest_errors = {}          # test id -> first failing subTest's exc_info
            self.fixture_error = None         # text of an error in setUpClass/setUpModule

        def processResult(self, test, err=None):
            self.recorded.add(test.id())
            if err is not None:
                err = (err[0], Exception(_failure_text(test.id(), err)), err[2])
            super().processResult(test, err)

        def addError(self, test, err):
            if not isinstance(test, unittest.TestCase):     # setUpClass/setUpModule failed
                unittest.TestResult.addError(self, test, err)
                self.fixture_error = _failure_text(test.description, err, name_it=True)
                return
            super().addError(test, err)

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self.processResult(test, (unittest.SkipTest, unittest.SkipTest(f"not run: skipped ({reason})"),
                                      None))

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                self.subtest_errors.setdefault(test.id(), err)

        def stopTest(self, test):
            if test.id() in self.subtest_errors and test.id() not in self.recorded:
                self.processResult(test, self.subtest_errors[test.id()])
            super().stopTest(test)

    class TARunner(JSONTestRunner):
        resultclass = TAResult

        def _makeResult(self):
            self.result = super()._makeResult()
            return self.result

    return TARunner


def run(modules, part, ctx, deadline=None):
    """Run the TA checks of `part` on ctx's submission, adding their tests and
    leaderboard entries to ctx.results. Returns notes for the console."""
    checks = [(module, check) for module in modules for check in module.checks if check.part == part]
    if not checks:
        return []
    runner_class = _runner_classes()
    results, notes, runnable = ctx.results, [], []
    for _, check in checks:
        if check.problem:
            notes.append(f"TA check misdeclared: {check.problem}")
            numbered = check.number and NUMBER.fullmatch(str(check.number)) and not check.number_taken
            if numbered and isinstance(check.weight, (int, float)) and not isinstance(check.weight, bool):
                _add(results, check, 0, f"This check of the course staff is misdeclared ({check.problem}); "
                                        "it scores 0 until they fix it. This is not a problem with "
                                        "your submission.")
        else:
            runnable.append(check)
    groups = {}
    for check in runnable:            # one run per test class, so that its fixtures run once
        groups.setdefault((check.file, type(check.test)), []).append(check)
    with student.bound(ctx):
        for group in groups.values():
            if deadline is not None and time.monotonic() >= deadline:
                results.add_not_run([check for check in group if not check.leaderboard])
                continue
            found, board, error = _run_group(runner_class, group)
            for item in board:
                results.add_leaderboard(**item)
            for check in group:
                if check.leaderboard:
                    continue
                entry = found.get(check.number)
                if entry is None:
                    _add(results, check, 0, error or CHECK_BROKEN.format(
                        error="gradescope-utils recorded no result for it"))
                else:
                    score = min(float(entry.get("score", 0.0)), float(check.weight))
                    _add(results, check, max(0.0, score), entry.get("output", ""))
    return notes


def _failure_text(what, err, name_it=False):
    """The feedback of a check that failed with exc_info err: the assertion's
    or the student call's message; an exception of the check's own code is
    the course staff's bug (its traceback goes to the console, not to the
    student). name_it: say `what` failed (a fixture such as setUpClass)."""
    kind, exc = err[0], err[1]
    prefix = f"{what.split(' ')[0]} failed: " if name_it else ""
    if issubclass(kind, (AssertionError, StudentCallError, unittest.SkipTest)):
        return prefix + str(exc)
    print(f"TA check {what} crashed:\n" + "".join(traceback.format_exception(*err)), file=sys.__stderr__)
    return CHECK_BROKEN.format(error=f"{prefix}{kind.__name__}: {exc}")


def _run_group(runner_class, group):
    """({number: gradescope-utils entry}, leaderboard entries, fixture error or None)."""
    runner = runner_class(stream=io.StringIO(), buffer=True)
    try:
        runner.run(unittest.TestSuite(check.test for check in group))
    except Exception as exc:        # the runner itself failed: these checks have no result
        traceback.print_exc()
        return {}, [], f"{type(exc).__name__}: {exc}"
    entries = {entry.get("number"): entry for entry in runner.json_data["tests"]}
    board = [{"name": str(item["name"]), "value": _plain(item["value"]), "order": item["order"] or "desc"}
             for item in runner.json_data["leaderboard"] if _plain(item.get("value")) is not None]
    return entries, board, runner.result.fixture_error


def _plain(value):
    """A leaderboard value as JSON allows it (numbers and strings), else None."""
    import math

    try:
        if isinstance(value, str):
            return value
        number = float(value)
        return number if math.isfinite(number) else None
    except (TypeError, ValueError):
        return None


def _add(results, check, score, output):
    """Its results.json test (a misdeclared check's visibility and tags only where they are valid)."""
    visibility = check.visibility if check.visibility in VISIBILITIES else "visible"
    tags = [tag for tag in check.tags if isinstance(tag, str)]
    results.add_test(check.number, check.name, score, max(0.0, float(check.weight)), output, visibility, tags)
