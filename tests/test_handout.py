"""The handout generator: stub rules, notebook stripping, the build and its
invariants (sync, leaks, stubs raise, imports, notebooks run)."""
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.authoring import handout, handout_checks, markers, shipping
from autograder.layout import STAFF_ONLY, STUDENTS_NEVER
from autograder.authoring.handout import HandoutError
from autograder.authoring.markers import Location, MarkerError, stub_notebook, stub_source
from autograder.provided import PROVIDED_FILES

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The project's venv has autograder installed in editable mode, and that
# install's import finder answers for any autograder.* module missing from an
# unzipped handout with the repository's file. A student has no such install,
# so the unzipped copy is run with that finder removed.
AS_A_STUDENT = [PYTHON, "-c", "import runpy, sys; "
                "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in str(f)]; "
                "runpy.run_module('autograder', run_name='__main__', alter_sys=True)"]


def stub(text, file="f.py"):
    return stub_source(textwrap.dedent(text), Location(file, file))


# ----------------------------------------------------------------------------
# Stub rules
# ----------------------------------------------------------------------------

def test_region_becomes_default_todo_and_raise_at_its_indentation():
    result = stub('''\
        def area(w, h):
            """Area of a rectangle."""
            # BEGIN SOLUTION
            product = w * h
            # END SOLUTION
            return product
        ''')
    assert result.text == textwrap.dedent('''\
        def area(w, h):
            """Area of a rectangle."""
            # TODO: replace the line below with your code.
            raise NotImplementedError("area: not implemented yet")
            return product
        ''')
    assert result.functions == ["area"]
    assert result.stub_messages == ["area: not implemented yet"]
    assert result.secrets == [("product = w * h", "f.py:4")]


def test_prompt_block_becomes_the_todo_and_its_markers_disappear():
    result = stub('''\
        def scale(x):
            # BEGIN PROMPT
            # Multiply x by two,
            # without a loop.
            # END PROMPT
            # BEGIN SOLUTION
            return x * 2.0
            # END SOLUTION
        ''')
    assert result.text == textwrap.dedent('''\
        def scale(x):
            # TODO: Multiply x by two,
            # without a loop.
            raise NotImplementedError("scale: not implemented yet")
        ''')


def test_region_in_a_nested_block_of_a_method_keeps_that_indentation():
    result = stub('''\
        class Net:
            def forward(self, x):
                if x:
                    # BEGIN SOLUTION
                    y = x + 1
                    # END SOLUTION
                return y
        ''')
    assert result.text == textwrap.dedent('''\
        class Net:
            def forward(self, x):
                if x:
                    # TODO: replace the line below with your code.
                    raise NotImplementedError("Net.forward: not implemented yet")
                return y
        ''')
    assert result.functions == ["Net.forward"]


def test_module_level_region_names_the_file():
    result = stub('''\
        import math
        # BEGIN SOLUTION
        radius = math.sqrt(2.0)
        # END SOLUTION
        ''', file="circle.py")
    assert result.text == ('import math\n'
                           '# TODO: replace the line below with your code.\n'
                           'raise NotImplementedError("circle.py: not implemented yet")\n')
    assert result.functions == ["circle.py"]


@pytest.mark.parametrize("line, expected", [
    ("x = 3 * y  # SOLUTION", "x = ..."),
    ("    total += f(a=1)  # SOLUTION", "    total += ..."),
    ("d[key(a=1)] = 2 * v  # SOLUTION", "d[key(a=1)] = ..."),
    ("rate: float = 0.5 * base  # SOLUTION", "rate: float = ..."),
    ("ok = a == b  # SOLUTION", "ok = ..."),
])
def test_solution_line_keeps_its_left_hand_side(line, expected):
    assert stub_source(line + "\n", Location("f.py", "f.py")).text == expected + "\n"


def test_unmarked_lines_are_copied_byte_for_byte_including_crlf():
    text = ('def f(x):\r\n\tspaced   = 1   \r\n'
            '\t# BEGIN SOLUTION\r\n\treturn x * 2\r\n\t# END SOLUTION\r\n'
            '# a comment mentioning solutions in prose\r\nlast = 2 * 3  # SOLUTION')
    result = stub_source(text, Location("f.py", "f.py"))
    assert result.text == ('def f(x):\r\n\tspaced   = 1   \r\n'
                           '\t# TODO: replace the line below with your code.\r\n'
                           '\traise NotImplementedError("f: not implemented yet")\r\n'
                           '# a comment mentioning solutions in prose\r\nlast = ...')
    plain = "x = 1\n\n  # note\n"
    assert stub_source(plain, Location("g.py", "g.py")).text == plain


