"""``python -m autograder handout``: the student handout, generated from solutions/
(build-only: this module is not shipped to students).

Writes ``assignments/`` (committed) and ``dist/handout.zip`` (the same files
under one folder, plus the public grader and a requirements.txt). With
``--check`` it writes nothing and verifies instead: assignments/ is in sync
with solutions/, no solution line leaks, every stub raises
NotImplementedError, assignments/cnn imports, and the handout notebooks run
against the reference code.

What happens to each file is decided by the explicit lists below; a file in
solutions/ that none of them names stops the build, so that nothing new ships
(or silently disappears) without a decision.
"""
import fnmatch
import io
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from autograder.authoring import markers, shipping
from autograder.provided import PROVIDED_FILES

from autograder.layout import (ASSIGNMENT, ASSIGNMENTS_DIR, DIST_DIR, PACKAGE as GRADER_DIR, REPO,
                               SOLUTIONS_DIR, STUDENT_CODE)

# solutions/ -> assignments/
README = "README.md"                           # solutions/README.md, rubric table filled in
STUBBED = STUDENT_CODE                          # solution regions become stubs
COPIED = ("data.py", "train.py", "gradient_check.py")   # byte for byte
NOTEBOOKS = "*.ipynb"                          # stubbed and stripped
NEVER_SHIPPED = ("*.pt", "*_curve.json", "*.png", "*.tmp", "data", "__pycache__",
                 ".ipynb_checkpoints")
# Left alone when assignments/ is regenerated (git-ignored local data).
KEPT_ON_REBUILD = (f"{ASSIGNMENT}/data",)

# autograder/ -> the zip: what ships to students, decided by folder (autograder/authoring/shipping.py).

# Solution lines allowed in the handout all the same, each with the reason; the
# leak check fails on any other solution line it finds there.
PUBLISHED_LINES = {
    "out = gamma * x_hat + beta": "the batch-norm formula of the docstring, quoted by a feedback "
                                  "message of autograder/parts/layers/batchnorm.py",
}

RUBRIC_FILE = "rubric.yaml"                    # in autograder/
TA_CHECKS = "ta_checks"                        # in autograder/: the visible ones ship (autograder/ta/suite.py)
RUBRIC_PLACEHOLDER = "<!-- RUBRIC TABLE -->"   # a line of solutions/README.md
RUBRIC_PARTS = {"layers": "Part 1: numpy layers (layers.py)",
                "cnn": "Part 2: PyTorch models (models.py, fcnet.pt, convnet.pt)"}

ZIP_FOLDER = "cnn-handout"
# What a student installs: the assignment's code, the notebooks, and the public grader's imports.
STUDENT_REQUIREMENTS = """\
# Install torch first (see README.md for the CPU-only wheel), then: pip install -r requirements.txt
torch==2.13.0
numpy
tqdm
matplotlib
pyyaml
jupyterlab
ipykernel
gradescope-utils==0.5.0
"""


class HandoutError(Exception):
    """The handout cannot be built; str() lists every problem found."""


@dataclass
class Handout:
    files: dict                                              # path in assignments/ -> bytes
    secrets: dict                                            # secret line -> 'file:line' it comes from
    student_functions: dict = field(default_factory=dict)    # stubbed .py file -> [function, ...]
    notebook_stubs: dict = field(default_factory=dict)       # notebook -> {stub message, ...}


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
    print(f"wrote {_display(args.assignments)}/ ({len(handout.files)} files) and "
          f"{_display(args.zip)}; leak check: none of {len(handout.secrets)} solution lines found")
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


def check_zip(handout, zip_path, grader_dir=GRADER_DIR):
    """Differences between the handout zip at zip_path and the one handout
    makes (none when no zip was built: nothing stale can be handed out)."""
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        return []
    wanted = zip_bytes(handout, grader_dir)
    if zip_path.read_bytes() == wanted:
        return []
    try:
        with zipfile.ZipFile(zip_path) as old:
            before = {name: old.read(name) for name in old.namelist()}
    except (zipfile.BadZipFile, OSError):
        before = {}
    with zipfile.ZipFile(io.BytesIO(wanted)) as new:
        after = {name: new.read(name) for name in new.namelist()}
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    more = f" (+{len(changed) - 5} more)" if len(changed) > 5 else ""
    return [f"{_display(zip_path)} is out of date: {', '.join(changed[:5]) or 'its layout'}{more} "
            f"differ; run `make handout` to rebuild it"]


