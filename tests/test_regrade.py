"""Bulk regrade over a Gradescope submissions export (issue #6): parallel, one
row per submitter, broken submissions reported without stopping the batch,
a histogram PNG."""
import csv
import shutil
import textwrap
from pathlib import Path

import pytest

from autograder import cli
from autograder.staff.regrade import METADATA_FILE, read_export
from autograder.rubric import load_rubric

REPO = Path(__file__).resolve().parents[1]
REFERENCE_LAYERS = REPO / "solutions" / "cnn" / "layers.py"
STUB_LAYERS = REPO / "assignments" / "cnn" / "layers.py"

# The layout Gradescope's "Export Submissions" writes: Ruby-symbol keys, a
# group submission with two submitters, a Ruby-tagged score.
METADATA = textwrap.dedent("""\
    submission_1001:
      :submitters:
      - :name: Ada Lovelace
        :sid: '1815'
        :email: ada@example.edu
      :created_at: 2026-11-20 10:00:00.000000000 -08:00
      :score: !ruby/object:BigDecimal 18:0.6e2
    submission_1002:
      :submitters:
      - :name: Alan Turing
        :sid: '1912'
        :email: alan@example.edu
      - :name: Grace Hopper
        :sid: '1906'
        :email: grace@example.edu
      :created_at: 2026-11-20 11:00:00.000000000 -08:00
    submission_1003:
      :submitters:
      - :name: Broken Syntax
        :sid: '3'
        :email: broken@example.edu
    submission_1004:
      :submitters:
      - :name: Lost Folder
        :sid: '4'
        :email: lost@example.edu
""")


def make_export(root):
    export = root / "export"
    (export / "submission_1001").mkdir(parents=True)
    shutil.copy(REFERENCE_LAYERS, export / "submission_1001" / "layers.py")
    (export / "submission_1002" / "cnn-handout").mkdir(parents=True)
    shutil.copy(STUB_LAYERS, export / "submission_1002" / "cnn-handout" / "layers.py")
    (export / "submission_1003").mkdir()
    (export / "submission_1003" / "layers.py").write_text("def conv_forward(:\n")
    (export / METADATA_FILE).write_text(METADATA)
    return export


def test_export_metadata_is_read_with_ruby_keys_and_tags(tmp_path):
    submissions = read_export(make_export(tmp_path))
    assert [s.folder_name for s in submissions] == [
        "submission_1001", "submission_1002", "submission_1003", "submission_1004"]
    assert submissions[1].submitters == [
        {"name": "Alan Turing", "sid": "1912", "email": "alan@example.edu"},
        {"name": "Grace Hopper", "sid": "1906", "email": "grace@example.edu"}]


def test_an_export_without_metadata_grades_every_folder(tmp_path):
    export = make_export(tmp_path)
    (export / METADATA_FILE).unlink()
    assert [s.folder_name for s in read_export(export)] == [
        "submission_1001", "submission_1002", "submission_1003"]


def test_bad_metadata_names_the_file(tmp_path):
    export = make_export(tmp_path)
    (export / METADATA_FILE).write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="submission_metadata.yml: expected a mapping"):
        read_export(export)


@pytest.mark.slow
def test_regrade_takes_paths_relative_to_where_it_is_run(tmp_path, monkeypatch):
    """The graders run in another folder: relative EXPORT_DIR, --csv and
    --results-dir still name the TA's folders."""
    make_export(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["regrade", "export", "--csv", "out/grades.csv", "--results-dir", "kept", "--part", "layers",
                     "--time-budget", "120"]) == 0
    with open(tmp_path / "out" / "grades.csv", newline="") as handle:
        rows = {row["sid"]: row for row in csv.DictReader(handle)}
    assert rows["1815"]["status"] == "ok" and float(rows["1815"]["score"]) > 0
    assert (tmp_path / "kept" / "submission_1001.json").is_file()


def test_regrade_writes_scores_per_student_and_a_histogram(tmp_path, capsys):
    export = make_export(tmp_path)
    grades = tmp_path / "out" / "grades.csv"
    status = cli.main(["regrade", str(export), "--jobs", "2", "--csv", str(grades), "--part", "layers",
                       "--time-budget", "120"])
    assert status == 0
    with open(grades, newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_sid = {row["sid"]: row for row in rows}
    assert set(by_sid) == {"1815", "1912", "1906", "3", "4"}
    layers = {entry.number: entry for entry in load_rubric() if entry.part == "layers"}
    assert float(by_sid["1815"]["score"]) == sum(e.points for e in layers.values())
    assert by_sid["1815"]["status"] == "ok"
    assert float(by_sid["1815"]["1.1 conv_forward"]) == layers["1.1"].points
    # The group submission gives both members the same row of scores.
    assert by_sid["1912"]["score"] == by_sid["1906"]["score"] == "0.0"
    assert by_sid["1912"]["submission"] == by_sid["1906"]["submission"] == "submission_1002"
    # A submission that does not import still gets a graded row; a missing folder is reported.
    assert float(by_sid["3"]["score"]) == 0 and by_sid["3"]["status"] == "ok"
    assert by_sid["4"]["score"] == "" and "no folder submission_1004" in by_sid["4"]["status"]
    assert (tmp_path / "out" / "grades_results" / "submission_1003.json").is_file()
    png = tmp_path / "out" / "grades_histogram.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "graded 3 of 4 submissions" in capsys.readouterr().out