def test_several_regions_in_one_function_each_get_a_stub():
    result = stub('''\
        def f():
            # BEGIN SOLUTION
            a = compute(1)
            # END SOLUTION
            b = 2
            # BEGIN SOLUTION
            c = compute(a + b)
            # END SOLUTION
        ''')
    assert result.text.count('raise NotImplementedError("f: not implemented yet")') == 2
    assert "    b = 2\n" in result.text
    assert result.functions == ["f", "f"]


@pytest.mark.parametrize("source, line, message", [
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", 2, "is never closed by '# END SOLUTION'"),
    ("# BEGIN SOLUTION\nx = 1\n# BEGIN SOLUTION\n# END SOLUTION\n", 3, "nested '# BEGIN SOLUTION'"),
    ("x = 1\n# END SOLUTION\n", 2, "'# END SOLUTION' without a '# BEGIN SOLUTION'"),
    ("x = 1\n# END PROMPT\n", 2, "'# END PROMPT' without a '# BEGIN PROMPT'"),
    ("# BEGIN PROMPT\n# hint\n", 1, "'# BEGIN PROMPT' is never closed by '# END PROMPT'"),
    ("# BEGIN PROMPT\n# hint\n# END PROMPT\nx = 1\n", 1, "must be followed directly by '# BEGIN SOLUTION'"),
    ("# BEGIN PROMPT\nx = 1\n# END PROMPT\n", 2, "a PROMPT block holds comment lines only"),
    ("# BEGIN PROMPT\n# BEGIN SOLUTION\n", 2, "inside the PROMPT block opened at line 1"),
    ("# BEGIN SOLUTION\n# BEGIN PROMPT\n", 2, "inside a solution region"),
    ("x = 1\n  # begin solution\n", 2, "malformed marker '# begin solution'"),
    ("x = 1\n# END SOLUTIONS\n", 2, "malformed marker '# END SOLUTIONS'"),
    ("x = 1\nok == 3  # SOLUTION\n", 2, "must be an assignment"),
    ("x = 1\ny = 2  # solution\n", 2, "a solution line ends in exactly '# SOLUTION'"),
])
def test_bad_markers_name_file_line_and_problem(source, line, message):
    with pytest.raises(MarkerError) as caught:
        stub_source(source, Location("dir/bad.py", "bad.py"))
    assert str(caught.value).startswith(f"dir/bad.py:{line}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize("line, trivial", [
    ("", True), ("# comment", True), ("return out, cache", True), (")", True),
    ("x_hat, gamma, inv_std = cache", True), ("else:", True), ("mask = None", True),
    ("out = x * mask", False), ("return self.layers(x)", False), ("N, C = x.shape", False),
    ("dx = dout[:, 1:]", False), ("mode = cache['mode']", False),
])
def test_trivial_lines_rule(line, trivial):
    assert markers.is_trivial(line) is trivial


# ----------------------------------------------------------------------------
# Notebooks
# ----------------------------------------------------------------------------

def make_notebook(cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "widgets": {"state": "secret"}, "celltoolbar": "Tags"}
    nb.cells = cells
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"c{index}"
    return nb


def code(source, **metadata):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata.update(metadata)
    return cell


def markdown(source, **metadata):
    cell = nbformat.v4.new_markdown_cell(source)
    cell.metadata.update(metadata)
    return cell


