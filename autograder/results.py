"""Gradescope results.json: collecting it (Results, the one accumulator that
grade.py, the parts, the integrity review, the written answers and the TA
checks add to), validating, writing (atomically) and printing it on the console: a score table (one clipped line of feedback per
test), then the full feedback of every test that lost points
(format_failures), which is the text the student reads on Gradescope.

For Gradescope, tests that have pictures (autograder/pictures) and the top
of the output (what changed since the previous submission, what to fix
first) become html, within MAX_RESULTS_BYTES; the console gets all text.

The structure is the one gradescope-utils' JSONTestRunner writes, with every
test carrying name, number, score, max_score, status, output, visibility and
tags. SCHEMA is a JSON Schema (draft 7) of what we write; validate() checks
it without third-party packages, so the grader runs wherever it is copied.
"""
import json
import math
import os
import re
import tempfile
from pathlib import Path

from autograder.pictures import html, picture_bytes

MAX_OUTPUT = 100_000          # Gradescope cuts longer outputs
MAX_RESULTS_BYTES = 1_000_000  # the most a results.json may hold
# What the images of one results.json may add (base64); the text stays far below the rest.
MAX_PICTURE_BYTES = 700_000
MARKUP_ROOM = 50_000           # for the html around the images and the text it escapes
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
# A check the grade's time budget left no time for (rubric and TA checks alike).
NOT_RUN = "not run: the grading time budget of {budget:g} s ran out before this check could run"
INTERNAL_ERROR = ("The autograder itself failed while grading {what}. This is not a problem with "
                  "your submission; please tell the course staff. ({error})")
FORMATS = ["text", "html", "simple_format", "md", "ansi"]

SCHEMA = {
    "type": "object",
    "required": ["tests"],
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number", "minimum": 0},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string", "maxLength": MAX_OUTPUT},
        "output_format": {"enum": FORMATS},
        "test_output_format": {"enum": FORMATS},
        "test_name_format": {"enum": FORMATS},
        "visibility": {"enum": list(VISIBILITIES)},
        "stdout_visibility": {"enum": list(VISIBILITIES)},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "number", "score", "max_score", "status", "output",
                         "visibility", "tags"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "name_format": {"enum": FORMATS},
                "number": {"type": "string", "pattern": r"^\d+(\.\d+)*$"},
                "score": {"type": "number", "minimum": 0},
                "max_score": {"type": "number", "minimum": 0},
                "status": {"enum": ["passed", "failed"]},
                "output": {"type": "string", "maxLength": MAX_OUTPUT},
                "output_format": {"enum": FORMATS},
                "visibility": {"enum": list(VISIBILITIES)},
                "tags": {"type": "array", "items": {"type": "string"}},
                "extra_data": {"type": "object"},
            },
        }},
        "leaderboard": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "value"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "value": {"type": ["number", "string"]},
                "order": {"enum": ["asc", "desc"]},
            },
        }},
    },
}


class ResultsError(ValueError):
    pass


def validate(results, schema=SCHEMA, where="results"):
    """Raise ResultsError naming the first place where results breaks SCHEMA
    (the subset of JSON Schema used above), a NaN/infinite number or a
    score above max_score."""
    _validate(results, schema, where)
    for index, test in enumerate(results["tests"]):
        if test["score"] > test["max_score"] + 1e-9:
            raise ResultsError(f"{where}.tests[{index}]: score {test['score']} > "
                               f"max_score {test['max_score']}")


def _type_ok(value, name):
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"object": dict, "array": list, "string": str}[name])


