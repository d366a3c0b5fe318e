"""Imports a submission makes that the grader's Python cannot satisfy.

Student code runs next to the grader's packages only (on Gradescope: the
image's venv). A file that imports anything else (scipy, torchvision, ...)
may score full marks on a laptop that has it and 0 on Gradescope, so the
grader names each such import at the top of its feedback, wherever it runs.
The source is parsed as text (ast), never imported.
"""
import ast
import sys

# What setup.sh installs besides torch and numpy, which the handout's own files use.
GRADER_PACKAGES = ("numpy", "torch", "tqdm", "matplotlib", "yaml")
HANDOUT_MODULES = ("data", "train", "gradient_check", "layers", "models")

from autograder.layout import STUDENT_CODE

CHECKED_FILES = STUDENT_CODE
MAX_SOURCE_BYTES = 1024 * 1024


def imported_modules(source):
    """[(top-level module name, line)] of the absolute imports in source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def is_available(module):
    return (module in sys.stdlib_module_names or module in GRADER_PACKAGES
            or module in HANDOUT_MODULES or module == "__future__")


def foreign_imports(path):
    """[(module, line)] imported by the file at path that the grader lacks
    (empty when the file cannot be parsed: the grader reports that itself)."""
    try:
        with open(path, "rb") as fh:
            source = fh.read(MAX_SOURCE_BYTES)
        modules = imported_modules(source)
    except (OSError, SyntaxError, ValueError):
        return []
    return [(module, line) for module, line in modules if not is_available(module)]


def import_warnings(submission):
    """Feedback lines naming each import of the graded files the grader cannot satisfy."""
    lines = []
    for name in CHECKED_FILES:
        if name not in submission.files:
            continue
        for module, line in foreign_imports(submission.files[name]):
            lines.append(f"- {name}, line {line}: imports {module}, which the grader does not "
                         f"have; on Gradescope this import fails and everything in {name} "
                         f"scores 0, even if it works on your machine. Remove it.")
    if lines:
        lines.insert(0, "PACKAGES: the grader's Python has only the standard library, "
                        + ", ".join(GRADER_PACKAGES) + ".")
        lines.append("")
    return lines
