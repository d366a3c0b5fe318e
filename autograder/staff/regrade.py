"""``python -m autograder regrade EXPORT_DIR --jobs N --csv grades.csv``: grade
every submission of a Gradescope "Export Submissions" download, in parallel.

The export is a folder with one subfolder per submission (``submission_<id>``,
the student's files inside, possibly one folder deeper) and
``submission_metadata.yml``, which maps each subfolder name to its record:
``:submitters:`` (a list of ``:name:``, ``:sid:``, ``:email:``), ``:created_at:``,
``:score:``, ... (keys are Ruby symbols, hence the colons; both spellings are
read). Without the metadata file every subfolder is graded anonymously.

Each submission is graded by its own ``python -m autograder grade`` process
(so a submission that crashes or hangs its grader costs only its own row),
writing into <results-dir>/ its results (<submission>.json), its loss-curve
plot (<submission>_cnn_curves.png) and what its code returned
(<submission>.outcomes.npz). With --rescore nothing is run again: each
submission is graded from those stored outcomes with the current rubric
(autograder/outcomes.py), in about a second, and a submission they do not
cover keeps no score and says so. Then the checkpoints of the whole export
are compared (autograder/staff/checkpoint_similarity.py: same files and near
copies, a lead for the staff, never a score) unless --no-copies.
autograder/staff/class_results.py writes the CSV, the score histogram and the
class report (report.html).
"""
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from autograder.layout import PACKAGE
from autograder.grade import TIME_BUDGET
from autograder.rubric import RUBRIC_PATH
from autograder.staff.safe_text import printable

PACKAGE_PARENT = PACKAGE.parent
METADATA_FILE = "submission_metadata.yml"
GRADE_TIMEOUT_MARGIN = 120       # seconds beyond the time budget before a grade process is killed


@dataclass
class ExportEntry:
    """One submission folder of the export and its metadata record (not
    autograder.submission.Submission, the files of one submission)."""
    folder_name: str
    submitters: list = field(default_factory=list)     # [{"name", "sid", "email"}]
    created_at: str = ""
    gradescope_score: object = ""  # the score Gradescope had recorded (a float), "" if none


@dataclass
class Outcome:
    entry: ExportEntry
    results: dict = None          # parsed results.json, or None
    status: str = "ok"


def add_arguments(parser):
    parser.add_argument("export_dir", metavar="EXPORT_DIR", type=Path,
                        help="unzipped Gradescope submissions export (with submission_metadata.yml)")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default: 1)")
    parser.add_argument("--csv", type=Path, default=Path("grades.csv"),
                        help="per-student scores (default: ./grades.csv)")
    parser.add_argument("--histogram", type=Path, default=None,
                        help="score histogram PNG (default: next to the CSV, <name>_histogram.png)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where each submission's results.json goes (default: <csv name>_results/)")
    parser.add_argument("--part", choices=["layers", "cnn", "all"], default="all")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default: $CIFAR10_DIR)")
    parser.add_argument("--time-budget", type=float, default=TIME_BUDGET, metavar="SECONDS",
                        help=f"per-submission grading budget (default: {TIME_BUDGET:g})")
    parser.add_argument("--rubric", type=Path, default=RUBRIC_PATH,
                        help="rubric file (default: autograder/rubric.yaml)")
    parser.add_argument("--report", type=Path, default=None,
                        help="class report (default: report.html next to the CSV)")
    parser.add_argument("--rescore", action="store_true",
                        help="run no student code: re-score every submission from the outcomes an "
                             "earlier regrade stored in the results folder, with the current rubric")
    parser.add_argument("--no-copies", action="store_true",
                        help="skip the comparison of the class's checkpoints (shared and near-copied "
                             "convnet.pt / fcnet.pt)")


class _RubyTolerantLoader(yaml.SafeLoader):
    """Safe YAML that reads Ruby-tagged values (e.g. a BigDecimal score) as plain data."""