def test_notebook_is_stubbed_stripped_and_valid():
    run_cell = code("%matplotlib inline\ndef double(x):\n    # BEGIN SOLUTION\n    return x * 2.0\n"
                    "    # END SOLUTION\nprint(double(1))",
                    tags=["keep-me"], execution={"iopub.execute_input": "2024-01-01"},
                    nbgrader={"solution": True}, scrolled=True)
    run_cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2.0\n")]
    run_cell.execution_count = 7
    nb = make_notebook([
        markdown("# Doubling\nWhy double?"),
        run_cell,
        markdown("Because it is **twice** as much.", tags=["solution"]),
        code("answer = 6 * 7  # SOLUTION"),
    ])
    result = stub_notebook(nbformat.writes(nb), "dir/demo.ipynb", "demo.ipynb")

    out = nbformat.reads(result.text, as_version=4)
    nbformat.validate(out)
    assert out.metadata == {"kernelspec": nb.metadata["kernelspec"]}
    assert out.cells[0].source == "# Doubling\nWhy double?"
    assert out.cells[1].source == ('%matplotlib inline\ndef double(x):\n'
                                   '    # TODO: replace the line below with your code.\n'
                                   '    raise NotImplementedError("double: not implemented yet")\n'
                                   'print(double(1))')
    assert out.cells[1].outputs == [] and out.cells[1].execution_count is None
    assert out.cells[1].metadata == {"tags": ["keep-me"]}
    assert out.cells[2].source == markers.ANSWER_PLACEHOLDER
    assert out.cells[2].metadata == {"tags": [markers.ANSWER_TAG]}, "the grader finds answers by this tag"
    assert out.cells[3].source == "answer = ..."
    assert [cell.id for cell in out.cells] == ["c0", "c1", "c2", "c3"]
    assert result.stub_messages == ["double: not implemented yet"]
    assert {line for line, _ in result.secrets} == {
        "return x * 2.0", "Because it is **twice** as much.", "answer = 6 * 7"}
    # Stable JSON: what nbformat writes back is the same text.
    assert nbformat.writes(out) + "\n" == result.text


def test_notebook_cells_without_ids_get_stable_ids():
    raw = {"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [],
                      "execution_count": None}],
           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    first = stub_notebook(json.dumps(raw), "a.ipynb", "a.ipynb").text
    assert first == stub_notebook(json.dumps(raw), "a.ipynb", "a.ipynb").text
    assert json.loads(first)["cells"][0]["id"] == "cell-0"


@pytest.mark.parametrize("cells, message", [
    ([code("x = 1"), markdown("Some text\n# BEGIN SOLUTION\nanswer")],
     "dir/demo.ipynb: cell index 1, line 2: marker '# BEGIN SOLUTION' in a non-code cell"),
    ([markdown("intro"), code("x = 1\n# END SOLUTION")],
     "dir/demo.ipynb: cell index 1, line 2: '# END SOLUTION' without a '# BEGIN SOLUTION'"),
    ([code("# BEGIN SOLUTION\nx = 1"), code("# END SOLUTION")],
     "dir/demo.ipynb: cell index 0, line 1: '# BEGIN SOLUTION' is never closed"),
    ([code("x = 6 * 7", tags=["solution"])],
     "dir/demo.ipynb: cell index 0: a code cell tagged 'solution'"),
])
def test_notebook_marker_errors_name_cell_and_line(cells, message):
    with pytest.raises(MarkerError) as caught:
        stub_notebook(nbformat.writes(make_notebook(cells)), "dir/demo.ipynb", "demo.ipynb")
    assert str(caught.value).startswith(message)


# ----------------------------------------------------------------------------
# Building a small handout
# ----------------------------------------------------------------------------

MINI_LAYERS = '''\
"""Mini layers."""
import numpy as np


def dropout_forward(x, dropout_param):
    """Inverted dropout."""
    # BEGIN PROMPT
    # Draw a keep mask with probability p and scale by 1/p.
    # END PROMPT
    # BEGIN SOLUTION
    rng = np.random.default_rng(dropout_param.get('seed'))
    mask = (rng.random(x.shape) < dropout_param['p']) / dropout_param['p']
    # END SOLUTION
    return x * mask, mask


def dropout_backward(dout, cache):
    """Backward pass of dropout_forward."""
    # BEGIN SOLUTION
    dx = dout * cache
    # END SOLUTION
    return dx
'''

MINI_MODELS = '''\
"""Mini models."""
from torch import nn


class FCNet(nn.Module):
    def __init__(self):
        super().__init__()
        # BEGIN SOLUTION
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
        # END SOLUTION

    def forward(self, x):
        out = self.layers(x)  # SOLUTION
        return out
'''

MINI_RUBRIC = """\
tests:
  - {number: "1.2", name: "dropout backward", part: layers, points: 20, tags: [dropout_backward]}
  - {number: "1.1", name: "dropout | forward", part: layers, points: 40, tags: [dropout_forward]}
  - {number: "2.1", name: "FCNet accuracy", part: cnn, points: 40, tags: [FCNet]}
"""


