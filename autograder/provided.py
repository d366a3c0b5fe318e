"""Where the grader finds the provided code (solutions/cnn/data.py and
train.py: shipped to students unchanged, no solution regions).

The worker trains and normalizes with the grader's trusted copy, never with
the student's. Built artifacts (the Gradescope zip, the handout) carry a copy
in autograder/provided/; in the repository the grader uses solutions/cnn/.
"""
import importlib.util
from pathlib import Path

from autograder.layout import PROVIDED_COPY_DIR as COPY_DIR, REFERENCE_DIR as REPO_DIR

PROVIDED_FILES = ("data.py", "train.py")


class ProvidedCodeError(Exception):
    """The provided data.py / train.py cannot be found (a broken autograder build)."""


def provided_dir():
    """The folder holding the trusted data.py and train.py."""
    for folder in (COPY_DIR, REPO_DIR):
        if all((folder / name).is_file() for name in PROVIDED_FILES):
            return folder
    raise ProvidedCodeError(
        f"autograder/provided.py: neither {COPY_DIR} nor {REPO_DIR} holds "
        f"{' and '.join(PROVIDED_FILES)}; rebuild the autograder (the zip build copies them "
        f"to autograder/provided/)")


def provided_path(name):
    """Path of one provided file, e.g. provided_path('train.py')."""
    if name not in PROVIDED_FILES:
        raise ValueError(f"provided_path: {name!r} is not one of {PROVIDED_FILES}")
    return provided_dir() / name


def load_data_module():
    """The provided data.py as a module private to the grader (numpy only at
    import; it never enters sys.modules as 'data')."""
    path = provided_path("data.py")
    spec = importlib.util.spec_from_file_location("autograder_provided_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
