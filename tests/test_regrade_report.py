"""Regrade a class, then read it (issue #13): per-submission results and
plots, accuracies and Gradescope's score in the CSV, a class report, and
--rescore, which re-scores from stored outcomes without running student
code and agrees with a full regrade."""
import csv
import shutil
import textwrap
import time

import numpy as np
import pytest
import torch
import yaml

from autograder import cli, outcomes
from autograder.staff import class_results, report
from autograder.staff.regrade import METADATA_FILE
from autograder.rubric import RUBRIC_PATH
from autograder.sandbox import Job, JobOutcome, StepResult
from conftest import load_corpus
from test_grader_cnn import SMALL_CONVNET, load_models_module, write_models

support = load_corpus("support")
REPO = support.REPO
REFERENCE_LAYERS = REPO / "solutions" / "cnn" / "layers.py"
STUB_LAYERS = REPO / "assignments" / "cnn" / "layers.py"
FLIPPED = """
    _reference_conv_forward = conv_forward
    def conv_forward(x, w, b, conv_param):
        return _reference_conv_forward(x, w[:, :, ::-1, ::-1], b, conv_param)
"""


def metadata(names, scores):
    records = {}
    for index, (name, score) in enumerate(zip(names, scores)):
        record = {":submitters": [{":name": f"Student {index}", ":sid": str(index), ":email": f"s{index}@x.edu"}]}
        if score is not None:
            record[":score"] = score
        records[name] = record
    text = yaml.safe_dump(records)
    # Gradescope writes scores as Ruby BigDecimal objects.
    return text.replace("':score': '", "':score': !ruby/object:BigDecimal '")


def bigdecimal(points):
    """A whole number of points as Gradescope's export writes it: 60 -> "18:0.6e2"."""
    digits = str(int(points))
    return f"18:0.{digits.rstrip('0') or '0'}e{len(digits)}"


def layer_export(root):
    export = root / "export"
    layers = {"submission_1": REFERENCE_LAYERS.read_text(), "submission_2": STUB_LAYERS.read_text(),
              "submission_3": REFERENCE_LAYERS.read_text() + "\n" + textwrap.dedent(FLIPPED)}
    for name, text in layers.items():
        (export / name).mkdir(parents=True)
        (export / name / "layers.py").write_text(text)
    recorded = [bigdecimal(support.points("layers")), None, bigdecimal(support.points("layers") - 9)]
    (export / METADATA_FILE).write_text(metadata(list(layers), recorded))
    return export


def rubric_file(path, points=None, **cnn):
    data = yaml.safe_load(RUBRIC_PATH.read_text())
    for test in data["tests"]:
        test["points"] = (points or {}).get(test["check"], test["points"])
    data["cnn"].update(cnn)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def regrade(export, out, *extra):
    started = time.monotonic()
    assert cli.main(["regrade", str(export), "--jobs", "2", "--csv", str(out / "grades.csv"), *extra]) == 0
    with open(out / "grades.csv", newline="") as handle:
        rows = {row["submission"]: row for row in csv.DictReader(handle)}
    return rows, time.monotonic() - started


def test_a_layers_regrade_reports_and_rescores_a_weight_change_like_a_full_regrade(tmp_path):
    export = layer_export(tmp_path)
    out = tmp_path / "out"
    rows, _ = regrade(export, out, "--part", "layers")
    assert float(rows["submission_1"]["gradescope_score"]) == support.points("layers")
    assert rows["submission_2"]["gradescope_score"] == ""
    assert rows["submission_1"]["convnet_accuracy"] == "" and float(rows["submission_1"]["grading_seconds"]) > 0
    results_dir = out / "grades_results"
    for name in rows:
        assert (results_dir / f"{name}.json").is_file() and (results_dir / f"{name}.outcomes.npz").is_file()
    page = (out / "report.html").read_text()
    assert "<h2>Pass rate per test</h2>" in page and "<td>1.1</td><td>conv_forward</td>" in page
    assert "the kernel is flipped" in page                   # the named mistake of submission_3
    differ = [n for n, row in rows.items() if row["gradescope_score"] and float(row["gradescope_score"]) != float(row["score"])]
    assert f"{len(differ)} of the 2 scores Gradescope recorded differ from this grade." in page
    assert differ == ["submission_3"] and "<td>submission_1</td>" not in page

    assert page.count("data:image/png;base64,") >= 2          # scores and grading times, inline

    heavier = rubric_file(tmp_path / "rubric.yaml", points={"conv_forward": support.points(check="conv_forward") + 2})
    rescored, rescore_seconds = regrade(export, out, "--part", "layers", "--rescore", "--rubric", str(heavier))
    full, full_seconds = regrade(export, tmp_path / "full", "--part", "layers", "--rubric", str(heavier))
    columns = [c for c in full["submission_1"] if c[0].isdigit()] + ["score", "max_score"]
    for name in rows:
        assert {c: rescored[name][c] for c in columns} == {c: full[name][c] for c in columns}, name
        assert rescored[name]["status"] == "ok"
    assert rescored["submission_1"]["score"] != rows["submission_1"]["score"]     # the change shows
    assert rescored["submission_1"]["grading_seconds"] == rows["submission_1"]["grading_seconds"]
    print(f"rescore {rescore_seconds:.1f} s, full regrade {full_seconds:.1f} s")
    assert rescore_seconds < full_seconds
    assert not (results_dir / ".rescore").exists()