@pytest.fixture
def tree(tmp_path):
    """A small solutions/ and grader folder, and where their handout goes."""
    solutions = tmp_path / "solutions"
    cnn = solutions / "cnn"
    (cnn / "data").mkdir(parents=True)
    (cnn / "__pycache__").mkdir()
    (solutions / "README.md").write_text("# Mini\n\n## Rubric\n\n<!-- RUBRIC TABLE -->\n\nGood luck.\n")
    (cnn / "layers.py").write_text(MINI_LAYERS)
    (cnn / "models.py").write_text(MINI_MODELS)
    (cnn / "data.py").write_bytes(b'"""Data."""\r\nFOLDER = "cifar"\r\n')
    (cnn / "train.py").write_text('"""Train."""\nimport data\n')
    (cnn / "gradient_check.py").write_text('"""Gradient check."""\n')
    (cnn / "checks.py").write_text('"""Checks."""\n')
    nb = make_notebook([markdown("Try dropout."),
                        code("import layers\nkeep = 0.8 * 1.0  # SOLUTION\n"
                             "# BEGIN SOLUTION\nshown = layers.dropout_forward\n# END SOLUTION")])
    (cnn / "dropout.ipynb").write_text(nbformat.writes(nb))
    for never in ("convnet.pt", "fcnet_curve.json", "curves.png", "fcnet_curve.json.tmp",
                  "data/data_batch_1", "__pycache__/layers.cpython-311.pyc"):
        (cnn / never).write_bytes(b"not for students")

    grader = tmp_path / "grader"
    for path, text in {"__init__.py": "", "cli.py": "COMMANDS = {}\n", "rubric.yaml": MINI_RUBRIC,
                       "cases/public/checks.py": "CHECKS = ['dropout_forward']\n",
                       "cases/hidden/secret_checks.py": "HIDDEN = 1\n",
                       "authoring/handout.py": "", "staff/regrade.py": "", "bench/box.py": "",
                       "gradescope/setup.sh": "",
                       "__pycache__/cli.cpython-311.pyc": ""}.items():
        (grader / path).parent.mkdir(parents=True, exist_ok=True)
        (grader / path).write_text(text)
    return {"solutions": solutions, "grader": grader, "assignments": tmp_path / "out" / "assignments",
            "zip": tmp_path / "out" / "dist" / "handout.zip"}


def build(tree, **changes):
    paths = {**tree, **changes}
    return handout.build(paths["solutions"], paths["assignments"], paths["zip"], grader_dir=paths["grader"])


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_build_writes_exactly_the_handout_files(tree):
    result = build(tree)
    assert sorted(snapshot(tree["assignments"])) == [
        "README.md", "cnn/checks.py", "cnn/data.py", "cnn/dropout.ipynb", "cnn/gradient_check.py",
        "cnn/layers.py", "cnn/models.py", "cnn/train.py"]
    written = snapshot(tree["assignments"])
    assert written["cnn/data.py"] == (tree["solutions"] / "cnn/data.py").read_bytes()
    assert b'raise NotImplementedError("dropout_forward: not implemented yet")' in written["cnn/layers.py"]
    assert b"        out = ...\n        return out\n" in written["cnn/models.py"]
    assert result.student_functions == {"layers.py": ["dropout_forward", "dropout_backward"],
                                        "models.py": ["FCNet.__init__"]}
    assert result.notebook_stubs == {"dropout.ipynb": {"dropout.ipynb: not implemented yet"}}


def test_rubric_table_is_rendered_from_the_rubric_file(tree):
    build(tree)
    readme = (tree["assignments"] / "README.md").read_text()
    assert "<!-- RUBRIC TABLE -->" not in readme
    assert readme.endswith("\n\nGood luck.\n")
    layers_table = readme[readme.index("**Part 1"):readme.index("**Part 2")]
    assert "numpy layers (layers.py): 60 points" in layers_table
    # In the rubric file's order; a '|' in a name is escaped.
    assert layers_table.index("| 1.2 | dropout backward | `dropout_backward` | 20 |") < \
        layers_table.index("| 1.1 | dropout \\| forward | `dropout_forward` | 40 |")
    assert "| 2.1 | FCNet accuracy | `FCNet` | 40 |" in readme
    assert "**Total: 100 points**" in readme


