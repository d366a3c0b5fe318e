"""What a student's upload brings besides the graded files: the notebooks'
written answers (collected for the staff, autograder/answers.py) and imports
of packages the grader lacks (named at the top, autograder/imports.py); and
where the local grader finds CIFAR-10 without any setting."""
import argparse
import json
import os
import shutil

import nbformat

from autograder import answers, grade, imports, layout
from autograder.authoring.markers import ANSWER_PLACEHOLDER, ANSWER_TAG
from autograder.results import Results
from autograder.submission import data_note, find_submission
from autograder.upload_notes import upload_notes

from conftest import REPO_ROOT as REPO

HANDOUT_NOTEBOOK = REPO / "assignments" / "cnn" / "3_cifar10_training.ipynb"


def notebook_with_answer(path, answer, plot=True):
    nb = nbformat.read(HANDOUT_NOTEBOOK, 4)
    answer_cells = [cell for cell in nb.cells if ANSWER_TAG in cell.metadata.get("tags", [])]
    assert len(answer_cells) == 1, "notebook 3 has one answer cell, tagged 'answer' by the handout build"
    assert answer_cells[0].source == ANSWER_PLACEHOLDER
    answer_cells[0].source = answer
    if plot:
        nb.cells[-1].outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})]
    nbformat.write(nb, path)


def collected(submission):
    """(the written answers' test, their extra_data) as a grade records them."""
    results = Results()
    answers.add_answers(results, submission)
    [test] = results.tests
    return test, results.extra_data["written_answers"]


def test_written_answers_of_an_uploaded_notebook_are_collected(tmp_path):
    notebook_with_answer(tmp_path / "3_cifar10_training.ipynb", "ConvNet shares its filters.")
    test, extra = collected(find_submission(tmp_path))
    assert test["max_score"] == 0 and test["visibility"] == "visible"
    assert "1 of 1 answer cells written; it holds a plot" in test["output"]
    assert "ConvNet shares its filters." in test["output"] and "### Inline question" in test["output"]
    questions = extra["3_cifar10_training.ipynb"]["questions"]
    assert questions[0][1] == "ConvNet shares its filters."
    json.dumps(extra)    # goes into results.json as it is


def test_an_unanswered_notebook_without_plot_and_no_notebook_say_so(tmp_path):
    notebook_with_answer(tmp_path / "3_cifar10_training.ipynb", ANSWER_PLACEHOLDER, plot=False)
    output = collected(find_submission(tmp_path))[0]["output"]
    assert "0 of 1 answer cells written; it holds no plot" in output and "(not answered)" in output
    (tmp_path / "3_cifar10_training.ipynb").unlink()
    output = collected(find_submission(tmp_path))[0]["output"]
    assert output.startswith("No handout notebook was uploaded") and "upload 3_cifar10_training.ipynb" in output


def test_only_the_training_notebook_is_asked_for_a_plot(tmp_path):
    """Notebooks 1 and 2 draw no plot: their line says nothing of one."""
    shutil.copyfile(REPO / "assignments" / "cnn" / "1_convolution_pooling.ipynb",
                    tmp_path / "1_convolution_pooling.ipynb")
    output = collected(find_submission(tmp_path))[0]["output"]
    assert "1_convolution_pooling.ipynb: 0 of 2 answer cells written." in output
    assert "plot" not in output


def test_a_broken_or_linked_notebook_is_reported_not_followed(tmp_path):
    (tmp_path / "3_cifar10_training.ipynb").write_text("{not json")
    output = collected(find_submission(tmp_path))[0]["output"]
    assert "3_cifar10_training.ipynb: could not be read: not a readable notebook" in output
    secret = tmp_path.parent / f"{tmp_path.name}-secret.ipynb"
    notebook_with_answer(secret, "SECRET TEXT")
    (tmp_path / "3_cifar10_training.ipynb").unlink()
    os.symlink(secret, tmp_path / "3_cifar10_training.ipynb")
    output = collected(find_submission(tmp_path))[0]["output"]
    assert "SECRET TEXT" not in output


def test_imports_the_grader_lacks_are_named_with_file_and_line(tmp_path):
    (tmp_path / "layers.py").write_text("import numpy as np\nfrom scipy.signal import correlate\n"
                                        "import os, json\nfrom . import helpers\n")
    (tmp_path / "models.py").write_text("import torch\nimport torchvision.models as tvm\n"
                                        "from train import model_cost\n")
    lines = imports.import_warnings(find_submission(tmp_path))
    text = "\n".join(lines)
    assert lines[0].startswith("PACKAGES: the grader's Python has only the standard library, numpy, torch")
    assert "layers.py, line 2: imports scipy, which the grader does not have" in text
    assert "models.py, line 2: imports torchvision" in text
    assert "numpy" not in text.split("\n", 1)[1] and "train" not in text.split("\n", 1)[1]


def test_the_reference_imports_only_what_the_grader_has():
    submission = find_submission(REPO / "solutions" / "cnn")
    assert imports.import_warnings(submission) == []


def test_local_grader_reads_data_only_from_its_own_handout_never_from_an_upload(tmp_path, monkeypatch):
    """The handout's data.py puts CIFAR-10 in cnn/data/; without --data-dir or
    CIFAR10_DIR the grader looks there only when it grades that handout's own
    cnn/ folder: the same folder in an unzipped upload elsewhere is ignored
    (and mentioned), so an upload never decides what the grader reads."""
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    handout = tmp_path / "handout"
    (handout / "cnn" / "data" / "cifar-10-batches-py").mkdir(parents=True)
    shutil.copyfile(REPO / "solutions" / "cnn" / "layers.py", handout / "cnn" / "layers.py")
    monkeypatch.setattr(layout, "REPO", handout)        # the grader came in this handout
    submission = find_submission(handout)
    assert grade.find_data_dir(None, submission) is None, "an empty data folder is no data"
    (handout / "cnn" / "data" / "cifar-10-batches-py" / "test_batch").write_bytes(b"")
    assert grade.find_data_dir(None, submission) == str(handout / "cnn" / "data")
    assert grade.find_data_dir("/given", submission) == "/given"
    upload = tmp_path / "upload"
    shutil.copytree(handout, upload)
    (upload / "cnn" / "cifar-10-python.tar.gz").write_bytes(b"not really 170 MB")
    uploaded = find_submission(upload)
    assert grade.find_data_dir(None, uploaded) is None, "data inside an upload is never read"
    note = data_note(uploaded)
    assert note.startswith("DATA: the upload holds CIFAR-10 (cnn/cifar-10-python.tar.gz, cnn/data/)")
    assert "never reads data from an upload" in note
    args = grade_arguments(str(upload))
    assert note in upload_notes(args, uploaded)
    assert data_note(submission) not in upload_notes(grade_arguments(str(handout)), submission)
    assert data_note(uploaded) not in upload_notes(grade_arguments(str(upload), "--part", "layers"),
                                                         uploaded), "the layers need no data"
    monkeypatch.setenv("CIFAR10_DIR", "/from-env")
    assert grade.find_data_dir(None, submission) == "/from-env"
    assert grade.find_data_dir(None, uploaded) == "/from-env"


def grade_arguments(*argv):
    parser = argparse.ArgumentParser()
    grade.add_arguments(parser)
    return parser.parse_args(argv)