def _run_check(args):
    from autograder.authoring import handout_checks

    handout = generate(args.solutions)
    if not (args.assignments / ASSIGNMENT).is_dir():
        print(f"FAIL: {_display(args.assignments / ASSIGNMENT)} does not exist; "
              "run `make handout` to generate it")
        return 1
    steps = [
        ("in sync with solutions/", lambda: check_sync(handout, args.assignments)),
        ("leak check", lambda: find_leaks(handout.secrets, _tree_texts(args.assignments))
         + find_leaks(handout.secrets, zip_texts(zip_bytes(handout)))),
        ("stubs raise NotImplementedError, modules import", lambda: handout_checks.check_stubs(
            args.assignments / ASSIGNMENT, args.solutions / ASSIGNMENT, handout.student_functions)),
        ("autograder/cases built from the current reference layers.py", _stale_cases),
        ("TA checks (autograder/ta_checks) declared fully", ta_check_problems),
        (f"{_display(args.zip)} in sync (when built)", lambda: check_zip(handout, args.zip)),
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


# ----------------------------------------------------------------------------
# Generating
# ----------------------------------------------------------------------------

def generate(solutions_dir, grader_dir=GRADER_DIR):
    """Read solutions_dir and return the Handout (nothing is written).

    Raises HandoutError naming every problem: unknown or missing files, marker
    mistakes, a bad rubric file.
    """
    solutions_dir = Path(solutions_dir)
    errors = []
    files, secrets, public = {}, {}, []
    functions, notebook_stubs = {}, {}

    def take(relative, stubbed):
        for line, where in stubbed.secrets:
            secrets.setdefault(line, where)
        public.extend(stubbed.public)
        files[relative] = stubbed.text.encode("utf-8")

    for relative, action in _plan(solutions_dir, errors):
        source = solutions_dir / relative
        name = _display(source)
        try:
            if action == "copy":
                files[relative] = source.read_bytes()
                public.append(source.read_text(encoding="utf-8"))
            elif action == "readme":
                text = _render_readme(_read_text(source), grader_dir)
                files[relative] = text.encode("utf-8")
                public.append(text)
            elif action == "stub":
                stubbed = markers.stub_source(_read_text(source), markers.Location(name, source.name))
                take(relative, stubbed)
                functions[source.name] = list(dict.fromkeys(stubbed.functions))
            else:
                stubbed = markers.stub_notebook(_read_text(source), name, source.name)
                take(relative, stubbed)
                notebook_stubs[source.name] = set(stubbed.stub_messages)
        except (markers.MarkerError, HandoutError) as exc:
            errors.append(str(exc))
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(f"{name}: cannot read it ({exc})")
    if errors:
        raise HandoutError("\n".join(errors))
    public_text = "\n".join(public)
    secrets = {line: where for line, where in secrets.items()
               if line not in PUBLISHED_LINES and not _occurs(line, public_text)}
    return Handout(files, secrets, functions, notebook_stubs)


def _read_text(path):
    # newline="" keeps '\r\n' line endings, so unmarked lines stay byte for byte.
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def _plan(solutions_dir, errors):
    """[(path relative to solutions_dir, action)], sorted; unknown or missing
    files are added to errors."""
    plan = []
    if not solutions_dir.is_dir():
        errors.append(f"{_display(solutions_dir)}: no such folder (expected the solutions/ "
                      f"folder holding {README} and {ASSIGNMENT}/)")
        return plan
    expected_top = {README: "readme", ASSIGNMENT: "folder"}
    expected_cnn = {**{name: "stub" for name in STUBBED}, **{name: "copy" for name in COPIED}}
    for folder, expected in ((solutions_dir, expected_top), (solutions_dir / ASSIGNMENT, expected_cnn)):
        if not folder.is_dir():
            continue
        for entry in sorted(os.listdir(folder)):
            relative = os.path.relpath(folder / entry, solutions_dir).replace(os.sep, "/")
            if any(fnmatch.fnmatch(entry, pattern) for pattern in NEVER_SHIPPED):
                continue
            action = expected.get(entry)
            if action is None and folder != solutions_dir and fnmatch.fnmatch(entry, NOTEBOOKS):
                action = "notebook"
            if action is None:
                errors.append(
                    f"{_display(folder / entry)}: not on the handout's lists; decide whether "
                    "students get it and add it to STUBBED, COPIED or NEVER_SHIPPED in "
                    "autograder/authoring/handout.py")
            elif action != "folder":
                plan.append((relative, action))
        for name in sorted(set(expected) - set(os.listdir(folder))):
            errors.append(f"{_display(folder / name)}: missing (autograder/authoring/handout.py "
                          "lists it as part of the handout)")
    return plan


def _render_readme(text, grader_dir):
    """The student README: RUBRIC_PLACEHOLDER replaced by the table of rubric.yaml."""
    lines = text.splitlines(keepends=True)
    if not any(line.strip() == RUBRIC_PLACEHOLDER for line in lines):
        return text
    table = render_rubric(Path(grader_dir) / RUBRIC_FILE, Path(grader_dir) / TA_CHECKS)
    return "".join(table if line.strip() == RUBRIC_PLACEHOLDER else line for line in lines)


def render_rubric(path, ta_checks=None):
    """Markdown tables (one per part, with totals) of the rubric file at path,
    with the TA checks of the folder ta_checks after the rubric's own."""
    import yaml

    where = f"{_display(path)} (read by autograder/authoring/handout.py render_rubric)"
    try:
        with open(path, encoding="utf-8") as fh:
            rubric = yaml.safe_load(fh)
    except FileNotFoundError:
        raise HandoutError(f"{where}: missing; the README's {RUBRIC_PLACEHOLDER} line "
                           "needs it") from None
    except yaml.YAMLError as exc:
        raise HandoutError(f"{where}: not valid YAML ({exc})") from None
    tests = rubric.get("tests") if isinstance(rubric, dict) else None
    if not isinstance(tests, list) or not tests:
        raise HandoutError(f"{where}: expected a mapping with a non-empty list 'tests'")
    rows = {part: [] for part in RUBRIC_PARTS}  # in the rubric file's order
    for index, test in enumerate(tests):
        fields_ok = (isinstance(test, dict) and isinstance(test.get("number"), str)
                     and isinstance(test.get("name"), str) and test.get("part") in RUBRIC_PARTS
                     and isinstance(test.get("points"), (int, float))
                     and not isinstance(test.get("points"), bool))
        if not fields_ok:
            raise HandoutError(
                f"{where}: tests[{index}] must have 'number' (a string), 'name' (a string), "
                f"'part' (one of {', '.join(RUBRIC_PARTS)}) and 'points' (a number); "
                f"found {test!r}")
        rows[test["part"]].append(test)
    names = _rendered_names(path, tests, where)
    if ta_checks is not None:
        from autograder.ta import suite as ta_suite

        for part, extra in ta_suite.table_rows(ta_checks).items():
            rows[part] += extra
            tests = tests + extra
            names.update({id(row): row["name"] for row in extra})
    out = []
    for part, title in RUBRIC_PARTS.items():
        if not rows[part]:
            continue
        total = sum(test["points"] for test in rows[part])
        out += [f"**{title}: {_points(total)} points**\n", "\n",
                "| # | Check | Functions | Points |\n", "|---|---|---|---:|\n"]
        for test in rows[part]:
            functions = ", ".join(f"`{tag}`" for tag in test.get("tags") or [])
            name = names[id(test)].replace("|", "\\|")
            out.append(f"| {test['number']} | {name} | {functions} | {_points(test['points'])} |\n")
        out.append("\n")
    grand_total = sum(test["points"] for test in tests)
    out.append(f"**Total: {_points(grand_total)} points**\n")
    return "".join(out)


def _rendered_names(path, tests, where):
    """{id(test): its name with the rubric's thresholds filled in} (autograder/rubric.py render_name)."""
    from autograder.rubric import RubricError, load_settings_of, render_name

    try:
        settings = load_settings_of(path)
        return {id(test): render_name(test["name"], settings, f"{where}: test {test['number']}")
                for test in tests}
    except RubricError as exc:
        raise HandoutError(str(exc)) from None


def _points(value):
    return f"{value:g}"


# ----------------------------------------------------------------------------
# The zip
# ----------------------------------------------------------------------------

def grader_files(grader_dir=GRADER_DIR):
    """{path relative to grader_dir: bytes} of the public grader, sorted, the
    provided code included (autograder/authoring/shipping.py decides)."""
    return shipping.package_files("students", grader_dir)


def ta_check_problems(grader_dir=GRADER_DIR):
    """What in grader_dir's TA checks stops a build (autograder/ta/suite.py build_problems)."""
    from autograder.ta import suite as ta_suite
    from autograder.rubric import RubricError, load_rubric

    folder = Path(grader_dir) / TA_CHECKS
    if not any(folder.glob(ta_suite.PATTERN)):
        return []
    try:
        reserved = [entry.number for entry in load_rubric(Path(grader_dir) / RUBRIC_FILE)]
    except RubricError as exc:
        return [str(exc)]
    return ta_suite.build_problems(folder, reserved)


def zip_bytes(handout, grader_dir=GRADER_DIR):
    """The handout zip: assignments/ files, requirements.txt and the public
    grader under ZIP_FOLDER/ (shipping.zip_bytes: fixed order, dates and modes).
    The grader trains and normalizes with its own copy of the provided code
    (autograder/provided.py), never with the student's possibly edited one."""
    members = {f"{ZIP_FOLDER}/{path}": data for path, data in handout.files.items()}
    members[f"{ZIP_FOLDER}/requirements.txt"] = STUDENT_REQUIREMENTS.encode("utf-8")
    for path, data in grader_files(grader_dir).items():
        members[f"{ZIP_FOLDER}/autograder/{path}"] = data
    for name in PROVIDED_FILES:     # the handout's own copy, byte for byte
        members[f"{ZIP_FOLDER}/autograder/{shipping.PROVIDED_FOLDER}/{name}"] = handout.files[f"{ASSIGNMENT}/{name}"]
    return shipping.zip_bytes(members)


# ----------------------------------------------------------------------------
# Writing, and the checks
# ----------------------------------------------------------------------------

def build(solutions_dir, assignments_dir, zip_path, grader_dir=GRADER_DIR):
    """Generate, leak-check, then replace assignments_dir and zip_path.

    On any problem raise HandoutError and leave both untouched.
    """
    assignments_dir, zip_path = Path(assignments_dir), Path(zip_path)
    problems = ta_check_problems(grader_dir)
    if problems:
        raise HandoutError("TA checks (autograder/ta_checks):\n  " + "\n  ".join(problems))
    handout = generate(solutions_dir, grader_dir)
    archive = zip_bytes(handout, grader_dir)
    leaks = (find_leaks(handout.secrets, {f"{_display(assignments_dir)}/{path}": text for path, text
                                          in _texts(handout.files).items()})
             + find_leaks(handout.secrets, zip_texts(archive, label=_display(zip_path))))
    if leaks:
        raise HandoutError("solution lines would leak into the handout:\n  " + "\n  ".join(leaks))

    assignments_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{assignments_dir.name}-", suffix=".tmp",
                                    dir=assignments_dir.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; it becomes assignments/
    try:
        for path, data in handout.files.items():
            (staging / path).parent.mkdir(parents=True, exist_ok=True)
            (staging / path).write_bytes(data)
        _swap_in(staging, assignments_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(zip_path.name + ".tmp")
    partial.write_bytes(archive)
    os.replace(partial, zip_path)
    return handout


def _swap_in(new_dir, target):
    """Replace folder target by new_dir, moving KEPT_ON_REBUILD entries over."""
    if not target.exists():
        os.rename(new_dir, target)
        return
    old = target.with_name(f".{target.name}-old.tmp")
    if old.exists():
        raise HandoutError(f"{_display(old)}: left by an interrupted build; move out anything "
                           f"you want to keep (such as {', '.join(KEPT_ON_REBUILD)}), delete it "
                           "and build again")
    os.rename(target, old)
    os.rename(new_dir, target)
    for kept in KEPT_ON_REBUILD:
        if (old / kept).exists():
            (target / kept).parent.mkdir(parents=True, exist_ok=True)
            os.rename(old / kept, target / kept)
    shutil.rmtree(old)


def check_sync(handout, assignments_dir):
    """Differences between the generated handout and assignments_dir, one line each."""
    on_disk = shipping.tree_files(Path(assignments_dir), KEPT_ON_REBUILD)
    problems = []
    for path in sorted(set(handout.files) | set(on_disk)):
        if path not in on_disk:
            problems.append(f"missing: {path}")
        elif path not in handout.files:
            problems.append(f"not generated from solutions/ (remove it): {path}")
        elif on_disk[path] != handout.files[path]:
            problems.append(f"differs: {path}")
    if problems:
        problems.append("run `make handout` (python -m autograder handout) to regenerate")
    return problems


def _tree_texts(folder):
    return {f"{_display(Path(folder))}/{path}": text
            for path, text in _texts(shipping.tree_files(Path(folder), KEPT_ON_REBUILD)).items()}


def zip_texts(archive, label="handout.zip"):
    """{'label:member': searchable text} of a zip given as bytes."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        files = {name: opened.read(name) for name in opened.namelist()}
    return {f"{label}:{name}": text for name, text in _texts(files).items()}


def _texts(files):
    """Searchable text of each file: a notebook's cell sources, else the decoded bytes."""
    out = {}
    for path, data in files.items():
        text = data.decode("utf-8", errors="replace")
        if path.endswith(".ipynb"):
            try:
                text = "\n".join("".join(cell.get("source", ""))
                                 for cell in json.loads(text).get("cells", []))
            except (ValueError, AttributeError):
                pass  # not a valid notebook: search its raw text
        out[path] = text
    return out


def find_leaks(secrets, texts):
    """'file: line (from where)' for every secret line occurring in texts."""
    leaks = []
    for path, text in texts.items():
        for line, origin in secrets.items():
            if _occurs(line, text):
                leaks.append(f"{path}: {line!r} (solution line from {origin})")
    return leaks


def _occurs(line, text):
    """Whether line occurs in text, not as part of a longer name."""
    pattern = re.escape(line)
    if re.match(r"\w", line):
        pattern = r"(?<!\w)" + pattern
    if re.search(r"\w$", line):
        pattern += r"(?!\w)"
    return re.search(pattern, text) is not None


def _display(path):
    """path relative to the current folder when inside it, for messages."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
