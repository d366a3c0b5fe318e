"""``python -m autograder pack [DIR]``: the upload, checked and zipped.

Finds the submission's files as the grader does (submission.find_submission:
DIR or one folder below, exact names, near misses explained), then checks
what costs a Gradescope round trip: every required file present under its
exact name, the imports of layers.py and models.py (imports.py), and the
quick public checks (every layers check, the models' architecture with the
compute rule, strict checkpoint loading) graded through the same path as
``grade`` (check.grade_checks) on the very files the zip holds. It writes
submission.zip holding exactly layers.py, models.py, convnet.pt, fcnet.pt and
those handout notebooks that exist, at the top of the zip: never data,
caches or checkpoints of other names.

Prints what went in and each problem with its fix. Exit status: 0 when the
zip was written and nothing was found; 1 when it was written with problems
(listed); 2 when a required file is missing or unusable (no zip written).
"""
import os
import tempfile
import zipfile
from pathlib import Path

from autograder.answers import ANSWER_PLACEHOLDER, MAX_NOTEBOOK_BYTES, PLOTTED, read_answers, uploaded_notebooks
from autograder.check import grade_checks
from autograder.imports import import_warnings
from autograder.layout import CHECKPOINTS
from autograder.rubric import RUBRIC_PATH, load_rubric
from autograder.submission import EXPECTED_FILES, copy_submission_file, find_submission

ZIP_NAME = "submission.zip"
# The quick checks: the layers part whole, the models' checks that need no data.
QUICK_MODEL_CHECKS = ("convnet_architecture", "fcnet_architecture", "convnet_checkpoint", "fcnet_checkpoint")
ZIP_DATE = (2020, 1, 1, 0, 0, 0)     # fixed: the same files always make the same zip
TRAIN_HINT = {CHECKPOINTS["ConvNet"]: "train ConvNet in notebook 3 (or `python train.py convnet-cpu` in cnn/), "
                                      "which saves convnet.pt",
              CHECKPOINTS["FCNet"]: "train FCNet in notebook 3 (or `python train.py fcnet` in cnn/), "
                                    "which saves fcnet.pt"}
COLAB_HINT = ("On Colab: download it from the file browser (right-click {name} > Download), or run "
              "in a cell:\n    from google.colab import files; files.download({path!r})")


def add_arguments(parser):
    parser.add_argument("submission_dir", metavar="DIR", nargs="?", default=".",
                        help="folder with your files, or one folder above it (default: the "
                             "current folder; from the handout folder, your files in cnn/)")
    parser.add_argument("--out", default=None, metavar="ZIP",
                        help=f"the zip to write (default: {ZIP_NAME} in DIR)")
    parser.add_argument("--skip-checks", action="store_true",
                        help="do not run the quick public checks (names and imports are still checked)")
    parser.add_argument("--colab", action="store_true",
                        help="say how to download the zip from Colab (default: when run on Colab)")


def missing_problems(submission):
    """{name: problem with its fix} of each required file that cannot be packed."""
    problems = {}
    for name in EXPECTED_FILES:
        if name not in submission.files:
            text = submission.missing_message(name, pointer=False)
            if name in TRAIN_HINT and name not in submission.near_misses and name not in submission.problems:
                text += f". Fix: {TRAIN_HINT[name]}"
            problems[name] = text
    return problems


def notebook_problems(notebooks):
    """Lines about notebooks that are not ready to hand in (never blocking)."""
    lines = []
    for name, path in sorted(notebooks.items()):
        answers = read_answers(path)
        if "problem" in answers:
            lines.append(f"{name}: {answers['problem']}; fix it or leave it out")
            continue
        open_cells = sum(1 for _, answer in answers["questions"] if not answer or answer == ANSWER_PLACEHOLDER)
        if open_cells:
            lines.append(f"{name}: {open_cells} answer cell{'s' if open_cells > 1 else ''} still "
                         f"say{'' if open_cells > 1 else 's'} {ANSWER_PLACEHOLDER!r}: answer, save, "
                         f"then pack again")
        if name in PLOTTED and not answers["has_plot"]:
            lines.append(f"{name}: holds no plot: run it to the end and save it, then pack again")
    return lines


