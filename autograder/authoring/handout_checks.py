"""Invariants of a generated handout (build-only, like nbgrader's validate --invert):

* every stub of a student function raises its own NotImplementedError when
  called with small valid inputs, and every module of assignments/cnn imports
  (``check_stubs``; runs in a fresh interpreter inside the assignment folder,
  as a student would);
* the handout notebooks run top to bottom once the reference layers.py and
  models.py replace the stubs (``run_notebooks``); the only error allowed is
  the NotImplementedError of a stub generated from a notebook's own solution
  region.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.layout import REPO
NOTEBOOK_CELL_TIMEOUT = 900       # seconds; quick mode keeps every cell far below this
KERNEL_NAME = "handout-check"
STUB_CHECK_TIMEOUT = 300


def _forward_inputs(name):
    """Small valid arguments of the student forward function `name`."""
    import numpy as np

    rng = np.random.default_rng(0)
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    inputs = {
        "conv_forward": lambda: (rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)),
                                 rng.standard_normal(4), {"stride": 1, "pad": 1}),
        "max_pool_forward": lambda: (rng.standard_normal((2, 3, 4, 4)), dict(pool)),
        "avg_pool_forward": lambda: (rng.standard_normal((2, 3, 4, 4)), dict(pool)),
        "batchnorm_forward": lambda: (rng.standard_normal((4, 5)), np.ones(5), np.zeros(5),
                                      {"mode": "train"}),
        "spatial_batchnorm_forward": lambda: (rng.standard_normal((2, 3, 4, 4)), np.ones(3),
                                              np.zeros(3), {"mode": "train"}),
        "dropout_forward": lambda: (rng.standard_normal((4, 5)), {"p": 0.5, "mode": "train", "seed": 0}),
    }
    return inputs[name]() if name in inputs else None


def _call_for(file, function, reference_layers):
    """A no-argument callable exercising the stub `function` of `file`, or None
    when no sample call is known."""
    import importlib

    module = importlib.import_module(Path(file).stem)
    if file == "layers.py":
        if function.endswith("_forward") and _forward_inputs(function) is not None:
            return lambda: getattr(module, function)(*_forward_inputs(function))
        forward = function[:-len("_backward")] + "_forward"
        if function.endswith("_backward") and _forward_inputs(forward) is not None:
            import numpy as np
            out, cache = getattr(reference_layers, forward)(*_forward_inputs(forward))
            return lambda: getattr(module, function)(np.ones_like(out), cache)
    if file == "models.py" and function.count(".") == 1:
        import torch
        class_name, method = function.split(".")
        cls = getattr(module, class_name)
        if method == "__init__":
            return cls
        if method == "forward":
            def call_forward():
                model = cls.__new__(cls)
                torch.nn.Module.__init__(model)     # skip the stubbed __init__
                return model.forward(torch.zeros(2, 3, 32, 32))
            return call_forward
    return None


def check_stubs(assignment_dir, solutions_dir, student_functions):
    """Problems (one line each) with the stubs and imports of assignment_dir.

    student_functions: {'layers.py': ['conv_forward', ...], 'models.py': [...]},
    the functions that hold a solution region in solutions_dir.
    """
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "autograder.authoring.handout_checks",
               str(Path(solutions_dir).resolve()), json.dumps(student_functions)]
    try:
        done = subprocess.run(command, cwd=assignment_dir, env=env, capture_output=True, text=True,
                              timeout=STUB_CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        return [f"{assignment_dir}: the stub check did not finish within {STUB_CHECK_TIMEOUT} s"]
    problems = done.stdout.splitlines()
    if done.returncode not in (0, 1) or (done.returncode == 1 and not problems):
        problems.append(f"the stub check crashed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return problems


def _check_stubs_here(solutions_dir, student_functions):
    """Body of check_stubs, run with the assignment folder as working folder."""
    import importlib
    import importlib.util

    problems = []
    for file in sorted(Path(".").glob("*.py")):
        try:
            importlib.import_module(file.stem)
        except BaseException as exc:  # SystemExit too: an import must simply work
            problems.append(f"cnn/{file.name} does not import: {type(exc).__name__}: {exc}")
    if problems:
        return problems

    spec = importlib.util.spec_from_file_location("reference_layers", Path(solutions_dir) / "layers.py")
    reference_layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference_layers)
    for file, functions in sorted(student_functions.items()):
        for function in functions:
            call = _call_for(file, function, reference_layers)
            if call is None:
                problems.append(f"cnn/{file}: no sample call known for {function}; add one to "
                                "autograder/authoring/handout_checks.py so that its stub is checked")
                continue
            try:
                call()
            except NotImplementedError as exc:
                if not str(exc).startswith(f"{function}:"):
                    problems.append(f"cnn/{file}: {function} raised NotImplementedError({exc!s}), "
                                    "not its own stub's")
                continue
            except Exception as exc:
                problems.append(f"cnn/{file}: {function} raised {type(exc).__name__}: {exc} "
                                "instead of NotImplementedError")
                continue
            problems.append(f"cnn/{file}: {function} returned instead of raising NotImplementedError")
    return problems


def run_notebooks(assignment_dir, solutions_dir, notebook_stubs, stubbed_files=("layers.py", "models.py")):
    """Problems (one line each) running every notebook of assignment_dir with
    nbclient, after copying the folder and putting the reference versions of
    stubbed_files in place. The kernel gets CNN_QUICK=1 and the rest of the
    environment (CIFAR10_DIR included).

    notebook_stubs: {'name.ipynb': {message of each stub generated in it}}.
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    problems = []
    env = dict(os.environ, CNN_QUICK="1", PYTHONDONTWRITEBYTECODE="1")
    with tempfile.TemporaryDirectory(prefix="handout-notebooks-") as scratch:
        work = Path(scratch) / "cnn"
        shutil.copytree(assignment_dir, work, ignore=shutil.ignore_patterns(
            "data", "__pycache__", ".ipynb_checkpoints", "*.pt"))
        for name in stubbed_files:
            shutil.copyfile(Path(solutions_dir) / name, work / name)
        # A kernel running this interpreter: an installed 'python3' kernel may be another Python.
        kernels = Path(scratch) / "kernels"
        (kernels / KERNEL_NAME).mkdir(parents=True)
        (kernels / KERNEL_NAME / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "handout check", "language": "python"}))
        for path in sorted(work.glob("*.ipynb")):
            allowed = notebook_stubs.get(path.name, set())
            nb = nbformat.read(path, as_version=4)
            kernel = KernelManager(kernel_name=KERNEL_NAME,
                                   kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
            client = NotebookClient(nb, km=kernel, timeout=NOTEBOOK_CELL_TIMEOUT, allow_errors=True,
                                    resources={"metadata": {"path": str(work)}})
            start = time.time()
            try:
                client.execute(env=env)
            except (CellTimeoutError, DeadKernelError) as exc:
                problems.append(f"{path.name}: {type(exc).__name__}: {str(exc).strip()[:500]}")
            print(f"  ran {path.name} in {time.time() - start:.0f} s", flush=True)
            failures = [(index, output) for index, cell in enumerate(nb.cells)
                        for output in cell.get("outputs", [])
                        if output.get("output_type") == "error"
                        and not (output.get("ename") == "NotImplementedError"
                                 and output.get("evalue") in allowed)]
            if failures:
                # Later failures are mostly consequences of the first one.
                index, output = failures[0]
                later = f" (and {len(failures) - 1} later cells failed)" if len(failures) > 1 else ""
                problems.append(f"{path.name}: cell index {index} raised {output.get('ename')}: "
                                f"{output.get('evalue')}{later}")
    return problems


if __name__ == "__main__":
    # python -m autograder.authoring.handout_checks SOLUTIONS_DIR FUNCTIONS_JSON, in the assignment folder
    sys.path.insert(0, os.getcwd())
    found = _check_stubs_here(sys.argv[1], json.loads(sys.argv[2]))
    for problem in found:
        print(problem)
    sys.exit(1 if found else 0)
