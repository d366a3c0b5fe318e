"""The TA commands run their prerequisites or refuse with the command to run
(issue #13): cases stale against the reference layers.py are rebuilt by
`make handout` / `make autograder-zip` and refused by the commands
themselves; `handout --check` covers the cases and dist/handout.zip."""
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from autograder import cli
from autograder.authoring import autograder_zip, build_cases, handout
from autograder.cases import CASES_DIR

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "solutions" / "cnn"


def test_the_committed_cases_record_the_reference_they_were_built_from():
    assert build_cases.stale_problem() is None
    fingerprint = build_cases.source_fingerprint()
    assert build_cases.built_from() == {"public": fingerprint, "hidden": fingerprint}


def test_a_changed_reference_makes_the_cases_stale_and_names_the_command(tmp_path):
    solutions = tmp_path / "cnn"
    shutil.copytree(REFERENCE, solutions, ignore=shutil.ignore_patterns("*.pt", "data", "__pycache__"))
    assert build_cases.stale_problem(solutions) is None      # a copy is the same reference
    with open(solutions / "layers.py", "a") as handle:
        handle.write("\n# an edit of the reference\n")
    problem = build_cases.stale_problem(solutions)
    assert "was built from another" in problem and "run `make cases`" in problem
    # Line endings alone change nothing.
    crlf = tmp_path / "crlf"
    shutil.copytree(REFERENCE, crlf, ignore=shutil.ignore_patterns("*.pt", "data", "__pycache__"))
    (crlf / "layers.py").write_bytes((REFERENCE / "layers.py").read_bytes().replace(b"\n", b"\r\n"))
    assert build_cases.stale_problem(crlf) is None


def test_build_cases_if_stale_rebuilds_only_stale_cases(tmp_path, capsys):
    out = tmp_path / "cases"
    assert cli.main(["build-cases", "--out", str(out), "--if-stale"]) == 0
    assert "wrote" in capsys.readouterr().out                # nothing there: built
    index = out / "public" / "cases.json"
    assert json.loads(index.read_text())["built_from"] == build_cases.source_fingerprint()
    built = index.stat().st_mtime_ns
    assert cli.main(["build-cases", "--out", str(out), "--if-stale"]) == 0
    assert "up to date" in capsys.readouterr().out and index.stat().st_mtime_ns == built
    data = json.loads(index.read_text())
    index.write_text(json.dumps(dict(data, built_from="0" * 16)))
    assert build_cases.stale_problem(cases_dir=out) is not None
    assert cli.main(["build-cases", "--out", str(out), "--if-stale"]) == 0
    assert "wrote" in capsys.readouterr().out and build_cases.stale_problem(cases_dir=out) is None


def test_the_make_targets_that_ship_cases_rebuild_stale_ones_first():
    for target, command in (("handout", "-m autograder handout"), ("autograder-zip", "-m autograder autograder-zip")):
        plan = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=True).stdout
        lines = plan.splitlines()
        first = next(i for i, line in enumerate(lines) if "-m autograder build-cases --if-stale" in line)
        then = next(i for i, line in enumerate(lines) if line.rstrip().endswith(command))
        assert first < then, plan


@pytest.fixture
def stale(monkeypatch):
    """The repository's cases as if built from another reference."""
    message = "autograder/cases was built from another solutions/cnn/layers.py: run `make cases` first"
    monkeypatch.setattr(build_cases, "stale_problem", lambda *args, **kwargs: message)
    return message


def test_the_handout_command_refuses_stale_cases(tmp_path, stale, capsys):
    out = tmp_path / "assignments"
    status = cli.main(["handout", "--assignments", str(out), "--zip", str(tmp_path / "handout.zip")])
    assert status == 1 and not out.exists()
    error = capsys.readouterr().err
    assert "run `make cases` first" in error and "`make handout` runs it for you" in error


def test_the_gradescope_zip_refuses_stale_cases(tmp_path, stale):
    with pytest.raises(autograder_zip.BuildError, match=r"hidden cases, and .*run `make cases` first"):
        autograder_zip.build(tmp_path / "autograder.zip")
    assert not (tmp_path / "autograder.zip").exists()


def test_a_copied_grader_with_stale_cases_is_refused_by_the_zip(tmp_path):
    grader = tmp_path / "autograder"
    shutil.copytree(CASES_DIR, grader / "cases")
    index = grader / "cases" / "hidden" / "cases.json"
    index.write_text(json.dumps(dict(json.loads(index.read_text()), built_from="0" * 16)))
    [refusal] = autograder_zip.refusals(grader)
    assert "was built from another" in refusal and "make autograder-zip" in refusal


@pytest.fixture(scope="module")
def real_handout():
    return handout.generate(REPO / "solutions")


def test_the_handout_zip_check_names_what_is_out_of_date(real_handout, tmp_path):
    path = tmp_path / "handout.zip"
    assert handout.check_zip(real_handout, path) == []       # none built: nothing stale to hand out
    fresh = handout.zip_bytes(real_handout)
    path.write_bytes(fresh)
    assert handout.check_zip(real_handout, path) == []
    # An old zip: its public cases are not those of today.
    member = f"{handout.ZIP_FOLDER}/autograder/cases/public/cases.json"
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(fresh)) as old, zipfile.ZipFile(buffer, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            new.writestr(info, data.replace(b'"built_from"', b'"built_from_old"') if info.filename == member else data)
    path.write_bytes(buffer.getvalue())
    [problem] = handout.check_zip(real_handout, path)
    assert member in problem and "run `make handout`" in problem


def test_handout_check_reports_stale_cases_and_an_old_zip(tmp_path, stale, capsys):
    zip_path = tmp_path / "handout.zip"
    zip_path.write_bytes(b"not the handout")
    status = cli.main(["handout", "--check", "--skip-notebooks", "--zip", str(zip_path)])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL: autograder/cases built from the current reference layers.py\n  " + stale in out
    assert f"FAIL: {zip_path} in sync (when built)" in out