def _plain(loader, suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_RubyTolerantLoader.add_multi_constructor("!", _plain)


def _field(record, name):
    """record[':name'] or record['name'] (exports write Ruby symbol keys)."""
    if not isinstance(record, dict):
        return None
    return record.get(f":{name}", record.get(name))


def read_export(export_dir):
    """The entries (ExportEntry) of an export, sorted by folder name."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise FileNotFoundError(f"regrade: {export_dir} is not a folder (expected an unzipped "
                                f"Gradescope submissions export)")
    metadata_path = export_dir / METADATA_FILE
    if not metadata_path.is_file():
        return [ExportEntry(folder.name) for folder in sorted(export_dir.iterdir())
                if folder.is_dir() and not folder.name.startswith((".", "__MACOSX"))]
    try:
        metadata = yaml.load(metadata_path.read_text(), Loader=_RubyTolerantLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"regrade: {metadata_path} is not valid YAML: {exc}") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"regrade: {metadata_path}: expected a mapping of submission folder names "
                         f"to records")
    entries = []
    for folder_name, record in sorted(metadata.items(), key=lambda item: str(item[0])):
        submitters = []
        for person in _field(record, "submitters") or []:
            submitters.append({key: str(_field(person, key) or "") for key in ("name", "sid", "email")})
        entries.append(ExportEntry(str(folder_name), submitters, str(_field(record, "created_at") or ""),
                                   _score(_field(record, "score"))))
    return entries


def _score(value):
    """A recorded score as a float: exports write BigDecimal as "18:0.6e2"
    (precision:value); "" when there is none."""
    if value is None or value == "":
        return ""
    text = str(value).split(":", 1)[-1]
    try:
        return float(text)
    except ValueError:
        return ""


def grade_one(entry, export_dir, results_dir, args):
    folder = Path(export_dir) / entry.folder_name
    if not folder.is_dir():
        return Outcome(entry, status=f"no folder {entry.folder_name} in the export")
    name = entry.folder_name
    results_path, stored = Path(results_dir) / f"{name}.json", Path(results_dir) / f"{name}.outcomes.npz"
    command = [sys.executable, "-m", "autograder", "grade", str(folder), "--part", args.part,
               "--time-budget", str(args.time_budget), "--rubric", str(Path(args.rubric).resolve())]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    if args.rescore:
        return rescore_one(entry, command, results_dir)
    command += ["--results", str(results_path), "--outcomes", str(stored)]
    try:
        completed = subprocess.run(command, cwd=PACKAGE_PARENT, stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True,
                                   timeout=args.time_budget + GRADE_TIMEOUT_MARGIN)
    except subprocess.TimeoutExpired:
        return Outcome(entry, status="the grader overran its time budget and was stopped")
    try:
        results = json.loads(results_path.read_text())
    except (OSError, ValueError):
        last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return Outcome(entry, status=f"no results.json (grader exit {completed.returncode}: "
                                     f"{last_line})")
    status = "ok" if completed.returncode == 0 else "autograder error (see its results.json)"
    return Outcome(entry, results, status)


def rescore_one(entry, command, results_dir):
    """Grade from the stored outcomes into a scratch folder; only a complete
    replay replaces the submission's results (its plot too), keeping the
    original grading time (execution_time) for the report."""
    name = entry.folder_name
    stored, results_path = Path(results_dir) / f"{name}.outcomes.npz", Path(results_dir) / f"{name}.json"
    if not stored.is_file():
        return Outcome(entry, status=f"not re-scored: no stored outcomes ({stored.name}); "
                                     f"regrade it without --rescore")
    scratch = Path(results_dir) / ".rescore" / name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        completed = subprocess.run(command + ["--results", str(scratch / f"{name}.json"), "--replay", str(stored),
                                              "--slowness", "1"], cwd=PACKAGE_PARENT, stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True, timeout=GRADE_TIMEOUT_MARGIN)
        if completed.returncode == 3 or not (scratch / f"{name}.json").is_file():
            why = next((line for line in completed.stderr.splitlines() if line.startswith("replay: ")),
                       f"grader exit {completed.returncode}")
            why = why.removeprefix("replay: ").removesuffix("; grade it without --replay")
            return Outcome(entry, status=f"not re-scored: {why}; regrade it without --rescore")
        results = json.loads((scratch / f"{name}.json").read_text())
        try:
            results["execution_time"] = json.loads(results_path.read_text())["execution_time"]
        except (OSError, ValueError, KeyError):
            pass
        (scratch / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        for produced in scratch.iterdir():
            os.replace(produced, Path(results_dir) / produced.name)
    except subprocess.TimeoutExpired:
        return Outcome(entry, status="not re-scored: the replay did not finish")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    status = "ok" if completed.returncode == 0 else "autograder error (see its results.json)"
    return Outcome(entry, results, status)


def run(args):
    from tqdm import tqdm

    from autograder.staff import class_results

    if args.jobs < 1:
        print("regrade: --jobs must be at least 1", file=sys.stderr)
        return 2
    # The graders run from the package's folder: every path they are given is made absolute here.
    args.export_dir, args.csv = Path(args.export_dir).resolve(), Path(args.csv).resolve()
    if args.data_dir:
        args.data_dir = str(Path(args.data_dir).resolve())
    try:
        entries = read_export(args.export_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    results_dir = Path(args.results_dir or args.csv.with_name(args.csv.stem + "_results")).resolve()
    if args.rescore and not results_dir.is_dir():
        print(f"regrade: --rescore: {results_dir} does not exist; the outcomes of an earlier regrade "
              f"(without --rescore) are read from there", file=sys.stderr)
        return 2
    results_dir.mkdir(parents=True, exist_ok=True)
    outcomes = {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(grade_one, entry, args.export_dir, results_dir, args): entry for entry in entries}
        for future in tqdm(as_completed(futures), total=len(futures), unit="submission",
                           desc="rescore" if args.rescore else "regrade"):
            entry = futures[future]
            try:
                outcomes[entry.folder_name] = future.result()
            except Exception as exc:            # a bug here must not stop the batch either
                outcomes[entry.folder_name] = Outcome(entry, status=f"regrade error: {exc}")
    shutil.rmtree(results_dir / ".rescore", ignore_errors=True)
    ordered = [outcomes[e.folder_name] for e in entries]
    copies = None if args.no_copies else find_copies(args.export_dir, entries)
    written = class_results.write_all(ordered, args, results_dir, copies)
    failed = [o for o in ordered if o.status != "ok"]
    verb = "re-scored" if args.rescore else "graded"
    print(f"{verb} {len(ordered) - len(failed)} of {len(ordered)} submissions; wrote {', '.join(written)} "
          f"and {results_dir}/")
    for outcome in failed:
        print(printable(f"  {outcome.entry.folder_name}: {outcome.status}"))
    if copies is not None:
        count = len(copies.pairs)
        print(f"shared checkpoints: {count} pair{'s' if count != 1 else ''} flagged among {copies.compared} "
              f"checkpoints (a lead for review, see the report)")
    return 0


def find_copies(export_dir, entries):
    """The shared checkpoints of the export (checkpoint_similarity.Findings),
    or None when the comparison itself failed (said on stderr; never the batch)."""
    from autograder.staff import checkpoint_similarity

    folders = {e.folder_name: Path(export_dir) / e.folder_name for e in entries}
    try:
        return checkpoint_similarity.find_copies(folders)
    except Exception as exc:
        print(printable(f"regrade: the checkpoint comparison failed: {type(exc).__name__}: {exc}"),
              file=sys.stderr)
        return None
