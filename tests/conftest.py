"""Shared helpers of the test suite.

The reference assignment in solutions/cnn is a folder of plain scripts whose
modules import each other by bare name (``from data import ...``), so it is
imported the same way: ``import_reference("layers")`` returns the module
``layers`` loaded from solutions/cnn. Test files that load other copies of
these files (a handout, a student submission) must load them by path under
names of their own, never as ``layers``/``data``/``models``/``train``.
"""
import importlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT / "solutions" / "cnn"


CORPUS_DIR = Path(__file__).resolve().parent / "grader_corpus"


def load_corpus(name):
    """tests/grader_corpus/<name>.py (student-style submissions and their
    helpers) as a module of its own, ``grader_corpus_<name>``."""
    spec = importlib.util.spec_from_file_location(f"grader_corpus_{name}", CORPUS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_reference(name):
    """Import solutions/cnn/<name>.py as the top-level module ``name``.

    solutions/cnn is on sys.path only while the import runs, so later bare
    imports elsewhere do not silently pick up the reference. If a module of
    that name was already imported from somewhere else, fail loudly instead of
    testing the wrong file.
    """
    expected = REFERENCE_DIR / f"{name}.py"
    if not expected.is_file():
        raise FileNotFoundError(f"tests/conftest.py: import_reference: {expected} does not exist")
    sys.path.insert(0, str(REFERENCE_DIR))
    try:
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(REFERENCE_DIR))
    actual = Path(module.__file__).resolve()
    if actual != expected:
        raise ImportError(
            f"tests/conftest.py: import_reference({name!r}): the module {name!r} in sys.modules "
            f"comes from {actual}, expected {expected}; load other copies under their own "
            "module names (importlib.util.spec_from_file_location)")
    return module


def numeric_gradient(f, x, dout, h=1e-6):
    """Central-difference gradient of sum(f(x) * dout) with respect to x.

    f takes an array shaped like x. x itself is not modified: each entry is
    shifted in a copy.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    shifted = np.array(x, dtype=np.float64, copy=True)
    for index in np.ndindex(x.shape):
        original = shifted[index]
        shifted[index] = original + h
        plus = np.sum(f(shifted.copy()) * dout)
        shifted[index] = original - h
        minus = np.sum(f(shifted.copy()) * dout)
        shifted[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def rel_error(actual, expected):
    """||actual - expected|| / (||actual|| + ||expected||), 0 when both are 0.

    A norm over the whole array, not per entry: entries whose true value is 0
    come out of central differences as ~1e-10 and must not dominate."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    scale = np.linalg.norm(actual) + np.linalg.norm(expected)
    return 0.0 if scale == 0 else float(np.linalg.norm(actual - expected) / scale)


@pytest.fixture(scope="session")
def cifar10_dir():
    """The real CIFAR-10 folder named by CIFAR10_DIR (tests marked `data`)."""
    path = os.environ.get("CIFAR10_DIR")
    if not path:
        pytest.fail("this test needs the real CIFAR-10: set CIFAR10_DIR to the folder holding "
                    "cifar-10-batches-py (or that folder itself), or run `make data`", pytrace=False)
    folder = Path(path)
    if not (folder / "test_batch").is_file():
        folder = folder / "cifar-10-batches-py"
    if not (folder / "test_batch").is_file():
        pytest.fail(f"CIFAR10_DIR={path}: no test_batch in it or in its cifar-10-batches-py "
                    "subfolder; point it at a standard cifar-10-batches-py copy", pytrace=False)
    return folder


@pytest.fixture(scope="session")
def reference_results(cifar10_dir, tmp_path_factory):
    """(results, folder) of the reference's CNN part graded once on the real
    CIFAR-10 with the shipped rubric (test_grader_cnn, test_integrity)."""
    import json

    from autograder import cli
    from autograder.results import validate

    folder = tmp_path_factory.mktemp("reference")
    results_path = folder / "results.json"
    status = cli.main(["grade", str(REFERENCE_DIR), "--results", str(results_path), "--part", "cnn",
                       "--data-dir", str(cifar10_dir)])
    assert status == 0
    results = json.loads(results_path.read_text())
    validate(results)
    return results, folder


def shown(item):
    """The text a results.json output shows (a test's or the top's), whatever
    its format: html outputs (tests with pictures, the top) read as text."""
    from autograder.pictures.html import as_text
    return as_text(item.get("output", ""), item.get("output_format", "text"))


def as_shown(results):
    """A results.json mapping with every output (the top's and each test's) as
    the text it shows: for tests about the feedback's words, not its markup."""
    tests = [dict(test, output=shown(test)) for test in results["tests"]]
    for test in tests:
        test.pop("output_format", None)
    top = dict(results, output=shown(results), tests=tests)
    top.pop("output_format", None)
    return top
