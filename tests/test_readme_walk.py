"""The student README followed literally, from the handout zip to Gradescope's
score (issue #22).

The handout zip is built as `make handout` builds it and unpacked into a
temporary folder; the command blocks of its README.md (the indented lines)
are run in the README's order as subprocesses, each block from the handout
folder, with these stand-ins, because a test cannot do them for real:

- the venv and `pip install` lines: this test's interpreter already has the
  packages (each `python` of the README runs as sys.executable);
- `python data.py`: CIFAR-10 from CIFAR10_DIR is linked into cnn/data/ and
  a fake `cifar-10-python.tar.gz` (small, the download's name) is put beside
  it, where data.py leaves the real one;
- `jupyter lab`, the notebooks and `python train.py ...`: the reference
  layers.py, models.py, convnet.pt and fcnet.pt are copied into cnn/, where
  the README says the student writes them and training saves them;
- the Colab block is not run (it needs Colab).

Then submission.zip, which `python -m autograder pack` wrote, is graded the
way run_autograder grades it on Gradescope: unzipped into
/autograder/submission of a root laid out like Gradescope's (the Gradescope
zip built from this tree), with the real CIFAR-10 as its data, to 100/100.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from autograder.authoring import autograder_zip, handout
from autograder.layout import SOLUTIONS_DIR, SUBMISSION_FILES
from conftest import REFERENCE_DIR
from test_gradescope_zip import gradescope_root, support

pytestmark = [pytest.mark.slow, pytest.mark.data]

NOTEBOOKS = ("1_convolution_pooling.ipynb", "2_batchnorm_dropout.ipynb", "3_cifar10_training.ipynb")
STAND_INS = ("python -m venv", "source ", "pip install", "jupyter lab", "python data.py", "python train.py")


def readme_blocks(readme):
    """The command blocks of the README: runs of lines indented by four or more
    spaces after a blank line, in order, each a list of commands."""
    blocks, current, previous_blank = [], None, True
    for line in readme.splitlines():
        if line.startswith("    ") and line.strip() and (previous_blank or current is not None):
            if current is None:
                current = []
                blocks.append(current)
            current.append(line.split("  #")[0].strip())
        elif line.strip():
            current = None
        previous_blank = not line.strip()
    return blocks


def unpack_handout(tmp_path):
    zip_path = tmp_path / "dist" / "handout.zip"
    handout.build(SOLUTIONS_DIR, tmp_path / "assignments", zip_path)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(tmp_path / "student")
    return tmp_path / "student" / handout.ZIP_FOLDER


def stand_in(command, folder, cifar10_dir):
    """What the test does for a README command it cannot run for real."""
    if command.startswith("python data.py"):
        data = folder / "cnn" / "data"
        data.mkdir(exist_ok=True)
        if not (data / "cifar-10-batches-py").exists():
            os.symlink(cifar10_dir, data / "cifar-10-batches-py")
        (data / "cifar-10-python.tar.gz").write_bytes(b"a stand-in for the 170 MB download\n")
    elif command.startswith("python train.py"):
        for name in ("convnet.pt", "fcnet.pt"):
            shutil.copy(REFERENCE_DIR / name, folder / "cnn" / name)


def test_the_readme_followed_literally_ends_in_a_full_gradescope_score(tmp_path, cifar10_dir):
    folder = unpack_handout(tmp_path)
    readme = (folder / "README.md").read_text()
    # The student implements the two files (notebooks 1 and 2 and part 2).
    for name in ("layers.py", "models.py"):
        shutil.copy(REFERENCE_DIR / name, folder / "cnn" / name)
    env = {key: value for key, value in os.environ.items() if key not in ("CIFAR10_DIR", "PYTHONPATH")}
    ran, outputs = [], {}
    for block in readme_blocks(readme):
        if any("google.colab" in line or line.startswith(("!", "%")) for line in block):
            continue            # the Colab block
        cwd = folder
        for command in block:
            if command.startswith("cd "):
                cwd = cwd / command[3:].strip()
            elif command.startswith(STAND_INS):
                stand_in(command, folder, cifar10_dir)
                ran.append(command)
            elif command.startswith("python "):
                done = subprocess.run([sys.executable] + command.split()[1:], cwd=cwd, env=env,
                                      capture_output=True, text=True, timeout=1200)
                outputs[command] = done
                ran.append(command)
                assert done.returncode in (0, 1), f"{command}: {done.stdout}\n{done.stderr}"
    for command in ("python data.py", "python -m autograder check conv_forward",
                    "python -m autograder grade .", "python -m autograder pack"):
        assert command in ran, f"the README no longer says `{command}`"

    check = outputs["python -m autograder check conv_forward"]
    assert check.returncode == 0 and "1.1 conv_forward: 8.00 / 8" in check.stdout

    grade = outputs["python -m autograder grade ."]
    local = json.loads((folder / "results.json").read_text())
    assert "integrity report" not in (grade.stdout + grade.stderr).lower(), "the staff's report stays with the staff"
    assert "DATA:" not in local["output"], "the handout's own cnn/data/ is the student's data"
    accuracy = [t for t in local["tests"] if "accuracy" in t["name"]]
    assert accuracy and all(t["score"] == t["max_score"] for t in accuracy), grade.stdout

    pack = outputs["python -m autograder pack"]
    submission = folder / "submission.zip"
    assert f"pack: wrote {submission.name}" in pack.stdout, pack.stdout
    assert submission.stat().st_size < 20e6
    with zipfile.ZipFile(submission) as archive:
        assert sorted(archive.namelist()) == sorted(list(SUBMISSION_FILES) + list(NOTEBOOKS))

    # Gradescope: the zip unpacked into /autograder/submission, graded by run_autograder.
    gradescope_zip = tmp_path / "autograder.zip"
    autograder_zip.build(gradescope_zip)
    root = gradescope_root(tmp_path / "gradescope", gradescope_zip)
    with zipfile.ZipFile(submission) as archive:
        archive.extractall(root / "submission")
    run_env = dict(env, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=support.unprivileged_python(),
                   AUTOGRADER_WORKER_USER="nobody", AUTOGRADER_DATA_DIR=str(cifar10_dir))
    done = subprocess.run([str(root / "run_autograder")], cwd=root, env=run_env, capture_output=True,
                          text=True, timeout=1500)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    total = sum(test["max_score"] for test in results["tests"])
    assert total == 100 and results["score"] == 100, \
        [(t["number"], t["score"], t["output"][:200]) for t in results["tests"] if t["score"] < t["max_score"]]
    assert "integrity report (instructors only)" in done.stdout + done.stderr, "the staff's console has it"
    assert "integrity" in results.get("extra_data", {})
    # A file under /autograder/results is no use to a student: the curves are drawn in the curve tests.
    seen = results["output"] + "".join(test["output"] for test in results["tests"])
    assert "cnn_curves.png" not in seen and "data:image/png;base64," in seen