def check_problems(folder):
    """The quick public checks of the files in folder: one line per test
    that lost points, naming how to see its whole feedback."""
    entries = load_rubric(RUBRIC_PATH)
    quick = [e for e in entries if e.part == "layers" or e.check in QUICK_MODEL_CHECKS]
    results, grading = grade_checks(folder, quick)
    numbers = {entry.number: entry for entry in quick}
    lines = []
    for test in results["tests"]:
        entry = numbers.get(test["number"])
        if entry is None or test["score"] >= test["max_score"]:
            continue
        first = test["output"].split("\n", 1)[0]
        lines.append(f"{test['number']} {test['name']}: {test['score']:.2f} / {test['max_score']:g}: "
                     f"{first}. See it whole: python -m autograder check {entry.tags[0]}")
    return lines


def packed_files(submission, notebooks, scratch):
    """{name in the zip: path of a safe copy in scratch}: the graded files and
    the notebooks, each copied as the grader copies (a regular file, never
    through a link, within its size cap)."""
    chosen = {}
    Path(scratch).mkdir(parents=True, exist_ok=True)
    for name, path in list(submission.files.items()) + sorted(notebooks.items()):
        copy = Path(scratch) / name
        copy_submission_file(path, copy, EXPECTED_FILES.get(name, MAX_NOTEBOOK_BYTES))
        chosen[name] = copy
    return chosen


def write_zip(target, files):
    """Write files ({name: path}) at the top of the zip target, in a fixed order and date."""
    temporary = Path(target).with_name(f".{Path(target).name}.tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, Path(files[name]).read_bytes())
    os.replace(temporary, target)


def on_colab(args):
    return args.colab or bool(os.environ.get("COLAB_RELEASE_TAG"))


def run(args):
    submission = find_submission(args.submission_dir)
    target = Path(args.out) if args.out else Path(args.submission_dir) / ZIP_NAME
    notebooks = uploaded_notebooks(submission)
    missing = missing_problems(submission)
    problems = [f"{name}: {text}" for name, text in missing.items()]
    problems += [line.lstrip("- ") for line in import_warnings(submission)[1:] if line]
    problems += notebook_problems(notebooks)
    with tempfile.TemporaryDirectory(prefix="autograder-pack-") as scratch:
        files = packed_files(submission, notebooks, Path(scratch) / "upload") if not missing else {}
        if files and not args.skip_checks:
            print("pack: running the quick public checks on the files to be zipped ...", flush=True)
            problems += check_problems(Path(scratch) / "upload")
        if files:
            write_zip(target, files)
        report(args, submission, target, files, problems)
    return 2 if missing else (1 if problems else 0)


def report(args, submission, target, files, problems):
    """What went in (or why nothing did), each problem with its fix, and how to upload."""
    lines = []
    if files:
        lines.append(f"pack: wrote {target} ({target.stat().st_size / 1e6:.1f} MB), holding:")
        lines += [f"  {name:<28} {size_text(path)}  from {shown(submission, name)}"
                  for name, path in sorted(files.items())]
    else:
        lines.append(f"pack: NO zip written: a required file is missing (see below)"
                     + (f"; the {target} already there is NOT up to date" if target.exists() else ""))
    lines.append("  Left out, as always: everything else (data, caches, other files and names)"
                 + (f", among them CIFAR-10 ({', '.join(str(p) for p in submission.data[:3])}): the "
                    f"grader never reads data from an upload." if submission.data else "."))
    if problems:
        lines += ["", f"PROBLEMS ({len(problems)}):"] + [f"- {text}" for text in problems]
    if files:
        lines += ["", f"Upload {target.name} to Gradescope (it holds the files at its top)."]
        if on_colab(args):
            lines.append(COLAB_HINT.format(name=target.name, path=str(target.resolve())))
    print("\n".join(lines))


def shown(submission, name):
    path = submission.files.get(name) or uploaded_notebooks(submission).get(name)
    return str(Path(path).relative_to(submission.root)) if path else "?"


def size_text(path):
    size = Path(path).stat().st_size
    return f"{size / 1e6:6.1f} MB" if size >= 100_000 else f"{size / 1e3:6.1f} kB"
