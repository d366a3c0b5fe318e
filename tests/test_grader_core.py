"""The grader around the checks: finding submission files, the rubric,
results.json (schema, atomic write, always written), the command line,
public mode, determinism, and the committed case data being in sync with
solutions/."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest

from autograder import cli
from autograder.authoring.build_cases import build
from autograder.cases import CASES_DIR
from autograder.results import (NOT_RUN, SCHEMA, Results, ResultsError, format_failures, format_table,
                                make_results, make_test, validate, write_results)
from autograder.rubric import RUBRIC_PATH, RubricError, load_rubric
from autograder.submission import find_submission
from conftest import shown

spec = importlib.util.spec_from_file_location(
    "grader_support", Path(__file__).parent / "grader_corpus" / "support.py")
support = importlib.util.module_from_spec(spec)
spec.loader.exec_module(support)

REPO = support.REPO
REFERENCE_DIR = REPO / "solutions" / "cnn"


# -- submission files ------------------------------------------------------------------

def test_files_are_found_one_folder_deep_and_symlinks_refused(tmp_path):
    nested = tmp_path / "my-upload"
    nested.mkdir()
    (nested / "layers.py").write_text("x = 1\n")
    (tmp_path / "models.py").write_text("y = 2\n")
    (tmp_path / "convnet.pt").symlink_to(nested / "layers.py")
    found = find_submission(tmp_path)
    assert found.files == {"layers.py": nested / "layers.py", "models.py": tmp_path / "models.py"}
    assert "layers.py found in the subfolder my-upload/" in found.notes
    assert "symbolic link" in found.missing_message("convnet.pt")
    assert "fcnet.pt was not found" in found.missing_message("fcnet.pt")


def write_files(folder, names, text="x = 1\n"):
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_near_miss_names_are_never_graded_and_the_summary_says_what_to_rename(tmp_path):
    write_files(tmp_path, ["Layers.py", "models (1).py", "convnet.pth", "fcnet.pt"])
    found = find_submission(tmp_path)
    assert set(found.files) == {"fcnet.pt"}
    summary = "\n".join(found.summary_lines())
    assert summary.startswith("SUBMISSION FILES: layers.py, models.py and convnet.pt were not found")
    assert ("- layers.py: NOT GRADED. Found Layers.py at the top of the upload" in summary
            and "rename it to exactly layers.py" in summary)
    assert "Found 'models (1).py' at the top of the upload" in summary
    assert "second download or a copy" in summary and "rename it to exactly models.py" in summary
    assert "Found convnet.pth" in summary and "rename it to exactly convnet.pt" in summary
    assert "- fcnet.pt: graded fcnet.pt." in summary
    assert "exactly these four names, at the top of the upload or in one folder below" in summary
    message = found.missing_message("layers.py")
    assert message.startswith("layers.py was not found in the submission")
    assert "Layers.py" in message and "rename it to exactly layers.py" in message


def test_files_two_folders_down_are_found_and_reported_not_graded(tmp_path):
    write_files(tmp_path, [f"hw/cnn/{name}" for name in ("layers.py", "models.py", "convnet.pt", "fcnet.pt")])
    found = find_submission(tmp_path)
    assert found.files == {}
    summary = "\n".join(found.summary_lines())
    assert "layers.py, models.py, convnet.pt and fcnet.pt were not found" in summary
    assert "Found hw/cnn/layers.py, 2 folders down" in summary
    assert "top of the upload and one folder below" in summary
    assert "hw/cnn/fcnet.pt" in found.missing_message("fcnet.pt")


def test_only_notebooks_uploaded_says_that_the_py_files_are_graded(tmp_path):
    write_files(tmp_path, ["1_convolution_pooling.ipynb", "3_cifar10_training.ipynb"], "{}")
    found = find_submission(tmp_path)
    summary = "\n".join(found.summary_lines())
    assert "- layers.py: NOT FOUND anywhere in the upload." in summary
    assert "Notebooks found (1_convolution_pooling.ipynb, 3_cifar10_training.ipynb)" in summary
    assert "the grader does not run notebooks" in summary and "upload those four files" in summary
    assert "the grader runs the .py files, not the notebooks" in found.missing_message("models.py")


def test_an_exact_file_is_graded_and_a_copy_next_to_it_is_named(tmp_path):
    write_files(tmp_path, ["layers.py", "layers (1).py", "models.py", "convnet.pt", "fcnet.pt"])
    found = find_submission(tmp_path)
    assert found.files["layers.py"] == tmp_path / "layers.py"
    summary = "\n".join(found.summary_lines())
    assert "- layers.py: graded layers.py. Also in the upload and NOT graded: 'layers (1).py'" in summary
    # A complete upload without look-alikes adds nothing to the feedback.
    assert find_submission(REFERENCE_DIR).summary_lines() == []


def test_the_summary_names_only_the_files_a_part_needs_and_never_the_graders_own_output(tmp_path):
    write_files(tmp_path, ["layers.py", "results.json", "notes.txt"])
    found = find_submission(tmp_path)
    assert found.summary_lines(["layers.py"]) == [], "--part layers needs layers.py only"
    summary = "\n".join(found.summary_lines())
    assert "- convnet.pt: NOT FOUND anywhere in the upload." in summary
    assert "- The top of the upload holds: layers.py, notes.txt." in summary


def test_the_grade_command_puts_the_submission_summary_on_top_and_in_each_check(tmp_path):
    upload = tmp_path / "upload"
    write_files(upload, ["Layers.py"])
    results_path = tmp_path / "out" / "results.json"
    process = subprocess.run([sys.executable, "-m", "autograder", "grade", str(upload), "--part", "layers",
                              "--results", str(results_path), "--slowness", "1"],
                             capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert process.returncode == 0, process.stderr
    results = json.loads(results_path.read_text())
    # --part layers: the summary is about the one file the layers need.
    assert shown(results).startswith("SUBMISSION FILES: layers.py was not found under its exact name")
    assert "convnet.pt" not in shown(results).split("The grader takes exactly")[0]
    assert "Found Layers.py at the top of the upload" in shown(results)
    layer_tests = [t for t in results["tests"] if t["max_score"] > 0]
    assert all("Layers.py" in t["output"] for t in layer_tests)
    assert process.stdout.startswith("SUBMISSION FILES:")
    assert "layers.py not found (see SUBMISSION FILES at the top)" in process.stdout
    assert f"The full feedback of every test is in {results_path}" in process.stdout


def test_the_console_shows_the_whole_feedback_of_failing_checks_once():
    long_line = "0/15 cases correct; likely mistake: " + "a long explanation " * 10
    details = ["Failing cases (15, first 3 shown):", "- public case p1: conv_forward(x (2, 3, 5, 5))",
               "    out: 100 of 100 values wrong"]
    results = make_results([
        make_test("1.1", "conv_forward", 0, 8, "\n".join([long_line] + details)),
        make_test("1.2", "conv_backward", 0, 9, "\n".join(["0/15 cases correct"] + details)),
        make_test("2.1", "max_pool_forward", 3, 3, "13/13 cases correct"),
        make_test("2.2", "max_pool_backward", 0, 4, "\n".join(["first"] + [f"line {i}" for i in range(40)])),
    ])
    table = format_table(results)
    assert long_line not in table and "..." in table         # the table clips ...
    text = format_failures(results, "/tmp/out/results.json")
    assert "    " + long_line.rstrip() in text                 # ... the section below does not
    assert text.count("out: 100 of 100 values wrong") == 1
    assert "1.2 conv_backward  (0 / 9)\n    0/15 cases correct\n    (details as in test 1.1 above)" in text
    assert "max_pool_forward" not in text
    assert "line 23" in text and "line 24" not in text and "16 more lines in /tmp/out/results.json" in text
    assert text.endswith("The full feedback of every test is in /tmp/out/results.json (the \"output\" "
                         "of each test; on Gradescope, under each test).")


def test_missing_layers_file_zeroes_every_layer_check_with_its_name(tmp_path):
    (tmp_path / "models.py").write_text("")
    results = support.grade(tmp_path)
    layer_tests = [t for t in results["tests"] if t["max_score"] > 0]
    assert layer_tests and all(t["score"] == 0 for t in layer_tests)
    assert all("layers.py was not found" in t["output"] for t in layer_tests)


# -- rubric -------------------------------------------------------------------------------

def test_rubric_has_both_parts_with_unique_numbers():
    # Totals are the rubric's to choose: test_rubric_promises.py compares them with the README.
    entries = load_rubric()
    assert {e.part for e in entries} == {"layers", "cnn"}
    assert len({e.number for e in entries}) == len(entries)


@pytest.mark.parametrize("change, complaint", [
    ({"points": -1}, "points must be a positive number"),
    ({"number": 1.1}, "quoted string"),
    ({"visibility": "public"}, "visibility must be one of"),
    ({"part": "numpy"}, "part must be one of"),
    ({"extra": 1}, "unknown extra"),
])
def test_rubric_errors_name_the_file_entry_and_problem(tmp_path, change, complaint):
    entry = {"number": "1.1", "name": "x", "part": "layers", "check": "conv_forward",
             "tags": ["conv_forward"], "points": 1, "visibility": "visible"}
    path = tmp_path / "rubric.yaml"
    path.write_text(json.dumps({"tests": [dict(entry, **change)]}))
    with pytest.raises(RubricError, match=complaint) as error:
        load_rubric(path)
    assert str(path) in str(error.value) and "test 1" in str(error.value)


def test_unknown_check_id_is_an_autograder_error_and_still_writes_results(tmp_path):
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(RUBRIC_PATH.read_text().replace("check: conv_forward,", "check: conv_fwd,"))
    results_path = tmp_path / "results.json"
    status = cli.main(["grade", str(REFERENCE_DIR), "--results", str(results_path), "--part", "layers",
                       "--rubric", str(rubric)])
    assert status == 2
    results = json.loads(results_path.read_text())
    validate(results)
    assert all(t["score"] == 0 for t in results["tests"])
    assert "no check 'conv_fwd'" in results["tests"][0]["output"]


# -- results.json -------------------------------------------------------------------------

def test_our_schema_is_valid_json_schema_and_agrees_with_jsonschema(tmp_path):
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    good = make_results([make_test("1.1", "t", 1.5, 2, "feedback", tags=["conv_forward"])])
    validate(good)
    jsonschema.validate(good, SCHEMA)
    for bad in (dict(good, tests=[dict(good["tests"][0], status="ok")]),
                dict(good, tests=[dict(good["tests"][0], number="one")]),
                dict(good, visibility=None),
                dict(good, tests=[{k: v for k, v in good["tests"][0].items() if k != "tags"}])):
        with pytest.raises(ResultsError):
            validate(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


def test_nan_and_overfull_scores_are_rejected_and_the_old_file_survives(tmp_path):
    path = tmp_path / "results.json"
    write_results(path, make_results([make_test("1", "t", 1, 1, "ok")]))
    before = path.read_text()
    with pytest.raises(ResultsError):
        write_results(path, make_results([make_test("1", "t", float("nan"), 1, "x")]))
    with pytest.raises(ResultsError, match="score 2.0 > max_score 1.0"):
        write_results(path, make_results([make_test("1", "t", 2, 1, "x")]))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_crash_inside_a_part_still_writes_results_with_an_error(tmp_path, monkeypatch):
    from autograder.parts import layers

    def explode(ctx, check_ids):
        raise RuntimeError("boom")

    monkeypatch.setattr(layers, "grade", explode)
    results_path = tmp_path / "results.json"
    status = cli.main(["grade", str(REFERENCE_DIR), "--results", str(results_path), "--part", "layers"])
    assert status == 2
    results = json.loads(results_path.read_text())
    validate(results)
    assert len(results["tests"]) == 14 and results["score"] == 0
    assert all("autograder itself failed" in t["output"] and "RuntimeError: boom" in t["output"]
               for t in results["tests"])


def test_a_missing_submission_folder_still_writes_results(tmp_path):
    results_path = tmp_path / "results.json"
    assert cli.main(["grade", str(tmp_path / "nope"), "--results", str(results_path)]) == 2
    results = json.loads(results_path.read_text())
    validate(results)
    assert "does not exist" in results["tests"][0]["output"]


# -- command line ---------------------------------------------------------------------------

def test_cli_grades_the_reference_prints_a_table_and_writes_results_json(tmp_path):
    # The layer part only: the CNN part's own CLI run is in test_grader_cnn.py.
    process = subprocess.run([sys.executable, "-m", "autograder", "grade", str(REFERENCE_DIR),
                              "--part", "layers"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert process.returncode == 0, process.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    validate(results)
    layer_tests = [t for t in results["tests"] if t["max_score"] > 0]
    layer_points = support.points("layers")
    assert results["score"] == layer_points and len(layer_tests) == 14
    assert all(t["status"] == "passed" for t in layer_tests)
    assert "1.1 conv_forward" in process.stdout and f"{layer_points:.2f} / {layer_points:g}" in process.stdout


def test_every_test_carries_the_required_fields_and_function_tags(reference_results):
    for test in reference_results["tests"]:
        assert set(test) >= {"name", "number", "score", "max_score", "status", "output",
                             "visibility", "tags"}
    tags = {tag for t in reference_results["tests"] for tag in t["tags"]}
    assert {"conv_forward", "conv_backward", "dropout_backward", "spatial_batchnorm_backward"} <= tags


# -- cases, public mode, determinism ------------------------------------------------------------

# Cases are computed by numpy; another numpy build or CPU rounds the last bits
# differently (seen: 4e-14 relative). A changed solution moves values far more.
CASE_RTOL = 1e-9


def _case_differs(fresh, committed):
    """Why the fresh case file differs from the committed one, or None."""
    if fresh.suffix != ".npy":
        return None if fresh.read_bytes() == committed.read_bytes() else "content"
    new, old = np.load(fresh, allow_pickle=False), np.load(committed, allow_pickle=False)
    if new.dtype != old.dtype or new.shape != old.shape:
        return f"{old.dtype}{old.shape} -> {new.dtype}{new.shape}"
    if new.dtype.kind != "f":
        return None if np.array_equal(new, old) else "values"
    return None if np.allclose(new, old, rtol=CASE_RTOL, atol=0, equal_nan=True) else "values"


def test_committed_cases_are_in_sync_with_solutions(tmp_path):
    build(REFERENCE_DIR, tmp_path)
    for visibility in ("public", "hidden"):
        fresh, committed = tmp_path / visibility, CASES_DIR / visibility
        fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
        committed_files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
        assert fresh_files == committed_files, "run `make cases` and commit autograder/cases"
        stale = [(str(name), why) for name in fresh_files
                 if (why := _case_differs(fresh / name, committed / name))]
        assert not stale, f"out of date (run `make cases`): {stale[:5]}"


def test_the_case_comparison_sees_a_changed_value_but_not_rounding(tmp_path):
    committed = tmp_path / "committed.npy"
    np.save(committed, np.array([1.0, 2.0, 3.0]))
    for values, stale in (([1.0, 2.0, 3.0 * (1 + 1e-13)], False), ([1.0, 2.0, 3.0001], True),
                          ([1.0, 2.0], True)):
        fresh = tmp_path / "fresh.npy"
        np.save(fresh, np.array(values))
        assert bool(_case_differs(fresh, committed)) is stale, values


def test_public_mode_says_so_and_still_grades(tmp_path):
    cases = tmp_path / "cases"
    shutil.copytree(CASES_DIR / "public", cases / "public")
    reference = support.grade(REFERENCE_DIR, tmp_path / "ref.json", extra=["--cases-dir", str(cases)])
    assert reference["score"] == support.points("layers")
    assert "Public mode" in reference["output"]
    assert all("public mode" in t["output"] for t in reference["tests"] if t["max_score"] > 0)
    buggy = support.make_submission(tmp_path / "buggy", """
        _reference_conv_forward = conv_forward
        def conv_forward(x, w, b, conv_param):
            return _reference_conv_forward(x, w[:, :, ::-1, ::-1], b, conv_param)
    """)
    results = support.grade(buggy, extra=["--cases-dir", str(cases)])
    scores = support.score_by_function(results)
    assert scores["conv_forward"][0] < scores["conv_forward"][1]
    assert "the kernel is flipped" in support.outputs_of(results, "conv_forward")
    assert "hidden case h" not in json.dumps(results)


@pytest.mark.slow
def test_three_runs_give_identical_results_apart_from_execution_time(tmp_path):
    folder = support.make_submission(tmp_path / "sub", """
        _reference_max_pool_backward = max_pool_backward
        def max_pool_backward(dout, cache):
            return _reference_max_pool_backward(dout, cache) * 2
    """)
    texts = []
    for run in range(3):
        results = support.grade(folder, tmp_path / f"run{run}.json")
        assert results.pop("execution_time") >= 0
        texts.append(json.dumps(results, sort_keys=True))
    assert texts[0] == texts[1] == texts[2]
    assert json.loads(texts[0])["score"] < support.points("layers")


@pytest.fixture(scope="module")
def reference_results(tmp_path_factory):
    return support.grade(REFERENCE_DIR, tmp_path_factory.mktemp("reference") / "results.json")


def test_the_results_accumulator_sorts_by_number_and_records_every_kind_of_test():
    entry = SimpleNamespace(number="2.1", name="b", points=4.0, visibility="hidden", tags=("t",))
    results = Results(time_budget=480)
    results.add_check(entry, 0.5, "half")
    results.add_not_run([SimpleNamespace(number="1.10", name="c", points=1.0, visibility="visible", tags=())])
    results.add_extra("10.2", "report", "text", "hidden", passed=False)
    results.add_error("the cnn part", ValueError("boom"))
    results.note("top line")
    results.add_leaderboard("acc", 80.0, "desc")
    results.extra_data["accuracy"] = {"ConvNet": 0.8}
    data = results.as_json(execution_time=1.0, extra_data={"limits": [1]})
    validate(data)
    assert [t["number"] for t in data["tests"]] == ["0", "1.10", "2.1", "10.2"]
    assert data["tests"][1]["output"] == NOT_RUN.format(budget=480) and data["tests"][2]["score"] == 2.0
    assert data["tests"][0]["output"].endswith("(ValueError: boom)") and data["tests"][3]["status"] == "failed"
    assert shown(data).startswith("top line\nFix first\n1.10 c: not run")       # html on Gradescope
    assert results.as_json(pictures=False)["output"] == "top line" and data["leaderboard"] == [{"name": "acc", "value": 80.0, "order": "desc"}]
    assert data["extra_data"] == {"accuracy": {"ConvNet": 0.8}, "limits": [1]} and data["score"] == 2.0