def test_rescore_refuses_what_the_stored_outcomes_do_not_cover(tmp_path):
    export = layer_export(tmp_path)
    out = tmp_path / "out"
    regrade(export, out, "--part", "layers")
    before = (out / "grades_results" / "submission_1.json").read_text()
    (export / "submission_1" / "layers.py").write_text(REFERENCE_LAYERS.read_text() + "\n# edited\n")
    (out / "grades_results" / "submission_2.outcomes.npz").unlink()
    rows, _ = regrade(export, out, "--part", "layers", "--rescore")
    assert rows["submission_1"]["score"] == "" and "the submission changed" in rows["submission_1"]["status"]
    assert "no stored outcomes" in rows["submission_2"]["status"]
    assert rows["submission_3"]["status"] == "ok"
    assert (out / "grades_results" / "submission_1.json").read_text() == before     # left as it was


def test_a_replay_of_changed_cases_exits_3_and_says_why(tmp_path, capsys):
    submission = support.make_submission(tmp_path / "sub")
    stored = tmp_path / "outcomes.npz"
    support.grade(submission, tmp_path / "a.json", extra=["--outcomes", str(stored)])
    cases = tmp_path / "cases"
    shutil.copytree(REPO / "autograder" / "cases" / "public", cases / "public")
    first = sorted((cases / "public" / "conv").glob("p1.inp.x.npy"))[0]
    np.save(first, np.load(first) + 1.0)
    status = cli.main(["grade", str(submission), "--part", "layers", "--results", str(tmp_path / "b.json"),
                       "--replay", str(stored), "--cases-dir", str(cases), "--slowness", "1"])
    assert status == 3
    assert "replay: the stored outcomes hold no run of the job" in capsys.readouterr().err


def test_the_ledger_notes_the_limits_a_job_ran_into():
    class Inner:
        def run(self, job, submission):
            errors = [{"kind": "timeout", "message": "timed out: conv_forward did not finish within 10 s"},
                      {"kind": "crashed", "message": "the worker process was killed by SIGXCPU during this call"},
                      {"kind": "exception", "type": "MemoryError", "message": ""},
                      {"kind": "exception", "type": "ValueError", "message": "bad shape"}]
            return JobOutcome({f"s{i}": StepResult(False, error=e) for i, e in enumerate(errors)})

    ledger = outcomes.Ledger(Inner())
    job = Job("conv_forward", ["layers.py"])
    ledger.run(job, {})
    ledger.run(job, {})
    assert [hit["limit"] for hit in ledger.limits] == ["call time limit", "CPU limit", "memory limit"]


def test_csv_and_report_show_integrity_flags_and_limits_when_results_carry_them():
    flagged = {"score": 10, "execution_time": 30.0, "tests": [], "extra_data": {
        "integrity": {"flagged": True, "reasons": ["accuracy drops on flipped images", "labels leak"]},
        "accuracy": {"ConvNet": 0.9, "FCNet": 0.5},
        "limits": [{"limit": "call time limit", "job": "cnn curves", "message": "stopped after 300 s"}]}}
    clean = {"score": 20, "execution_time": 40.0, "tests": [], "extra_data": {
        "integrity": {"flagged": False, "reasons": []}}}
    older = {"score": 5, "execution_time": 20.0, "tests": [],
             "leaderboard": [{"name": "ConvNet test accuracy", "value": 71.5, "order": "desc"}]}
    assert class_results.integrity_flag(flagged) == "accuracy drops on flipped images; labels leak"
    assert class_results.integrity_flag(clean) == class_results.integrity_flag(older) == ""
    withheld = {"extra_data": {"integrity": dict(flagged["extra_data"]["integrity"], withheld=["ConvNet"])}}
    assert class_results.integrity_flag(withheld) == ("accuracy points withheld until reviewed: ConvNet; "
                                                      "accuracy drops on flipped images; labels leak")
    assert class_results.accuracy_of(older, "ConvNet") == 0.715 and class_results.accuracy_of(older, "FCNet") == ""
    entries = [{"submission": f"s{i}", "who": f"Student {i}", "status": "ok", "results": r, "gradescope_score": ""}
               for i, r in enumerate([flagged, clean, older])]
    page = report.render(entries, [], 100, tiers=[0.65, 0.7, 0.75], fcnet_threshold=0.45)
    assert "1 of 2 checked submissions flagged" in page
    assert "<td>s0</td><td>Student 0</td><td>accuracy drops on flipped images; labels leak</td>" in page
    assert "<td>call time limit</td><td>cnn curves</td><td>stopped after 300 s</td>" in page
    no_integrity = report.render(entries[2:], [], 100)
    assert "These results carry no integrity data." in no_integrity



