"""dist/autograder.zip (issue #6): its layout, determinism, no solution code,
and the /autograder contract: the zip unpacked into a temporary root laid
out like Gradescope's, run_autograder run on a submission (nested one
folder deep), results.json validated. setup.sh needs Ubuntu and the network,
so the test runs run_autograder with this machine's interpreter instead
(AUTOGRADER_PYTHON)."""
import importlib.util
import io
import json
import os
import re
import shutil
import stat
import subprocess
import textwrap
import zipfile
from pathlib import Path

import jsonschema
import pytest

from autograder.authoring import autograder_zip, handout, shipping
from autograder.layout import STAFF_ONLY
from autograder.results import SCHEMA, validate
from autograder.rubric import load_rubric
from conftest import shown

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("hostile_support", HERE / "hostile" / "support.py")
support = importlib.util.module_from_spec(spec)
spec.loader.exec_module(support)

REPO = support.REPO
REFERENCE_DIR = REPO / "solutions" / "cnn"
LAYER_POINTS = sum(entry.points for entry in load_rubric() if entry.part == "layers")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The zip, built once into a temporary folder: (path, bytes)."""
    out = tmp_path_factory.mktemp("zip") / "autograder.zip"
    autograder_zip.build(out)
    return out, out.read_bytes()


def test_zip_layout(built):
    _, data = built
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    names = set(infos)
    assert {"setup.sh", "run_autograder"} <= names
    for script in ("setup.sh", "run_autograder"):
        assert stat.S_IMODE(infos[script].external_attr >> 16) == 0o755
    assert "autograder/cases/hidden/cases.json" in names
    assert "autograder/rubric.yaml" in names and "autograder/worker/worker.py" in names
    for name in ("data.py", "train.py"):
        assert infos[f"autograder/provided/{name}"].file_size == (REFERENCE_DIR / name).stat().st_size
    # Every data file of the grader ships (the hidden cases, #5's reference curves, ...).
    for folder in ("cases", "reference"):
        for path in (autograder_zip.GRADER_DIR / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert f"autograder/{path.relative_to(autograder_zip.GRADER_DIR).as_posix()}" in names
    assert not [name for name in names if name.startswith("solutions/") or "__pycache__" in name]
    # The staff folders never ship, whatever they hold.
    for folder in STAFF_ONLY:
        assert (autograder_zip.GRADER_DIR / folder / "__init__.py").is_file()
        assert not [name for name in names if name.startswith(f"autograder/{folder}/")]
    assert all(info.date_time == shipping.ZIP_DATE for info in infos.values())


def test_zip_is_deterministic(built, tmp_path):
    again = tmp_path / "again.zip"
    autograder_zip.build(again)
    assert again.read_bytes() == built[1]


def test_zip_holds_no_solution_code(built):
    _, data = built
    assert autograder_zip.find_leaks(data) == []
    # The only files of solutions/ in the zip are the provided (marker-free) ones.
    solution_files = {path.read_bytes(): path.name for path in REFERENCE_DIR.glob("*.py")}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        shipped = {solution_files[archive.read(name)] for name in archive.namelist()
                   if archive.read(name) in solution_files}
    assert shipped == {"data.py", "train.py"}


def test_a_solution_line_in_the_grader_stops_the_build(tmp_path):
    grader = tmp_path / "autograder"
    shutil.copytree(autograder_zip.GRADER_DIR, grader, ignore=shutil.ignore_patterns("__pycache__"))
    secret = next(iter(handout.generate(autograder_zip.SOLUTIONS_DIR).secrets))
    (grader / "parts" / "leaky.py").write_text(f"def helper():\n    {secret}\n")
    with pytest.raises(autograder_zip.BuildError, match="leaky.py"):
        autograder_zip.build(tmp_path / "out.zip", grader_dir=grader)
    assert not (tmp_path / "out.zip").exists()


@pytest.fixture(scope="module")
def worker_python():
    return support.unprivileged_python()


def gradescope_root(tmp_path, zip_path):
    """/autograder as Gradescope prepares it: source/ (the zip), run_autograder
    copied to the root, an empty submission/ and results/."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(root / "source")
    for name in ("run_autograder", "setup.sh"):
        (root / "source" / name).chmod(0o755)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    (root / "results").mkdir()
    return root


