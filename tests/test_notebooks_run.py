"""The student notebooks of solutions/cnn and their helper gradient_check.py.

Each notebook is executed top to bottom with nbclient in quick mode
(CNN_QUICK=1), in a temporary copy of solutions/cnn so that nothing in the
tree changes, and must finish without a cell error. The committed notebooks
must be clean (no outputs, valid nbformat v4) and gradient_check.py must
compute what the notebooks rely on.
"""
import json
import os
import re
import shutil
import sys

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import REFERENCE_DIR, import_reference

gradient_check = import_reference("gradient_check")

NOTEBOOKS = ("1_convolution_pooling.ipynb", "2_batchnorm_dropout.ipynb", "3_cifar10_training.ipynb")
# Quick mode runs a whole notebook in well under a minute; a cell that takes
# longer than this means quick mode no longer shrinks the work.
CELL_TIMEOUT = 120
KERNEL_NAME = "cnn-notebook-test"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def notebook_env(tmp_path, monkeypatch):
    """A copy of the reference's Python files to run notebooks in, and an
    environment for the kernel: quick mode, temporary files under tmp_path,
    and a kernel spec that starts this interpreter (a user-level 'python3'
    kernel could point at another Python without the project's packages)."""
    workdir = tmp_path / "cnn"
    workdir.mkdir()
    for source in REFERENCE_DIR.glob("*.py"):
        shutil.copy(source, workdir)
    kernel_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "test kernel", "language": "python"}))
    kernel_tmp = tmp_path / "kernel_tmp"
    kernel_tmp.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("CNN_QUICK", "1")
    monkeypatch.setenv("TMPDIR", str(kernel_tmp))
    return workdir, kernel_tmp


def run_notebook(name, workdir):
    """Execute solutions/cnn/<name> in workdir; fail with the cell's error."""
    shutil.copy(REFERENCE_DIR / name, workdir)
    notebook = nbformat.read(workdir / name, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name=KERNEL_NAME,
                            resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"solutions/cnn/{name} failed in quick mode:\n{ANSI_ESCAPE.sub('', str(error))}",
                    pytrace=False)
    return notebook


def printed_text(notebook):
    return "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs if output.output_type == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS[:2])
def test_layer_notebook_runs(name, notebook_env):
    workdir, _ = notebook_env
    notebook = run_notebook(name, workdir)
    # The checks print one line per comparison; an empty run would print none.
    assert printed_text(notebook).count("relative error") >= 10
    # Each check("function") cell graded it the way Gradescope does (cnn/checks.py), and it passed.
    checked = [cell.source for cell in notebook.cells if cell.source.startswith("check(")]
    assert len(checked) >= 5
    for source in checked:
        for function in re.findall(r'check\("(\w+)"\)', source):
            assert f"{function}: every check passed." in printed_text(notebook), function


@pytest.mark.slow
@pytest.mark.data
def test_training_notebook_runs_in_quick_mode_without_touching_checkpoints(notebook_env):
    if not os.environ.get("CIFAR10_DIR"):
        pytest.fail("3_cifar10_training.ipynb trains on CIFAR-10: set CIFAR10_DIR to the folder "
                    "holding cifar-10-batches-py, e.g. from the repository root "
                    "`export CIFAR10_DIR=$(../shared/tools/cifar10)`, or after `make data` "
                    "`export CIFAR10_DIR=$PWD/solutions/cnn/data`", pytrace=False)
    workdir, kernel_tmp = notebook_env
    notebook = run_notebook("3_cifar10_training.ipynb", workdir)

    printed = printed_text(notebook)
    # The notebook itself reloads both checkpoints from the folder it names here.
    assert f"checkpoints in {kernel_tmp / 'cnn_quick_'}" in printed
    assert "FCNet: test accuracy" in printed and "ConvNet: test accuracy" in printed
    assert any("image/png" in output.get("data", {}) for cell in notebook.cells
               if cell.cell_type == "code" for output in cell.outputs), "no figure was drawn"
    # The last cell, pack(), names what is missing here (the checkpoints went to the
    # temporary folder) and writes no zip.
    assert "pack: NO zip written: a required file is missing" in printed
    assert not (workdir / "submission.zip").exists()
    written_here = sorted(path.name for path in workdir.glob("*.pt"))
    assert not written_here, f"quick mode wrote {written_here} next to the notebook"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_clean(name):
    notebook = nbformat.read(REFERENCE_DIR / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    for index, cell in enumerate(notebook.cells):
        where = f"solutions/cnn/{name}, cell {index}"
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{where}: clear its outputs"
        else:
            assert "# BEGIN SOLUTION" not in cell.source, f"{where}: solution marker outside a code cell"
    tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
    has_code_exercise = any("# BEGIN SOLUTION" in cell.source for cell in notebook.cells)
    has_answer = any("solution" in cell_tags for cell_tags in tags)
    assert has_code_exercise and has_answer, f"solutions/cnn/{name}: expected an exercise and an answer cell"


# --- gradient_check.py --------------------------------------------------------

def test_numeric_gradient_matches_the_analytic_gradient():
    rng = np.random.default_rng(0)
    x, weights = rng.standard_normal((3, 4)), rng.standard_normal((2, 3))
    dout = rng.standard_normal((2, 4))
    # out = weights @ sin(x), so d sum(out * dout) / dx = cos(x) * (weights.T @ dout)
    numeric = gradient_check.numeric_gradient(lambda x: weights @ np.sin(x), x, dout)
    np.testing.assert_allclose(numeric, np.cos(x) * (weights.T @ dout), rtol=1e-7, atol=1e-9)


def test_numeric_gradient_restores_x_and_supports_functions_reading_it_from_a_closure():
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal(5), rng.standard_normal(5)
    before = x.copy()
    numeric = gradient_check.numeric_gradient(lambda _: x ** 3, x, dout)
    np.testing.assert_allclose(numeric, 3 * before ** 2 * dout, rtol=1e-7)
    assert np.array_equal(x, before)

    def failing(values):
        raise RuntimeError("layer bug")

    with pytest.raises(RuntimeError, match="layer bug"):
        gradient_check.numeric_gradient(failing, x, dout)
    assert np.array_equal(x, before), "x must be restored when f raises"


def test_numeric_gradient_rejects_bad_input_with_clear_messages():
    with pytest.raises(TypeError, match=r"gradient_check.py: numeric_gradient: x must be a float64.*float32"):
        gradient_check.numeric_gradient(lambda x: x, np.ones(3, dtype=np.float32), np.ones(3))
    shape_message = r"numeric_gradient: f returned shape \(3,\) but dout has shape \(4,\)"
    with pytest.raises(ValueError, match=shape_message):
        gradient_check.numeric_gradient(lambda x: x, np.ones(3), np.ones(4))


def test_rel_error():
    # elementwise |a - b| / max(1e-8, |a| + |b|), then the largest
    assert gradient_check.rel_error([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 4.2)
    assert gradient_check.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gradient_check.rel_error(0.0, 1e-10) == pytest.approx(1e-2)
    assert gradient_check.rel_error(-1.0, 1.0) == pytest.approx(1.0)
    shape_message = r"rel_error: a and b must have the same shape, got \(2,\) and \(3,\)"
    with pytest.raises(ValueError, match=shape_message):
        gradient_check.rel_error(np.ones(2), np.ones(3))