def test_the_report_shows_student_controlled_text_as_text():
    """Names, statuses, limit messages and flag reasons reach the page escaped,
    their control characters visible (issue #24)."""
    hostile = '=HYPERLINK("http://x.invalid/") <script>alert(1)</script> \x1b[2J\u202e'
    shown = "=HYPERLINK(&quot;http://x.invalid/&quot;) &lt;script&gt;alert(1)&lt;/script&gt; \\x1b[2J\\u202e"
    results = {"score": 1, "execution_time": 3.0, "tests": [], "extra_data": {
        "integrity": {"flagged": True, "reasons": [hostile]},
        "limits": [{"limit": "call time limit", "job": "conv_forward", "message": hostile}]}}
    entries = [{"submission": "s\x1b0", "who": hostile, "status": "ok", "results": results, "gradescope_score": 2.0},
               {"submission": "s1", "who": hostile, "status": hostile, "results": None, "gradescope_score": ""}]
    page = report.render(entries, [], 10, title=hostile)
    assert "<script>" not in page and "\x1b" not in page and "\u202e" not in page
    assert f"<title>{shown}</title>" in page and f"<h1>{shown}</h1>" in page
    assert f"<td>s1</td><td>{shown}</td><td>{shown}</td>" in page                       # without a clean grade
    assert f"<td>s\\x1b0</td><td>{shown}</td><td>2</td><td>1</td>" in page            # score changed
    assert f"<td>call time limit</td><td>conv_forward</td><td>{shown}</td>" in page
    assert f"<td>s\\x1b0</td><td>{shown}</td><td>{shown}</td>" in page                # integrity reasons

# -- the CNN part on synthetic data: plots, accuracies, a threshold change ---------------------

def cnn_export(root):
    """Three submissions with the reference layers and small ConvNets of
    different widths, each with untrained checkpoints of its own."""
    export = root / "export"
    names = ["submission_1", "submission_2", "submission_3"]
    for index, name in enumerate(names):
        width = 6 + index
        convnet = (SMALL_CONVNET.replace(", 8, 3", f", {width}, 3").replace("BatchNorm2d(8)", f"BatchNorm2d({width})")
                   .replace("channels = 8", f"channels = {width}").replace("128", str(16 * width)))
        folder = write_models(export / name, convnet=convnet)
        shutil.copy(REFERENCE_LAYERS, folder / "layers.py")
        models = load_models_module(folder, f"regrade_models_{index}")
        torch.manual_seed(index)
        torch.save(models.ConvNet().state_dict(), folder / "convnet.pt")
        torch.save(models.FCNet().state_dict(), folder / "fcnet.pt")
    (export / METADATA_FILE).write_text(metadata(names, ["18:0.5e2", "18:0.4e2", None]))
    return export


@pytest.mark.slow
@pytest.mark.data
def test_three_submissions_leave_three_plots_a_report_and_a_rescore_that_matches_a_full_regrade(tmp_path, cifar10_dir):
    export, data = cnn_export(tmp_path), cifar10_dir
    out = tmp_path / "out"
    rows, _ = regrade(export, out, "--data-dir", str(data))
    results_dir = out / "grades_results"
    plots = sorted(p.name for p in results_dir.glob("*cnn_curves.png"))
    assert plots == [f"submission_{i}_cnn_curves.png" for i in (1, 2, 3)]
    assert len({(results_dir / name).read_bytes() for name in plots}) == 3      # three different runs
    assert all(0 <= float(rows[name][f"{model}_accuracy"]) <= 1 for name in rows for model in ("convnet", "fcnet"))
    assert rows["submission_1"]["gradescope_score"] == "50.0"
    page = (out / "report.html").read_text()
    for number in ("1.1", "5.1", "6.1", "7.4"):
        assert f"<td>{number}</td>" in page
    assert "ConvNet: n = 3" in page

    lower = rubric_file(tmp_path / "rubric.yaml", convnet_accuracy_tiers=[0.05, 0.1, 0.15], fcnet_accuracy=0.05)
    rescored, rescore_seconds = regrade(export, out, "--data-dir", str(data), "--rescore", "--rubric", str(lower))
    full, full_seconds = regrade(export, tmp_path / "full", "--data-dir", str(data), "--rubric", str(lower))
    columns = [c for c in full["submission_1"] if c[0].isdigit()] + ["score", "convnet_accuracy", "fcnet_accuracy"]
    for name in rows:
        assert {c: rescored[name][c] for c in columns} == {c: full[name][c] for c in columns}, name
    assert any(rescored[name]["score"] != rows[name]["score"] for name in rows)
    assert "6.1 ConvNet test accuracy >= 5%" in rescored["submission_1"]
    print(f"rescore {rescore_seconds:.1f} s, full regrade {full_seconds:.1f} s")
    assert rescore_seconds < full_seconds / 2
