"""``python -m autograder autograder-zip [--out FILE]`` (``make autograder-zip``):
build dist/autograder.zip, the file a TA uploads to Gradescope.

Layout (Gradescope unpacks it into /autograder/source):
    setup.sh, run_autograder      from autograder/gradescope/, at the root
    autograder/...                the grader package with its case data, hidden
                                  cases included, minus the TA-only tools
    autograder/provided/          data.py and train.py, the provided code,
                                  copied from solutions/cnn (the grader's
                                  trusted copy, see autograder/provided.py)
The CIFAR-10 test set is not in the zip: setup.sh fetches the official archive
(MD5-checked) when Gradescope builds the image.

The zip is deterministic (sorted names, fixed dates and modes), and the build
fails when any solution line of solutions/ would be in it.
"""
import io
import os
import sys
import zipfile
from pathlib import Path

from autograder.provided import PROVIDED_FILES

# autograder/handout.py (the leak check) is imported where it is used: it is a
# TA-only module, absent from the copies of the grader given to students.

GRADER_DIR = Path(__file__).resolve().parent
REPO = GRADER_DIR.parent
SOLUTIONS_DIR = REPO / "solutions"
TEMPLATES_DIR = GRADER_DIR / "gradescope"
DEFAULT_ZIP = REPO / "dist" / "autograder.zip"
ROOT_SCRIPTS = ("setup.sh", "run_autograder")
# TA-only parts of autograder/ (relative paths) that Gradescope never needs.
EXCLUDED = ("at_limits.py", "bench.py", "box.py", "build_cases.py", "calibrate.py", "calibrate_accuracy.py",
            "handout.py", "handout_checks.py", "markers.py", "gradescope.py", "gradescope", "promises.py",
            "regrade.py", "class_results.py", "report.py", "provided")
JUNK_NAMES = ("__pycache__", ".ipynb_checkpoints")
JUNK_SUFFIXES = (".pyc", ".tmp")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class BuildError(Exception):
    """The zip cannot be built; the message says what is wrong."""


def add_arguments(parser):
    parser.add_argument("--out", type=Path, default=DEFAULT_ZIP,
                        help=f"where to write the zip (default: {DEFAULT_ZIP.relative_to(REPO)})")


def run(args):
    from autograder import handout

    try:
        members = build(args.out)
    except (BuildError, handout.HandoutError) as exc:
        print(f"autograder-zip: {exc}", file=sys.stderr)
        return 1
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({len(members)} files, {size / 1e6:.1f} MB); leak check passed")
    return 0


def _is_junk(name):
    return name in JUNK_NAMES or name.endswith(JUNK_SUFFIXES)


def members(grader_dir=GRADER_DIR, solutions_dir=SOLUTIONS_DIR):
    """{name in the zip: (bytes, executable)}."""
    from autograder import handout

    out = {}
    for script in ROOT_SCRIPTS:
        out[script] = ((TEMPLATES_DIR / script).read_bytes(), True)
    for folder, subfolders, names in os.walk(grader_dir):
        relative = Path(folder).relative_to(grader_dir).as_posix()
        prefix = "" if relative == "." else relative + "/"
        subfolders[:] = sorted(d for d in subfolders if prefix + d not in EXCLUDED and not _is_junk(d))
        for name in names:
            if prefix + name not in EXCLUDED and not _is_junk(name):
                out[f"autograder/{prefix}{name}"] = ((Path(folder) / name).read_bytes(), False)
    for name in PROVIDED_FILES:
        source = Path(solutions_dir) / handout.ASSIGNMENT / name
        if not source.is_file():
            raise BuildError(f"autograder/gradescope.py: members: the provided file {source} is missing")
        out[f"autograder/provided/{name}"] = (source.read_bytes(), False)
    if "autograder/cases/hidden/cases.json" not in out:
        raise BuildError("autograder/gradescope.py: members: autograder/cases/hidden/cases.json is "
                         "missing; run `make cases` first (the official grade needs the hidden cases)")
    return dict(sorted(out.items()))


def refusals(grader_dir=GRADER_DIR, solutions_dir=SOLUTIONS_DIR):
    """Why the zip must not be built now: cases not built from the reference
    layers.py (`make autograder-zip` rebuilds them first), TA checks that stop
    a build. Empty when it may."""
    from autograder import build_cases, handout

    stale = build_cases.stale_problem(Path(solutions_dir) / handout.ASSIGNMENT, Path(grader_dir) / "cases")
    found = [f"the zip ships the hidden cases, and {stale} (`make autograder-zip` runs it for you)"] if stale else []
    return found + [f"TA checks: {problem}" for problem in handout.ta_check_problems(grader_dir)]


def zip_bytes(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, (data, executable) in files.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3                     # Unix, so that the mode bits apply
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def find_leaks(archive, solutions_dir=SOLUTIONS_DIR, grader_dir=GRADER_DIR, label="autograder.zip"):
    """Solution lines of solutions_dir found in the zip's text files (arrays are data
    computed from the solution, never its code, and are not searched)."""
    from autograder import handout

    secrets = handout.generate(solutions_dir, grader_dir).secrets
    texts = {name: text for name, text in handout.zip_texts(archive, label=label).items()
             if not name.endswith(".npy")}
    return handout.find_leaks(secrets, texts)


def build(out=DEFAULT_ZIP, grader_dir=GRADER_DIR, solutions_dir=SOLUTIONS_DIR):
    """Write the zip to out (atomically) after the leak check; returns its member names."""
    refused = refusals(grader_dir, solutions_dir)
    if refused:
        raise BuildError("\n".join(refused))
    files = members(grader_dir, solutions_dir)
    archive = zip_bytes(files)
    leaks = find_leaks(archive, solutions_dir, grader_dir, label=Path(out).name)
    if leaks:
        raise BuildError("solution lines would leak into the Gradescope zip:\n  " + "\n  ".join(leaks))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".tmp")
    partial.write_bytes(archive)
    os.replace(partial, out)
    return list(files)
