"""Bulk regrade over a Gradescope submissions export (issue #6): parallel, one
row per submitter, broken submissions reported without stopping the batch,
a histogram PNG."""
import csv
import json
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


# -- student-controlled text in staff outputs (issue #24) ---------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
HOSTILE_NAMES = ['=HYPERLINK("http://example.invalid/","click")', "+1", "-2+3", "@SUM(A1)", "\t=1+1",
                 "\r=1+1", "$\\alpha$ \x1b[31mred\x1b[0m", '<script>alert("x")</script>', "Ada;=1+1"]
HOSTILE_EMAILS = ["=1+1@x.edu", "+a@x.edu", "-b@x.edu", "@c.x.edu"]
# The first feedback line of a raised exception carries its message; "likely mistake: " puts the rest
# in the report's table of named mistakes.
RAISING_CONV = '''
def conv_forward(x, w, b, conv_param):
    raise ValueError('=HYPERLINK("http://example.invalid/","x") likely mistake: <img src=x onerror=alert(1)> $\\\\frac{$')
'''


def hostile_export(root):
    import yaml

    export = root / "export"
    (export / "submission_1").mkdir(parents=True)
    shutil.copy(REFERENCE_LAYERS, export / "submission_1" / "layers.py")
    (export / "submission_2").mkdir()
    (export / "submission_2" / "layers.py").write_text(REFERENCE_LAYERS.read_text() + RAISING_CONV)
    people = [{":name": name, ":sid": f"-{index}" if index % 2 else str(100 + index),
               ":email": HOSTILE_EMAILS[index % len(HOSTILE_EMAILS)]} for index, name in enumerate(HOSTILE_NAMES)]
    records = {"submission_1": {":submitters": people, ":score": "18:-0.5e0"},
               "submission_2": {":submitters": [{":name": "@Raiser", ":sid": "=2", ":email": "-r@x.edu"}]},
               "submission_\x1b[2J=gone": {":submitters": [{":name": "-gone", ":sid": "9", ":email": "g@x.edu"}]}}
    text = yaml.safe_dump(records, allow_unicode=True).replace("':score': '", "':score': !ruby/object:BigDecimal '")
    (export / METADATA_FILE).write_text(text)
    return export


def test_csv_cells_are_text_a_spreadsheet_never_runs_and_numbers_stay_numbers():
    from autograder.staff.safe_text import csv_cell, html_text, printable

    for hostile in HOSTILE_NAMES[:6] + ["\n=1", "\uff1d1+1"]:
        assert csv_cell(hostile) == "'" + hostile
    assert csv_cell("Ada Lovelace") == "Ada Lovelace" and csv_cell("1815") == "1815" and csv_cell(None) == ""
    assert csv_cell(-0.5) == -0.5 and csv_cell(0) == 0 and csv_cell("-0.5") == "'-0.5"
    assert csv_cell(True) == "True"
    assert csv_cell("\x1b[31m=1") == "\\x1b[31m=1"
    assert printable("a\x1b[2J\r\nb\u202e") == "a\\x1b[2J\\x0d\\x0ab\\u202e"
    assert html_text('<a href="x">\x07') == "&lt;a href=&quot;x&quot;&gt;\\x07"


def test_a_class_plot_label_is_plain_text():
    from autograder.staff import report

    png = report.histogram_png([1, 2], 2, (0, 3), "$\\frac{$", "$\\notacommand$ \x1b[31m")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_hostile_export_regrades_into_a_csv_of_text_and_numbers_and_an_escaped_report(tmp_path, capsys):
    export = hostile_export(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["regrade", str(export), "--jobs", "2", "--csv", str(out / "grades.csv"), "--part", "layers",
                     "--time-budget", "120"]) == 0
    console = capsys.readouterr().out
    assert "\x1b" not in console and "submission_\\x1b[2J=gone: no folder" in console
    raw = (out / "grades.csv").read_text()
    with open(out / "grades.csv", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    # The real feedback carries the message: the exception did reach the grade.
    feedback = json.loads((out / "grades_results" / "submission_2.json").read_text())
    assert feedback["tests"][0]["output"].startswith('0/15 cases correct; raised ValueError: =HYPERLINK(')
    assert len(rows) == len(HOSTILE_NAMES) + 2
    numeric = {"score", "max_score", "gradescope_score", "convnet_accuracy", "fcnet_accuracy", "grading_seconds"}
    numeric |= {column for column in header if column[0].isdigit()}
    for row in rows:
        for column, cell in zip(header, row):
            if column in numeric:
                assert cell == "" or isinstance(float(cell), float), (column, cell)
            else:
                assert not cell.startswith(FORMULA_STARTS), (column, cell)
    by_sid = {row[header.index("sid")]: dict(zip(header, row)) for row in rows}
    for index, name in enumerate(HOSTILE_NAMES):
        row = by_sid[f"'-{index}" if index % 2 else str(100 + index)]
        shown = name.replace("\x1b", "\\x1b")
        assert row["name"] == ("'" + shown if shown.startswith(FORMULA_STARTS) else shown)
        assert row["email"] == "'" + HOSTILE_EMAILS[index % len(HOSTILE_EMAILS)]
    assert by_sid["'=2"]["name"] == "'@Raiser" and by_sid["'=2"]["email"] == "'-r@x.edu"
    assert "\x1b" not in raw and '"Ada;=1+1"' in raw          # quoted: a ";" cannot start a cell
    # Numbers are numbers: unquoted in the file, the grade's own values, a negative one included.
    results = {name: json.loads((out / "grades_results" / f"{name}.json").read_text())
               for name in ("submission_1", "submission_2")}
    tests = [column for column in header if column[0].isdigit()]
    for row in by_sid.values():
        if row["submission"] in results:
            graded = results[row["submission"]]
            assert float(row["score"]) == graded["score"]
            assert [float(row[column]) for column in tests] == [t["score"] for t in graded["tests"]]
            assert float(row["grading_seconds"]) == graded["execution_time"]
    assert by_sid["100"]["gradescope_score"] == "-0.5" and ",-0.5," in raw
    assert float(by_sid["100"]["score"]) > float(by_sid["'=2"]["score"]) >= 0
    assert f',{by_sid["100"]["score"]},' in raw

    page = (out / "report.html").read_text()
    assert "<img src=x" not in page and "<script>" not in page and "\x1b" not in page
    assert "&lt;img src=x onerror=alert(1)&gt; $\\frac{$" in page                # the named mistake, as text
    # submission_1's names, in the table of scores that differ from Gradescope's (-0.5).
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "$\\alpha$ \\x1b[31mred" in page
    assert "<td>submission_\\x1b[2J=gone</td><td>-gone</td>" in page
