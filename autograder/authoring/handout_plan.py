"""What the handout is made of: which file of solutions/ becomes what in
assignments/ (the explicit lists below and file_plan()), the Handout that
handout_build.generate makes from them, and HandoutError, raised with every
problem found; display() shows a path in messages.

A file in solutions/ that none of the lists names stops the build, so that
nothing new ships (or silently disappears) without a decision.
"""
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from autograder.layout import ASSIGNMENT, STUDENT_CODE

# solutions/ -> assignments/
README = "README.md"                           # solutions/README.md, rubric table filled in
STUBBED = STUDENT_CODE                          # solution regions become stubs
COPIED = ("data.py", "train.py", "gradient_check.py", "checks.py")   # byte for byte
NOTEBOOKS = "*.ipynb"                          # stubbed and stripped
NEVER_SHIPPED = ("*.pt", "*_curve.json", "*.png", "*.tmp", "data", "__pycache__",
                 ".ipynb_checkpoints")
# Left alone when assignments/ is regenerated (git-ignored local data).
KEPT_ON_REBUILD = (f"{ASSIGNMENT}/data",)


class HandoutError(Exception):
    """The handout cannot be built; str() lists every problem found."""


@dataclass
class Handout:
    files: dict                                              # path in assignments/ -> bytes
    secrets: dict                                            # secret line -> 'file:line' it comes from
    student_functions: dict = field(default_factory=dict)    # stubbed .py file -> [function, ...]
    notebook_stubs: dict = field(default_factory=dict)       # notebook -> {stub message, ...}


def read_text(path):
    # newline="" keeps '\r\n' line endings, so unmarked lines stay byte for byte.
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def file_plan(solutions_dir, errors):
    """[(path relative to solutions_dir, action)], sorted; unknown or missing
    files are added to errors."""
    plan = []
    if not solutions_dir.is_dir():
        errors.append(f"{display(solutions_dir)}: no such folder (expected the solutions/ "
                      f"folder holding {README} and {ASSIGNMENT}/)")
        return plan
    expected_top = {README: "readme", ASSIGNMENT: "folder"}
    expected_cnn = {**{name: "stub" for name in STUBBED}, **{name: "copy" for name in COPIED}}
    for folder, expected in ((solutions_dir, expected_top), (solutions_dir / ASSIGNMENT, expected_cnn)):
        if not folder.is_dir():
            continue
        for entry in sorted(os.listdir(folder)):
            relative = os.path.relpath(folder / entry, solutions_dir).replace(os.sep, "/")
            if any(fnmatch.fnmatch(entry, pattern) for pattern in NEVER_SHIPPED):
                continue
            action = expected.get(entry)
            if action is None and folder != solutions_dir and fnmatch.fnmatch(entry, NOTEBOOKS):
                action = "notebook"
            if action is None:
                errors.append(
                    f"{display(folder / entry)}: not on the handout's lists; decide whether "
                    "students get it and add it to STUBBED, COPIED or NEVER_SHIPPED in "
                    "autograder/authoring/handout_plan.py")
            elif action != "folder":
                plan.append((relative, action))
        for name in sorted(set(expected) - set(os.listdir(folder))):
            errors.append(f"{display(folder / name)}: missing (autograder/authoring/handout_plan.py "
                          "lists it as part of the handout)")
    return plan


def display(path):
    """path relative to the current folder when inside it, for messages."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
