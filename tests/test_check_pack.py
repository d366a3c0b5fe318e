"""`python -m autograder check FUNCTION` and `python -m autograder pack`
(autograder/check.py, autograder/pack.py) and the notebooks' way in,
cnn/checks.py: one function graded through the grade's own path; the upload
checked and zipped with exactly the graded files and the notebooks; the first
screen of a grade of the untouched stubs."""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from autograder import check, pack
from autograder.cli import main
from autograder.layout import SUBMISSION_FILES
from conftest import REFERENCE_DIR, REPO_ROOT as REPO

NOTEBOOKS = ("1_convolution_pooling.ipynb", "2_batchnorm_dropout.ipynb", "3_cifar10_training.ipynb")


def student_folder(tmp_path):
    """A handout-like folder: the reference's files in cnn/, with CIFAR-10's
    data folder, its archive, caches and a checkpoint of another name beside them."""
    cnn = tmp_path / "work" / "cnn"
    cnn.mkdir(parents=True)
    for name in list(SUBMISSION_FILES) + list(NOTEBOOKS) + ["data.py", "train.py"]:
        shutil.copy(REFERENCE_DIR / name, cnn / name)
    (cnn / "data" / "cifar-10-batches-py").mkdir(parents=True)
    (cnn / "data" / "cifar-10-batches-py" / "test_batch").write_bytes(b"not the data")
    (cnn / "data" / "cifar-10-python.tar.gz").write_bytes(b"not 170 MB")
    (cnn / "__pycache__").mkdir()
    (cnn / "__pycache__" / "layers.cpython-311.pyc").write_bytes(b"cache")
    (cnn / "convnet_epoch3.pt").write_bytes(b"another checkpoint")
    return cnn.parent


def test_check_grades_one_function_through_the_grade(capsys):
    assert main(["check", "conv_forward", str(REFERENCE_DIR)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("check conv_forward:")
    assert "1.1 conv_forward: 8.00 / 8" in out and "cases correct" in out
    assert "1.2 " not in out and "conv_backward" not in out


def test_check_of_a_stub_shows_the_feedback_and_fails(tmp_path, capsys):
    shutil.copy(REPO / "assignments" / "cnn" / "layers.py", tmp_path / "layers.py")
    assert main(["check", "batchnorm_forward", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    for number in ("3.1", "3.2", "3.3"):          # every test tagged batchnorm_forward
        assert f"{number} batchnorm_forward" in out
    assert "NotImplementedError" in out and "convnet.pt" not in out


def test_check_of_an_unknown_function_lists_the_known_ones(capsys):
    assert main(["check", "conv_fwd", str(REFERENCE_DIR)]) == 2
    err = capsys.readouterr().err
    assert "no check of 'conv_fwd'" in err and "conv_forward" in err and "ConvNet" in err


def test_pack_zips_exactly_the_graded_files_and_notebooks(tmp_path, capsys):
    folder = student_folder(tmp_path)
    status = main(["pack", str(folder)])
    out = capsys.readouterr().out
    target = folder / pack.ZIP_NAME
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        assert archive.read("layers.py") == (REFERENCE_DIR / "layers.py").read_bytes()
    assert sorted(names) == sorted(list(SUBMISSION_FILES) + list(NOTEBOOKS))
    assert target.stat().st_size < 20e6
    assert f"pack: wrote {target}" in out
    assert "CIFAR-10 (cnn/data)" in out and "never reads data from an upload" in out
    # The reference notebooks are committed without outputs: the plot is asked for, nothing else fails.
    assert status == 1 and "3_cifar10_training.ipynb: holds no plot" in out
    assert "/ 8:" not in out, "the quick checks of the reference pass"
    first = target.read_bytes()
    assert main(["pack", str(folder), "--skip-checks"]) == 1
    assert target.read_bytes() == first, "the same files make the same zip"


def test_pack_names_each_problem_and_writes_no_zip_without_a_required_file(tmp_path, capsys):
    folder = student_folder(tmp_path)
    (folder / "cnn" / "fcnet.pt").unlink()
    layers = folder / "cnn" / "layers.py"
    layers.write_text("import scipy\n" + layers.read_text())
    assert main(["pack", str(folder)]) == 2
    out = capsys.readouterr().out
    assert out.startswith("pack: NO zip written: a required file is missing")
    assert "- fcnet.pt: fcnet.pt was not found" in out and "python train.py fcnet" in out
    assert "- layers.py, line 1: imports scipy, which the grader does not have" in out
    assert not (folder / pack.ZIP_NAME).exists()


def test_pack_runs_the_quick_checks_on_what_it_zips(tmp_path, capsys):
    folder = student_folder(tmp_path)
    shutil.copy(REPO / "assignments" / "cnn" / "models.py", folder / "cnn" / "models.py")
    assert main(["pack", str(folder), "--colab"]) == 1
    out = capsys.readouterr().out
    assert "5.1 ConvNet architecture" in out and "See it whole: python -m autograder check ConvNet" in out
    assert "5.3 convnet.pt loads into ConvNet" in out
    assert "files.download(" in out


def test_the_notebook_helper_runs_the_grader_next_to_the_handout(tmp_path):
    """cnn/checks.py as the handout ships it: the grader is found in the
    folder around cnn/ (here a link to this one), run as a separate process."""
    handout = tmp_path / "cnn-handout"
    (handout / "cnn").mkdir(parents=True)
    os.symlink(REPO / "autograder", handout / "autograder")
    for name in ("checks.py", "layers.py"):
        shutil.copy(REFERENCE_DIR / name, handout / "cnn" / name)
    code = "import checks; print(checks.grader_folder()); checks.check('max_pool_forward')"
    done = subprocess.run([sys.executable, "-c", code], cwd=handout / "cnn", capture_output=True,
                          text=True, timeout=300, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{handout}\n")
    assert "2.1 max_pool_forward: 3.00 / 3" in done.stdout and "max_pool_forward: every check passed." in done.stdout


@pytest.mark.parametrize("function", ["conv_forward", "batchnorm_forward", "ConvNet"])
def test_every_function_named_has_checks(function):
    from autograder.rubric import load_rubric
    entries = load_rubric()
    assert check.entries_for(function, entries)
    assert function in check.known_functions(entries)


def test_a_grade_of_the_untouched_stubs_opens_with_where_to_start(tmp_path, capsys):
    """autograder/start_here.py: the first screen of the handout as it comes."""
    assert main(["grade", str(REPO / "assignments"), "--part", "layers",
                 "--results", str(tmp_path / "results.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("START HERE: every function of layers.py still raises NotImplementedError")
    assert "python -m autograder check conv_forward" in out.split("\n\n")[0]
    assert "convnet.pt" not in out, "--part layers: no word of the checkpoints"
    shutil.copy(REFERENCE_DIR / "layers.py", tmp_path / "layers.py")
    assert main(["grade", str(tmp_path), "--part", "layers", "--results", str(tmp_path / "r.json")]) == 0
    assert "START HERE" not in capsys.readouterr().out
