"""Imports a submission makes that the grader's Python cannot satisfy, or
that its rules forbid.

Student code runs next to the grader's packages only (on Gradescope: the
image's venv). A file that imports anything else (scipy, torchvision, ...)
may score full marks on a laptop that has it and 0 on Gradescope, so the
grader names each such import at the top of its feedback, wherever it runs.

layers.py must compute with numpy and the standard library only
(NUMPY_ONLY_FILES): the grader gives its functions no array or autodiff
framework (FRAMEWORKS; autograder/worker/numpy_only.py enforces it where the
code runs, jobs ask for it with Job.forbid), so an import of one there is
named too: the import alone costs nothing, a use costs that function's cases.

The source is parsed as text (ast), never imported.
"""
import ast
import sys

# What setup.sh installs besides torch and numpy, which the handout's own files use.
GRADER_PACKAGES = ("numpy", "torch", "tqdm", "matplotlib", "yaml")
HANDOUT_MODULES = ("data", "train", "gradient_check", "layers", "models")

from autograder.layout import LAYERS_FILE, STUDENT_CODE

CHECKED_FILES = STUDENT_CODE
NUMPY_ONLY_FILES = (LAYERS_FILE,)
# Top-level modules of array and autodiff frameworks a student could reach for
# (installed here or not): unavailable to the code of NUMPY_ONLY_FILES.
FRAMEWORKS = ("torch", "functorch", "torchvision", "torchaudio", "tensorflow", "keras", "jax",
              "jaxlib", "flax", "autograd", "cupy", "cupyx", "numba", "mxnet", "paddle", "theano",
              "pytensor", "chainer", "tinygrad", "mlx")
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


def file_imports(path):
    """imported_modules of the file at path (empty when the file cannot be
    parsed: the grader reports that itself)."""
    try:
        with open(path, "rb") as fh:
            return imported_modules(fh.read(MAX_SOURCE_BYTES))
    except (OSError, SyntaxError, ValueError):
        return []


def foreign_imports(path):
    """[(module, line)] imported by the file at path that the grader lacks."""
    return [(module, line) for module, line in file_imports(path) if not is_available(module)]


def framework_imports(path):
    """[(module, line)] of the FRAMEWORKS the file at path imports."""
    return [(module, line) for module, line in file_imports(path) if module in FRAMEWORKS]


def numpy_only_warnings(submission):
    """Feedback lines naming each framework import of a numpy-only file."""
    lines = []
    for name in NUMPY_ONLY_FILES:
        if name not in submission.files:
            continue
        found = {}                          # module -> its import lines, in order
        for module, line in framework_imports(submission.files[name]):
            found.setdefault(module, []).append(line)
        for module, at in found.items():
            where = ", ".join(str(line) for line in sorted(set(at)))
            lines.append(f"- {name}, line{'s' if len(set(at)) > 1 else ''} {where}: imports {module}. "
                         f"{name} must compute with numpy: the grader gives its functions no "
                         f"{module}, so a function that uses it scores 0 on its cases (the import "
                         f"alone costs nothing). Write them with numpy and remove the import.")
    if lines:
        lines.insert(0, f"NUMPY ONLY: {', '.join(NUMPY_ONLY_FILES)} may use numpy and the "
                        f"standard library only.")
        lines.append("")
    return lines


def import_warnings(submission):
    """Feedback lines naming each import of the graded files the grader cannot
    satisfy, then those a numpy-only file may not use."""
    lines = []
    for name in CHECKED_FILES:
        if name not in submission.files:
            continue
        for module, line in foreign_imports(submission.files[name]):
            if name in NUMPY_ONLY_FILES and module in FRAMEWORKS:
                continue                    # numpy_only_warnings names it
            lines.append(f"- {name}, line {line}: imports {module}, which the grader does not "
                         f"have; on Gradescope this import fails and everything in {name} "
                         f"scores 0, even if it works on your machine. Remove it.")
    if lines:
        lines.insert(0, "PACKAGES: the grader's Python has only the standard library, "
                        + ", ".join(GRADER_PACKAGES) + ".")
        lines.append("")
    return lines + numpy_only_warnings(submission)