@pytest.mark.parametrize("rubric, message", [
    (None, "rubric.yaml (read by autograder/authoring/handout_rubric.py render_rubric): missing"),
    ("tests: [", "not valid YAML"),
    ("tests: []\n", "expected a mapping with a non-empty list 'tests'"),
    ('tests:\n  - {number: 1, name: x, part: layers, points: 2}\n', "tests[0] must have 'number' (a string)"),
    ('tests:\n  - {number: "1", name: x, part: other, points: 2}\n', "'part' (one of layers, cnn)"),
])
def test_bad_rubric_file_stops_the_build(tree, rubric, message):
    rubric_path = tree["grader"] / "rubric.yaml"
    if rubric is None:
        rubric_path.unlink()
    else:
        rubric_path.write_text(rubric)
    with pytest.raises(HandoutError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        build(tree)


def test_zip_holds_the_handout_and_the_public_grader_only(tree):
    build(tree)
    with zipfile.ZipFile(tree["zip"]) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        members = {name: archive.read(name) for name in names}
    folder = handout.ZIP_FOLDER
    assert names == sorted(names)
    assert names == sorted(
        [f"{folder}/{path}" for path in snapshot(tree["assignments"])]
        + [f"{folder}/requirements.txt", f"{folder}/autograder/__init__.py", f"{folder}/autograder/cli.py",
           f"{folder}/autograder/rubric.yaml", f"{folder}/autograder/cases/public/checks.py"]
        + [f"{folder}/autograder/provided/{name}" for name in PROVIDED_FILES])
    for path, data in snapshot(tree["assignments"]).items():
        assert members[f"{folder}/{path}"] == data
    # The grader's own copy of the provided code is the one the student gets.
    for name in PROVIDED_FILES:
        assert members[f"{folder}/autograder/provided/{name}"] == members[f"{folder}/cnn/{name}"]
    assert all(info.date_time == shipping.ZIP_DATE and info.external_attr >> 16 == 0o100644
               for info in infos)
    requirements = members[f"{folder}/requirements.txt"].decode().splitlines()
    assert "torch==2.13.0" in requirements and "numpy" in requirements


def test_two_builds_are_byte_identical(tree, tmp_path):
    build(tree)
    again = {"assignments": tmp_path / "again" / "assignments", "zip": tmp_path / "again" / "handout.zip"}
    build(tree, **again)
    assert snapshot(tree["assignments"]) == snapshot(again["assignments"])
    assert tree["zip"].read_bytes() == again["zip"].read_bytes()


def test_rebuild_replaces_old_files_but_keeps_downloaded_data(tree):
    build(tree)
    (tree["assignments"] / "cnn" / "stale.py").write_text("old\n")
    (tree["assignments"] / "cnn" / "data").mkdir()
    (tree["assignments"] / "cnn" / "data" / "test_batch").write_text("pixels")
    build(tree)
    assert not (tree["assignments"] / "cnn" / "stale.py").exists()
    assert (tree["assignments"] / "cnn" / "data" / "test_batch").read_text() == "pixels"
    assert sorted(p.name for p in tree["assignments"].parent.iterdir()) == ["assignments", "dist"]


@pytest.mark.parametrize("breakage, message", [
    (lambda cnn: (cnn / "layers.py").write_text(MINI_LAYERS.replace("    # END SOLUTION\n    return dx", "    return dx")),
     "layers.py:19: '# BEGIN SOLUTION' is never closed by '# END SOLUTION'"),
    (lambda cnn: (cnn / "notes.txt").write_text("TA notes"),
     "cnn/notes.txt: not on the handout's lists"),
    (lambda cnn: (cnn / "train.py").unlink(),
     "cnn/train.py: missing (autograder/authoring/handout_plan.py lists it"),
    (lambda cnn: (cnn / "dropout.ipynb").write_text(nbformat.writes(make_notebook([markdown("# END PROMPT")]))),
     "dropout.ipynb: cell index 0, line 1: marker '# END PROMPT' in a non-code cell"),
])
def test_a_failing_build_leaves_the_previous_handout_untouched(tree, breakage, message):
    build(tree)
    before, zip_before = snapshot(tree["assignments"]), tree["zip"].read_bytes()
    breakage(tree["solutions"] / "cnn")
    with pytest.raises(HandoutError) as caught:
        build(tree)
    assert message in str(caught.value)
    assert snapshot(tree["assignments"]) == before
    assert tree["zip"].read_bytes() == zip_before
    assert sorted(p.name for p in tree["assignments"].parent.iterdir()) == ["assignments", "dist"]


def test_leftover_of_an_interrupted_build_stops_the_next_one(tree):
    build(tree)
    leftover = tree["assignments"].with_name(".assignments-old.tmp")
    (leftover / "cnn" / "data").mkdir(parents=True)
    with pytest.raises(HandoutError, match="left by an interrupted build"):
        build(tree)
    assert (leftover / "cnn" / "data").is_dir()


def test_errors_of_several_files_are_reported_together(tree):
    (tree["solutions"] / "cnn" / "layers.py").write_text("# END SOLUTION\n")
    (tree["solutions"] / "cnn" / "models.py").write_text("x = 1\n# BEGIN SOLUTION\n")
    with pytest.raises(HandoutError) as caught:
        build(tree)
    assert "layers.py:1: '# END SOLUTION' without" in str(caught.value)
    assert "models.py:2: '# BEGIN SOLUTION' is never closed" in str(caught.value)


# ----------------------------------------------------------------------------
# Leak check
# ----------------------------------------------------------------------------

def test_leak_check_stops_a_build_whose_grader_holds_a_solution_line(tree):
    (tree["grader"] / "cases" / "public" / "reference.py").write_text(
        "def dropout_backward(dout, cache):\n    dx = dout * cache\n    return dx\n")
    with pytest.raises(HandoutError) as caught:
        build(tree)
    message = str(caught.value)
    assert "solution lines would leak" in message
    assert "autograder/cases/public/reference.py: 'dx = dout * cache'" in message
    assert "layers.py:20)" in message  # where the line comes from
    assert not tree["assignments"].exists() and not tree["zip"].exists()


def test_leak_check_finds_a_planted_line_in_files_and_notebooks(tree):
    result = handout.generate(tree["solutions"], tree["grader"])
    assert "dx = dout * cache" in result.secrets
    assert "shown = layers.dropout_forward" in result.secrets
    assert "keep = 0.8 * 1.0" in result.secrets
    assert handout.find_leaks(result.secrets, handout.texts(result.files)) == []
    planted = dict(result.files)
    planted["cnn/train.py"] += b"    dx = dout * cache  # copied\n"
    nb = nbformat.reads(planted["cnn/dropout.ipynb"].decode(), as_version=4)
    nb.cells.append(code('print("hi"); shown = layers.dropout_forward'))
    planted["cnn/dropout.ipynb"] = nbformat.writes(nb).encode()
    leaks = handout.find_leaks(result.secrets, handout.texts(planted))
    assert sorted(leak.split(":")[0] for leak in leaks) == ["cnn/dropout.ipynb", "cnn/train.py"]
    # A longer name containing a secret is not that secret.
    assert handout.find_leaks({"out = x * 2": "f.py:1"}, {"g.py": "dout = x * 2\n"}) == []


def test_a_secret_the_solutions_also_publish_is_not_a_leak(tree):
    (tree["solutions"] / "cnn" / "gradient_check.py").write_text("dx = dout * cache  # shown on purpose\n")
    result = handout.generate(tree["solutions"], tree["grader"])
    assert "dx = dout * cache" not in result.secrets
    assert "rng = np.random.default_rng(dropout_param.get('seed'))" in result.secrets


def test_a_line_listed_as_published_is_not_a_leak(tree, monkeypatch):
    monkeypatch.setitem(handout.PUBLISHED_LINES, "dx = dout * cache", "quoted by a test")
    result = handout.generate(tree["solutions"], tree["grader"])
    assert "dx = dout * cache" not in result.secrets
    assert "keep = 0.8 * 1.0" in result.secrets


# ----------------------------------------------------------------------------
# Invariants of the committed handout
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_handout():
    return handout.generate(REPO / "solutions")


def test_committed_assignments_are_in_sync_with_solutions(real_handout):
    assert handout.check_sync(real_handout, REPO / "assignments") == []


def test_sync_check_reports_each_difference(real_handout, tmp_path):
    copy = tmp_path / "assignments"
    shutil.copytree(REPO / "assignments", copy, ignore=shutil.ignore_patterns("data", "__pycache__"))
    (copy / "cnn" / "models.py").write_text("edited by hand\n")
    (copy / "cnn" / "train.py").unlink()
    (copy / "cnn" / "extra.py").write_text("")
    (copy / "cnn" / "__pycache__").mkdir()
    (copy / "cnn" / "__pycache__" / "x.pyc").write_text("")
    problems = handout.check_sync(real_handout, copy)
    assert problems == ["not generated from solutions/ (remove it): cnn/extra.py",
                        "differs: cnn/models.py", "missing: cnn/train.py",
                        "run `make handout` (python -m autograder handout) to regenerate"]


def test_committed_handout_and_zip_leak_no_solution_line(real_handout):
    assert "out = np.einsum('ncijak,fcak->nfij', windows, w, optimize=True)" in real_handout.secrets
    assert len(real_handout.secrets) > 50
    assert handout.find_leaks(real_handout.secrets, handout.tree_texts(REPO / "assignments")) == []
    archive = handout.zip_bytes(real_handout)
    assert handout.find_leaks(real_handout.secrets, handout.zip_texts(archive)) == []
    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    excluded = [f"{handout.ZIP_FOLDER}/autograder/{path}" for path in STAFF_ONLY + STUDENTS_NEVER]
    assert not [n for n in names if n.startswith(tuple(excluded)) or "__pycache__" in n]
    assert f"{handout.ZIP_FOLDER}/autograder/grade.py" in names


def test_committed_stubs_raise_and_every_module_imports(real_handout):
    assert set(real_handout.student_functions) == {"layers.py", "models.py"}
    assert handout_checks.check_stubs(REPO / "assignments" / "cnn", REPO / "solutions" / "cnn",
                                      real_handout.student_functions) == []


@pytest.fixture
def assignment_copy(tmp_path):
    copy = tmp_path / "cnn"
    shutil.copytree(REPO / "assignments" / "cnn", copy, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return copy


def test_stub_check_reports_functions_that_do_not_raise(real_handout, assignment_copy):
    copy = assignment_copy
    shutil.copyfile(REPO / "solutions" / "cnn" / "models.py", copy / "models.py")
    problems = handout_checks.check_stubs(copy, REPO / "solutions" / "cnn", real_handout.student_functions)
    # __init__ now returns; forward, called on a model whose __init__ was skipped, fails differently.
    assert problems == [
        "cnn/models.py: FCNet.__init__ returned instead of raising NotImplementedError",
        "cnn/models.py: FCNet.forward raised AttributeError: 'FCNet' object has no attribute "
        "'layers' instead of NotImplementedError",
        "cnn/models.py: ConvNet.__init__ returned instead of raising NotImplementedError",
        "cnn/models.py: ConvNet.forward raised AttributeError: 'ConvNet' object has no attribute "
        "'classifier' instead of NotImplementedError"]


def test_stub_check_reports_modules_that_do_not_import(real_handout, assignment_copy):
    copy = assignment_copy
    (copy / "data.py").write_text("import nowhere_to_be_found\n")
    problems = handout_checks.check_stubs(copy, REPO / "solutions" / "cnn", real_handout.student_functions)
    assert problems == [f"cnn/{name} does not import: ModuleNotFoundError: "
                        "No module named 'nowhere_to_be_found'" for name in ("data.py", "train.py")]


def test_unzipped_handout_has_no_build_command(real_handout, tmp_path):
    zipfile.ZipFile(io.BytesIO(handout.zip_bytes(real_handout))).extractall(tmp_path)
    folder = tmp_path / handout.ZIP_FOLDER
    done = subprocess.run([*AS_A_STUDENT, "handout"], cwd=folder, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "'handout' is not available in this copy of the autograder" in done.stderr


def test_notebook_check_allows_only_the_notebooks_own_stubs(tmp_path):
    """run_notebooks swaps in the reference layers.py and tolerates just the
    NotImplementedError of stubs generated from the notebook itself."""
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "layers.py").write_text("def twice(x):\n    return 2 * x\n")
    (solutions / "models.py").write_text("")
    assignment = tmp_path / "cnn"
    assignment.mkdir()
    (assignment / "layers.py").write_text('def twice(x):\n    raise NotImplementedError("twice: not implemented yet")\n')
    (assignment / "models.py").write_text("")
    source_nb = make_notebook([
        code("import os, layers\nassert os.environ['CNN_QUICK'] == '1'\nprint(layers.twice(2))"),
        code("def square(x):\n    # BEGIN SOLUTION\n    return x * x\n    # END SOLUTION"),
        code("square(3)"),
        code("raise ValueError('broken cell')"),
        code("print(undefined_after_the_broken_cell)"),
    ])
    stubbed = stub_notebook(nbformat.writes(source_nb), "demo.ipynb", "demo.ipynb")
    (assignment / "demo.ipynb").write_text(stubbed.text)
    problems = handout_checks.run_notebooks(assignment, solutions, {"demo.ipynb": set(stubbed.stub_messages)})
    assert problems == ["demo.ipynb: cell index 3 raised ValueError: broken cell (and 1 later cells failed)"]


@pytest.mark.slow
@pytest.mark.data
def test_handout_notebooks_run_against_the_reference_code(real_handout):
    assert real_handout.notebook_stubs, "solutions/cnn has no notebooks"
    if not os.environ.get("CIFAR10_DIR"):
        pytest.fail("CIFAR10_DIR is not set: the notebooks train on the real CIFAR-10")
    assert handout_checks.run_notebooks(REPO / "assignments" / "cnn", REPO / "solutions" / "cnn",
                                        real_handout.notebook_stubs) == []


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

@pytest.mark.slow
def test_command_builds_then_check_passes_and_catches_an_edit(tree, capsys):
    common = ["--solutions", str(tree["solutions"]), "--assignments", str(tree["assignments"]),
              "--zip", str(tree["zip"])]
    (tree["solutions"] / "README.md").write_text("# Mini\n")  # no rubric table: the real grader has its own
    from autograder.cli import main
    assert main(["handout", *common]) == 0
    assert "leak check: none of" in capsys.readouterr().out
    assert main(["handout", "--check", "--skip-notebooks", *common]) == 0
    (tree["assignments"] / "cnn" / "layers.py").write_text("edited\n")
    assert main(["handout", "--check", "--skip-notebooks", *common]) == 1
    out = capsys.readouterr().out
    assert "FAIL: in sync with solutions/\n  differs: cnn/layers.py" in out


@pytest.mark.slow
def test_unzipped_handout_grades_itself_in_public_mode(real_handout, tmp_path):
    """In the unzipped folder, `python -m autograder grade .` finds cnn/ and runs
    the public checks: nothing for the stubs, everything for the reference layers."""
    zipfile.ZipFile(io.BytesIO(handout.zip_bytes(real_handout))).extractall(tmp_path)
    folder = tmp_path / handout.ZIP_FOLDER
    assert not (folder / "autograder" / "cases" / "hidden").exists()

    def grade():
        results = tmp_path / "results.json"
        done = subprocess.run([*AS_A_STUDENT, "grade", ".", "--part", "layers", "--results", str(results)],
                              cwd=folder, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return {test["number"]: (test["score"], test["max_score"])
                for test in json.loads(results.read_text())["tests"]}

    stub_scores = grade()
    assert stub_scores and all(score == 0 for score, _ in stub_scores.values())
    shutil.copyfile(REPO / "solutions" / "cnn" / "layers.py", folder / "cnn" / "layers.py")
    assert all(score == max_score for score, max_score in grade().values())


@pytest.mark.slow
@pytest.mark.data
def test_unzipped_handout_with_data_where_data_py_puts_it_grades_the_reference_fully(
        real_handout, tmp_path, cifar10_dir):
    """The student README, literally: unzip the handout, CIFAR-10 in cnn/data/
    (where `python data.py` puts it; linked here instead of downloaded), no
    CIFAR10_DIR, the reference files in cnn/, `python -m autograder grade .`:
    every test at full marks, both parts."""
    zipfile.ZipFile(io.BytesIO(handout.zip_bytes(real_handout))).extractall(tmp_path)
    folder = tmp_path / handout.ZIP_FOLDER
    (folder / "cnn" / "data").mkdir()
    os.symlink(cifar10_dir, folder / "cnn" / "data" / "cifar-10-batches-py")
    for name in ("layers.py", "models.py", "convnet.pt", "fcnet.pt"):
        shutil.copyfile(REPO / "solutions" / "cnn" / name, folder / "cnn" / name)
    env = {key: value for key, value in os.environ.items() if key != "CIFAR10_DIR"}
    results = tmp_path / "results.json"
    done = subprocess.run([*AS_A_STUDENT, "grade", ".", "--results", str(results)], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    tests = json.loads(results.read_text())["tests"]
    assert {t["number"][0] for t in tests} >= {"1", "5", "6", "7"}, "both parts graded"
    assert [t["name"] for t in tests if t["score"] < t["max_score"]] == [], done.stdout
