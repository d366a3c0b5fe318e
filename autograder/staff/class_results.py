"""What a regrade writes from its outcomes (a TA tool, not shipped): the CSV
(one row per submitter: identity, total, one column per test of the rubric
and the TA checks, status, then the score Gradescope had recorded, the
ConvNet and FCNet test accuracies, the grading time, the integrity flag and
the submissions it shares a checkpoint with, autograder/staff/checkpoint_similarity.py),
the score histogram and the class report (autograder/staff/report.py).
Every CSV cell goes through autograder/staff/safe_text.py: a name, email or
message a student controls is text a spreadsheet never runs as a formula;
numbers stay numbers."""
from autograder.staff import report
from autograder.staff.safe_text import write_csv
from autograder.ta import suite as ta_suite
from autograder.rubric import load_rubric, load_settings_of

EXTRA_COLUMNS = ["gradescope_score", "convnet_accuracy", "fcnet_accuracy", "grading_seconds", "integrity_flag",
                 "shared_checkpoint"]


def graded_tests(rubric, part, ta_checks=ta_suite.TA_CHECKS_DIR):
    """[(number, name, points)] of the rubric's tests and the TA checks of `part` ('all': both parts)."""
    entries = load_rubric(rubric)
    tests = [(e.number, e.name, e.points) for e in entries if part in ("all", e.part)]
    for module in ta_suite.discover(ta_checks, reserved=[e.number for e in entries]):
        tests += [(c.number, c.name, c.points) for c in module.checks
                  if not (c.problem or c.leaderboard) and part in ("all", c.part)]
    return sorted(tests, key=lambda test: [int(n) for n in test[0].split(".")])


def accuracy_of(results, model):
    """A model's test accuracy (a fraction) as the grade measured it, or ""."""
    measured = results.get("extra_data", {}).get("accuracy", {})
    if model in measured:
        return measured[model]
    board = {entry["name"]: entry["value"] for entry in results.get("leaderboard", [])}
    if model == "ConvNet" and "ConvNet test accuracy" in board:      # results of an older grader
        return round(board["ConvNet test accuracy"] / 100, 4)
    return ""


def integrity_flag(results):
    """The reasons of a flagged submission ("; "-joined, after which models'
    accuracy points wait for a review), "" otherwise or when not checked."""
    integrity = results.get("extra_data", {}).get("integrity")
    if not isinstance(integrity, dict) or not integrity.get("flagged"):
        return ""
    withheld = [str(name) for name in integrity.get("withheld", [])]
    head = [f"accuracy points withheld until reviewed: {', '.join(withheld)}"] if withheld else []
    return "; ".join(head + [str(reason) for reason in integrity.get("reasons", [])]) or "flagged"


def csv_rows(outcomes, tests, copies=None):
    """Header and rows: one row per submitter (a submission without any: one
    row). copies: checkpoint_similarity.Findings (None: not looked for)."""
    header = ["submission", "name", "sid", "email", "created_at", "score", "max_score"]
    header += [f"{number} {name}" for number, name, _ in tests] + ["status"] + EXTRA_COLUMNS
    max_score = sum(points for _, _, points in tests)
    rows = []
    for outcome in outcomes:
        results = outcome.results or {}
        scores = {test["number"]: test["score"] for test in results.get("tests", [])}
        total = results.get("score", sum(scores.values())) if outcome.results is not None else ""
        extra = [outcome.entry.gradescope_score, accuracy_of(results, "ConvNet"), accuracy_of(results, "FCNet"),
                 results.get("execution_time", ""), integrity_flag(results),
                 copies.shared_with(outcome.entry.folder_name) if copies else ""]
        for person in outcome.entry.submitters or [{"name": "", "sid": "", "email": ""}]:
            rows.append([outcome.entry.folder_name, person["name"], person["sid"], person["email"],
                         outcome.entry.created_at, total, max_score]
                        + [scores.get(number, "") for number, _, _ in tests] + [outcome.status] + extra)
    return header, rows


def write_all(outcomes, args, results_dir, copies=None):
    """Write the CSV, the histogram and the report of args; returns their paths as text.
    copies: the shared checkpoints found (checkpoint_similarity.Findings), or None."""
    tests = graded_tests(args.rubric, args.part)
    max_score = sum(points for _, _, points in tests)
    header, rows = csv_rows(outcomes, tests, copies)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    write_csv(args.csv, header, rows)
    histogram = args.histogram or args.csv.with_name(args.csv.stem + "_histogram.png")
    scores = [o.results["score"] for o in outcomes if o.results is not None]
    histogram.write_bytes(report.histogram_png(scores, 20, (0, max_score), f"score (out of {max_score:g})",
                                               f"{len(scores)} graded submissions"))
    settings = load_settings_of(args.rubric)
    entries = [{"submission": o.entry.folder_name,
                "who": ", ".join(p["name"] or p["sid"] for p in o.entry.submitters),
                "status": o.status, "results": o.results, "gradescope_score": o.entry.gradescope_score}
               for o in outcomes]
    page = args.report or args.csv.with_name("report.html")
    page.write_text(report.render(entries, tests, max_score, settings["convnet_accuracy_tiers"],
                                  settings["fcnet_accuracy"], title=f"Regrade of {args.export_dir.name}",
                                  copies=copies),
                    encoding="utf-8")
    return [str(args.csv), str(histogram), str(page)]
