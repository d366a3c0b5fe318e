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
writing <results-dir>/<submission>.json. The CSV has one row per submitter
(a group submission gives several rows with the same scores): identity,
total, one column per rubric test, and a status column saying why a row has
no score. A histogram of the totals is written as a PNG next to the CSV.
"""
import csv
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from autograder.grade import TIME_BUDGET
from autograder.rubric import RUBRIC_PATH, load_rubric

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
METADATA_FILE = "submission_metadata.yml"
GRADE_TIMEOUT_MARGIN = 120       # seconds beyond the time budget before a grade process is killed


@dataclass
class Submission:
    folder_name: str
    submitters: list = field(default_factory=list)     # [{"name", "sid", "email"}]
    created_at: str = ""


@dataclass
class Outcome:
    submission: Submission
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
    """The submissions of an export, sorted by folder name."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise FileNotFoundError(f"regrade: {export_dir} is not a folder (expected an unzipped "
                                f"Gradescope submissions export)")
    metadata_path = export_dir / METADATA_FILE
    if not metadata_path.is_file():
        return [Submission(entry.name) for entry in sorted(export_dir.iterdir())
                if entry.is_dir() and not entry.name.startswith((".", "__MACOSX"))]
    try:
        metadata = yaml.load(metadata_path.read_text(), Loader=_RubyTolerantLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"regrade: {metadata_path} is not valid YAML: {exc}") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"regrade: {metadata_path}: expected a mapping of submission folder names "
                         f"to records")
    submissions = []
    for folder_name, record in sorted(metadata.items(), key=lambda item: str(item[0])):
        submitters = []
        for person in _field(record, "submitters") or []:
            submitters.append({key: str(_field(person, key) or "") for key in ("name", "sid", "email")})
        submissions.append(Submission(str(folder_name), submitters, str(_field(record, "created_at") or "")))
    return submissions


def grade_one(submission, export_dir, results_dir, args):
    folder = Path(export_dir) / submission.folder_name
    if not folder.is_dir():
        return Outcome(submission, status=f"no folder {submission.folder_name} in the export")
    results_path = Path(results_dir) / f"{submission.folder_name}.json"
    command = [sys.executable, "-m", "autograder", "grade", str(folder), "--results", str(results_path),
               "--part", args.part, "--time-budget", str(args.time_budget)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    try:
        completed = subprocess.run(command, cwd=PACKAGE_PARENT, stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True,
                                   timeout=args.time_budget + GRADE_TIMEOUT_MARGIN)
    except subprocess.TimeoutExpired:
        return Outcome(submission, status="the grader overran its time budget and was stopped")
    try:
        results = json.loads(results_path.read_text())
    except (OSError, ValueError):
        last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return Outcome(submission, status=f"no results.json (grader exit {completed.returncode}: "
                                          f"{last_line})")
    status = "ok" if completed.returncode == 0 else "autograder error (see its results.json)"
    return Outcome(submission, results, status)


def csv_rows(outcomes, tests):
    """Header and rows: one row per submitter (a submission without any: one row)."""
    header = ["submission", "name", "sid", "email", "created_at", "score", "max_score"]
    header += [f"{entry.number} {entry.name}" for entry in tests] + ["status"]
    max_score = sum(entry.points for entry in tests)
    rows = []
    for outcome in outcomes:
        scores = {}
        total = ""
        if outcome.results is not None:
            scores = {test["number"]: test["score"] for test in outcome.results.get("tests", [])}
            total = outcome.results.get("score", sum(scores.values()))
        for person in outcome.submission.submitters or [{"name": "", "sid": "", "email": ""}]:
            rows.append([outcome.submission.folder_name, person["name"], person["sid"], person["email"],
                         outcome.submission.created_at, total, max_score]
                        + [scores.get(entry.number, "") for entry in tests] + [outcome.status])
    return header, rows


def write_histogram(path, totals, max_score):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    axes.hist(totals, bins=20, range=(0, max_score), color="tab:blue", edgecolor="white")
    axes.set_xlabel(f"score (out of {max_score:g})")
    axes.set_ylabel("submissions")
    axes.set_title(f"{len(totals)} graded submissions")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(args):
    from tqdm import tqdm

    if args.jobs < 1:
        print("regrade: --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        submissions = read_export(args.export_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    entries = load_rubric(RUBRIC_PATH)
    tests = [entry for entry in entries if args.part in ("all", entry.part)]
    results_dir = args.results_dir or args.csv.with_name(args.csv.stem + "_results")
    results_dir.mkdir(parents=True, exist_ok=True)
    outcomes = {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(grade_one, submission, args.export_dir, results_dir, args): submission
                   for submission in submissions}
        for future in tqdm(as_completed(futures), total=len(futures), unit="submission", desc="regrade"):
            submission = futures[future]
            try:
                outcomes[submission.folder_name] = future.result()
            except Exception as exc:            # a bug here must not stop the batch either
                outcomes[submission.folder_name] = Outcome(submission, status=f"regrade error: {exc}")
    ordered = [outcomes[s.folder_name] for s in submissions]
    header, rows = csv_rows(ordered, tests)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    histogram = args.histogram or args.csv.with_name(args.csv.stem + "_histogram.png")
    max_score = sum(entry.points for entry in tests)
    write_histogram(histogram, [o.results["score"] for o in ordered if o.results is not None], max_score)
    failed = [o for o in ordered if o.status != "ok"]
    print(f"graded {len(ordered) - len(failed)} of {len(ordered)} submissions; wrote {args.csv}, "
          f"{histogram} and {results_dir}/")
    for outcome in failed:
        print(f"  {outcome.submission.folder_name}: {outcome.status}")
    return 0
