"""The grader installs as a package: the wheel (pyproject.toml, setup.py)
holds exactly what autograder/authoring/shipping.py's package_files("wheel")
says, and an installed copy grades outside the checkout."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.authoring import shipping
from autograder.layout import REFERENCE_DIR, REPO

DIST_INFO = ".dist-info/"


def build_wheel(out_dir):
    """Build the wheel of the checkout offline into out_dir; its path."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(out_dir), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    wheels = list(Path(out_dir).glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_exactly_what_shipping_says(wheel):
    expected = {f"autograder/{name}": content for name, content in shipping.package_files("wheel").items()}
    with zipfile.ZipFile(wheel) as archive:
        held = {name: archive.read(name) for name in archive.namelist()
                if not name.split("/", 1)[0].endswith(DIST_INFO.rstrip("/"))}
    assert sorted(held) == sorted(expected)
    assert [name for name in held if held[name] != expected[name]] == []
    # What the grader reads at run time is among them.
    for name in ("autograder/rubric.yaml", "autograder/reference/curve_band.json",
                 "autograder/worker/worker.py", "autograder/gradescope/run_autograder",
                 "autograder/ta_checks/__init__.py", "autograder/provided/train.py",
                 "autograder/provided/data.py", "autograder/parts/cnn/__init__.py"):
        assert name in held, name
    assert any(name.startswith("autograder/cases/hidden/") and name.endswith(".npy") for name in held)
    assert held["autograder/provided/train.py"] == (REFERENCE_DIR / "train.py").read_bytes()


@pytest.mark.slow
def test_an_installed_wheel_grades_outside_the_checkout(wheel, tmp_path):
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                              "--target", str(target), str(wheel)], capture_output=True, text=True,
                             timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    env = dict(os.environ, PYTHONPATH=str(target))
    where = subprocess.run([sys.executable, "-c", "import autograder; print(autograder.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(target), where.stdout
    results = elsewhere / "results.json"
    grade = subprocess.run([sys.executable, "-m", "autograder", "grade", str(REFERENCE_DIR),
                            "--part", "layers", "--results", str(results)],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert grade.returncode == 0, grade.stdout[-2000:] + grade.stderr[-2000:]
    # Installed below the temporary folder, which the sandbox hides: student code still runs as the worker user.
    assert "own user" not in grade.stderr, grade.stderr[-2000:]
    graded = json.loads(results.read_text())
    full = sum(test["max_score"] for test in graded["tests"])
    assert full > 0 and graded["score"] == full, graded["output"][-2000:]