def _validate(value, schema, where):
    if isinstance(value, float) and not math.isfinite(value):
        raise ResultsError(f"{where}: {value} is not allowed in JSON")
    if "enum" in schema and value not in schema["enum"]:
        raise ResultsError(f"{where}: {value!r} is not one of {schema['enum']}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, name) for name in types):
            raise ResultsError(f"{where}: expected {' or '.join(types)}, got {type(value).__name__}")
    if "minimum" in schema and value < schema["minimum"]:
        raise ResultsError(f"{where}: {value} is below {schema['minimum']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise ResultsError(f"{where}: longer than {schema['maxLength']} characters")
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise ResultsError(f"{where}: shorter than {schema['minLength']} characters")
    if "pattern" in schema:
        if not re.search(schema["pattern"], value):
            raise ResultsError(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise ResultsError(f"{where}: missing {key!r}")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                _validate(item, properties[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                raise ResultsError(f"{where}: unexpected key {key!r}")
            elif item is None:
                raise ResultsError(f"{where}.{key}: null is not allowed")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _validate(item, schema["items"], f"{where}[{index}]")


def cut(text):
    if len(text) <= MAX_OUTPUT:
        return text
    marker = "\n... (output cut)"
    return text[:MAX_OUTPUT - len(marker)] + marker


def make_test(number, name, score, max_score, output, visibility="visible", tags=()):
    score = round(float(score), 2)
    return {"name": name, "number": number, "score": score, "max_score": float(max_score),
            "status": "passed" if score >= max_score else "failed", "output": cut(output),
            "visibility": visibility, "tags": list(tags)}


def make_results(tests, output="", leaderboard=(), execution_time=None, extra_data=None):
    results = {"score": round(sum(test["score"] for test in tests), 2),
               "output": cut(output), "visibility": "visible", "stdout_visibility": "hidden",
               "tests": tests}
    if leaderboard:
        results["leaderboard"] = list(leaderboard)
    if extra_data:
        results["extra_data"] = dict(extra_data)     # for the staff's tools, not shown to students
    if execution_time is not None:
        results["execution_time"] = round(execution_time, 2)
    return results


def _order(test):
    return [int(n) for n in test["number"].split(".")]


class Results:
    """What one grade has found so far: its tests, the lines at the top of its
    output, its leaderboard and its extra_data (instructors only). Every
    producer adds here; as_json() makes the results.json mapping."""

    def __init__(self, time_budget=None):
        self.tests = []
        self.notes = []              # results.json's "output", one line each
        self.leaderboard = []
        self.extra_data = {}
        self.time_budget = time_budget   # seconds, for the not-run message
        self.pictures = {}           # test number -> [pictures.Picture or Table] (visible tests only)
        self.changes = []            # lines: what changed since the previous submission

    def add_test(self, number, name, score, max_score, output, visibility="visible", tags=(), pictures=()):
        test = make_test(number, name, score, max_score, output, visibility, tags)
        self.tests.append(test)
        if pictures and visibility == "visible":     # a hidden test carries no picture
            self.pictures[number] = list(pictures)
        return test

    def add_check(self, entry, fraction, output, pictures=()):
        """A rubric entry (number, name, points, visibility, tags) earning
        `fraction` of its points; pictures go with it on Gradescope (html)."""
        return self.add_test(entry.number, entry.name, entry.points * fraction, entry.points, output,
                             entry.visibility, entry.tags, pictures)

    def add_not_run(self, entries):
        """0 points for each entry the time budget left no time for."""
        message = NOT_RUN.format(budget=self.time_budget)
        for entry in entries:
            self.add_check(entry, 0.0, message)

    def add_error(self, what, exc, entries=()):
        """The autograder failed while grading `what`: 0 points for each
        affected entry, or one "Autograder error" test when none is."""
        message = internal_error(what, exc)
        for entry in entries:
            self.add_check(entry, 0.0, message)
        if not entries:
            self.add_test("0", "Autograder error", 0, 0, message)

    def add_extra(self, number, name, output, visibility="visible", tags=(), passed=None):
        """A 0-point test (written answers, the integrity report); passed=False marks it failed."""
        test = self.add_test(number, name, 0, 0, output, visibility, tags)
        if passed is not None:
            test["status"] = "passed" if passed else "failed"
        return test

    def note(self, line):
        self.notes.append(line)

    def add_leaderboard(self, name, value, order=None):
        self.leaderboard.append({"name": name, "value": value, **({"order": order} if order else {})})

    def numbers(self):
        """The test numbers recorded so far."""
        return {test["number"] for test in self.tests}

    def as_json(self, execution_time=None, extra_data=None, pictures=True):
        """The results.json mapping: tests by number, extra_data updated with
        `extra_data`, what changed since the previous submission at the top.
        pictures=True (Gradescope's file): tests with pictures and the top of
        the output in html; False: all text (the console)."""
        tests = sorted(self.tests, key=_order)
        notes = self.changes + self.notes
        results = make_results(tests, output="\n".join(notes), leaderboard=self.leaderboard,
                               execution_time=execution_time,
                               extra_data={**self.extra_data, **(extra_data or {})})
        return with_pictures(results, self.pictures, self.changes, self.notes) if pictures else results


def fix_first(tests):
    """(number, name, first line) of the first visible test in rubric order that lost points, or None."""
    for test in tests:
        if test["score"] < test["max_score"] and test["visibility"] == "visible":
            return test["number"], test["name"], test["output"].split("\n", 1)[0]
    return None


def with_pictures(results, pictures, changes, notes):
    """results with Gradescope html where it shows more than text: the tests
    that have pictures (within MAX_PICTURE_BYTES for the whole file, in
    rubric order) and the top of the output (what changed, what to fix first)."""
    # The images get what the text leaves of the file, less room for the markup around them.
    budget = min(MAX_PICTURE_BYTES, MAX_RESULTS_BYTES - len(json.dumps(results, indent=2)) - MARKUP_ROOM)
    tests = []
    for test in results["tests"]:
        shown = pictures.get(test["number"], ())
        fitting = []
        for item in shown:
            if picture_bytes([item]) <= budget:
                fitting.append(item)
                budget -= picture_bytes([item])
        page = html.test_output(test["output"], fitting, MAX_OUTPUT, len(shown) - len(fitting)) if shown else None
        tests.append(dict(test, output=page, output_format="html") if page else test)
    top = html.top_output(notes, changes, fix_first(results["tests"]))
    fits = len(top) <= MAX_OUTPUT
    shown = dict(results, tests=tests, output=top if fits else results["output"],
                 output_format="html" if fits else "text")
    # The images are budgeted; should the text around them still pass the limit, text only.
    return shown if len(json.dumps(shown, indent=2)) <= MAX_RESULTS_BYTES else results


def internal_error(what, error):
    """The message of a test the autograder's own failure (an exception, or its text) cost."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return INTERNAL_ERROR.format(what=what, error=text)


def write_results(path, results):
    """Validate, then replace path atomically (a crash never leaves half a file)."""
    validate(results)
    text = json.dumps(results, indent=2, allow_nan=False) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def format_table(results, width=120, max_title=48):
    """The score table printed after grading: test, points, first feedback line
    (clipped, ending in "..."; format_failures prints it whole), total."""
    rows = []
    for test in results["tests"]:
        title = f"{test['number']} {test['name']}"
        points = f"{test['score']:6.2f} / {test['max_score']:g}"
        first_line = test["output"].split("\n", 1)[0]
        rows.append((title, points, first_line))
    title_width = min(max_title, max([len(r[0]) for r in rows] + [len("Test")]))
    points_width = max([len(r[1]) for r in rows] + [len("Points")])
    feedback_width = max(20, width - title_width - points_width - 4)

    def clip(text, limit):
        return text if len(text) <= limit else text[:limit - 3] + "..."

    def line(title, points, feedback):
        return (f"{clip(title, title_width):<{title_width}}  {points:>{points_width}}  "
                f"{clip(feedback, feedback_width)}").rstrip()

    total = sum(t["max_score"] for t in results["tests"])
    lines = [line("Test", "Points", "Feedback"), "-" * min(width, title_width + points_width + 24)]
    lines += [line(*row) for row in rows]
    lines.append("-" * min(width, title_width + points_width + 24))
    lines.append(line("Total", f"{results['score']:6.2f} / {total:g}", ""))
    return "\n".join(lines)


def format_failures(results, results_path="results.json", max_lines=25, brief=()):
    """The full feedback of each test that lost points, and where the complete
    text of every test is (the table shows only the start of the first line).
    At most max_lines lines per test; details (the lines after the first) that
    repeat an earlier test's are referred to instead of repeated; a test whose
    first line contains one of the keys of `brief` (a missing file's message,
    explained once at the top) shows that line only, with the key replaced by
    its value."""
    failing = [test for test in results["tests"] if test["score"] < test["max_score"]]
    pointer = (f"The full feedback of every test is in {results_path} (the \"output\" of each "
               f"test; on Gradescope, under each test).")
    if not failing:
        return pointer
    lines = [f"Feedback of the {len(failing)} test{'s' if len(failing) > 1 else ''} that lost points:"]
    details_of = {}
    for test in failing:
        lines.append("")
        lines.append(f"{test['number']} {test['name']}  ({test['score']:g} / {test['max_score']:g})")
        text = test["output"].rstrip("\n").split("\n") if test["output"] else ["(no feedback)"]
        for message, short in dict(brief).items():
            if message and message in text[0]:
                text = [text[0].replace(message, short)]
                break
        first, details = text[0], text[1:]
        lines.append("    " + first)
        key = "\n".join(details)
        if details and key in details_of:
            lines.append(f"    (details as in test {details_of[key]} above)")
            continue
        if details:
            details_of.setdefault(key, test["number"])
        lines += ["    " + line for line in details[:max_lines - 1]]
        if len(details) > max_lines - 1:
            lines.append(f"    ... {len(details) - max_lines + 1} more lines in {results_path}")
    lines += ["", pointer]
    return "\n".join(lines)