def run_autograder(root, python, *grade_args):
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=python,
               AUTOGRADER_WORKER_USER="nobody", AUTOGRADER_DATA_DIR=str(root / "no-data"),
               AUTOGRADER_GRADE_ARGS=" ".join(grade_args))
    completed = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(results, SCHEMA)
    return results, completed.stdout + completed.stderr


def test_run_autograder_grades_a_nested_submission(built, tmp_path, worker_python):
    root = gradescope_root(tmp_path, built[0])
    nested = root / "submission" / "my-work"
    nested.mkdir()
    shutil.copy(REFERENCE_DIR / "layers.py", nested / "layers.py")
    # Gradescope's metadata: an earlier submission whose conv_forward failed.
    earlier = {"score": 0.0, "tests": [{"number": "1.1", "name": "conv_forward", "score": 0.0, "max_score": 8.0,
                                        "status": "failed", "output": "", "visibility": "visible", "tags": []}]}
    (root / "submission_metadata.json").write_text(json.dumps({"previous_submissions": [
        {"submission_time": "2026-12-06T09:30:00.000000-08:00", "score": 0.0, "results": earlier}]}))
    results, console = run_autograder(root, worker_python)
    validate(results)
    layer_tests = [t for t in results["tests"] if "models.py" not in t["output"]]
    assert sum(t["score"] for t in layer_tests) == LAYER_POINTS, console
    assert "layers.py found in the subfolder my-work/" in shown(results)
    assert f"score 0 -> {LAYER_POINTS:g} (+{LAYER_POINTS:g}) since your previous submission" in shown(results)
    assert "newly passed: 1.1 conv_forward (8 of 8)" in shown(results)
    # The CNN files are missing: that part scores 0 with a message, the run still completes.
    cnn_tests = [t for t in results["tests"] if t not in layer_tests]
    assert cnn_tests and all(t["score"] == 0 for t in cnn_tests)
    # The grader's files and the results are closed to other users.
    for path in (root / "source", root / "results", root / "source" / "autograder" / "cases" / "hidden"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_run_autograder_contains_a_submission_reading_the_grader(built, tmp_path, worker_python):
    """Student code cannot read the hidden cases, import the grader or write
    results.json in the /autograder layout."""
    root = gradescope_root(tmp_path, built[0])
    source = root / "source"
    code = textwrap.dedent(f"""
        import json, os, sys

        def conv_forward(x, w, b, conv_param):
            attempts = []
            for path in ({str(source / "autograder/cases/hidden/cases.json")!r},
                         {str(source / "autograder/rubric.yaml")!r}):
                try:
                    attempts.append("LEAKED " + open(path).read()[:200])
                except OSError as exc:
                    attempts.append(f"DENIED {{type(exc).__name__}}")
            sys.path.insert(0, {str(source)!r})
            try:
                import autograder.cases
                attempts.append("LEAKED grader imported")
            except ImportError as exc:
                attempts.append(f"DENIED {{type(exc).__name__}}")
            try:
                with open({str(root / "results" / "results.json")!r}, "w") as handle:
                    json.dump({{"score": 1000, "tests": []}}, handle)
                attempts.append("LEAKED results written")
            except OSError as exc:
                attempts.append(f"DENIED {{type(exc).__name__}}")
            raise RuntimeError("; ".join(attempts))
    """)
    (root / "submission" / "layers.py").write_text(
        (REPO / "assignments" / "cnn" / "layers.py").read_text() + code)
    results, console = run_autograder(root, worker_python, "--part", "layers")
    validate(results)
    assert results["score"] == 0
    conv = results["tests"][0]["output"]
    # PermissionError by the permissions run_autograder sets, FileNotFoundError
    # where the worker's mount namespace hides the folder altogether.
    denied = r"DENIED (PermissionError|FileNotFoundError)"
    assert re.search(f"{denied}; {denied}; DENIED ModuleNotFoundError; {denied}", conv), console
    assert "LEAKED" not in json.dumps(results)


def test_run_autograder_leaves_a_valid_results_json_when_python_is_missing(built, tmp_path):
    root = gradescope_root(tmp_path, built[0])
    results, _ = run_autograder(root, str(tmp_path / "no-such-python"))
    assert results["score"] == 0 and results["tests"] == []
    assert "could not start (exit status 127)" in results["output"]


def test_setup_sh_downloads_as_on_gradescope_unless_a_test_override_is_set():
    """setup.sh's test-only overrides (AUTOGRADER_TORCH_INSTALL, AUTOGRADER_CIFAR10_FROM; used by
    tests/gradescope_image/check_image.sh, which runs the script for real in an Ubuntu 22.04
    chroot) leave Gradescope's path as it was: with neither set, torch comes from the CPU index,
    pinned like the project's, and CIFAR-10 from the official archive with its MD5 check."""
    script = autograder_zip.TEMPLATES_DIR / "setup.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert 'TORCH_INSTALL="${AUTOGRADER_TORCH_INSTALL:-}"' in text
    assert 'CIFAR10_FROM="${AUTOGRADER_CIFAR10_FROM:-}"' in text
    torch_default = re.search(r'if \[ -z "\$TORCH_INSTALL" \]; then\n(.*?)\nelif', text, re.S)
    data_default = re.search(r'if \[ -z "\$CIFAR10_FROM" \]; then\n(.*?)\nelse', text, re.S)
    assert torch_default and data_default, "setup.sh: the default (Gradescope) branches are not found"
    pin = re.search(r'"torch==([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert torch_default.group(1).strip() == (
        f'"$VENV/bin/python" -m pip install -q --index-url https://download.pytorch.org/whl/cpu torch=={pin}')
    assert '"$VENV/bin/python" "$SOURCE/autograder/provided/data.py" "$SOURCE/data"' in data_default.group(1)
    provided = (REFERENCE_DIR / "data.py").read_text()
    assert 'URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"' in provided
    assert 'ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"' in provided


def test_run_autograder_gives_a_layers_py_using_torch_the_local_graders_verdict(built, tmp_path, worker_python):
    """Issue #20: the numpy-only rule holds on Gradescope as locally: the same
    scores per test, the same reasons, the same import warning."""
    from autograder import cli
    from test_numpy_only import DUNDER_IMPORT, IMPORTLIB, IN_FUNCTION, TOP_LEVEL
    code = (REFERENCE_DIR / "layers.py").read_text() + TOP_LEVEL + IMPORTLIB + IN_FUNCTION + DUNDER_IMPORT
    local = tmp_path / "local"
    local.mkdir()
    (local / "layers.py").write_text(code)
    assert cli.main(["grade", str(local), "--results", str(tmp_path / "local.json"), "--part", "layers"]) == 0
    expected = json.loads((tmp_path / "local.json").read_text())
    root = gradescope_root(tmp_path, built[0])
    (root / "submission" / "layers.py").write_text(code)
    results, console = run_autograder(root, worker_python, "--part", "layers")
    validate(results)
    verdict = lambda res: [(t["name"], t["score"], t["output"].split("\n")[0]) for t in res["tests"]]
    assert verdict(results) == verdict(expected), console
    assert 0 < results["score"] < LAYER_POINTS
    assert "layers.py must compute with numpy: conv_forward used torch (layers.py, line" in json.dumps(results)
    warning = next(line for line in results["output"].splitlines() if "imports torch" in line)
    assert warning in expected["output"] and warning.startswith("- layers.py, lines ")
