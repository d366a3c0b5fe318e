"""layers.py is numpy only (issue #20, part 1): a layers.py that hands its
work to torch, however it imports it, scores 0 on the functions that do, with
a numpy-only reason naming the function, file and line; the other functions
keep their marks, an unused import costs nothing, and the grader names the
import. The worker's import hook does it alone (as a non-root grader); as
root the frameworks' folders are hidden from the worker too, so loading torch
by path or through ctypes fails as well."""
import os
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from autograder.imports import FRAMEWORKS, import_warnings
from autograder.outcomes import job_key
from autograder.parts.layers.env import new_job
from autograder.sandbox import Job, Sandbox, mount_isolation
from autograder.ta.student import _layers_job
from conftest import load_corpus

support = load_corpus("support")
TORCH_DIR = Path(torch.__file__).resolve().parent
RULE = "layers.py must compute with numpy: {function} used torch (layers.py, line {line}"

# Each import style of the issue, each in functions of its own.
TOP_LEVEL = """
import torch
import torch.nn.functional as F

def conv_forward(x, w, b, conv_param):
    out = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),  # USES conv_forward
                   stride=conv_param["stride"], padding=conv_param["pad"])
    return out.numpy(), (x, w, b, conv_param)
"""
IMPORTLIB = """
def max_pool_forward(x, pool_param):
    import importlib
    t = importlib.import_module("to" + "rch")
    F = t.nn.functional
    out = F.max_pool2d(t.from_numpy(x), (pool_param["pool_height"], pool_param["pool_width"]),  # USES max_pool_forward
                       pool_param["stride"])
    return out.numpy(), (x, pool_param)
"""
IN_FUNCTION = """
def batchnorm_backward(dout, cache):
    import torch
    x = torch.tensor(cache[0], requires_grad=True)  # USES batchnorm_backward
    raise AssertionError("unreachable: the stand-in refuses first")
"""
DUNDER_IMPORT = """
def avg_pool_forward(x, pool_param):
    t = __import__("torch")
    out = t.nn.functional.avg_pool2d(t.from_numpy(x), pool_param["pool_height"],  # USES avg_pool_forward
                                     pool_param["stride"])
    return out.numpy(), (x, pool_param)
"""
AUTOGRAD_BACKWARD = """
import torch

def conv_backward(dout, cache):
    x, w, b, conv_param = cache
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))  # USES conv_backward
    out = torch.nn.functional.conv2d(xt, wt, bt, stride=conv_param["stride"], padding=conv_param["pad"])
    return tuple(g.numpy() for g in torch.autograd.grad(out, (xt, wt, bt), torch.from_numpy(dout)))
"""


def marked_lines(folder):
    """{function: line of layers.py marked `# USES function`}."""
    lines = (Path(folder) / "layers.py").read_text().splitlines()
    return {line.split("# USES ")[1].strip(): number for number, line in enumerate(lines, 1)
            if "# USES " in line}


def lost_points(results):
    return {function for function, (score, max_score) in support.score_by_function(results).items()
            if score < max_score}


def test_each_import_style_costs_only_the_delegating_functions_with_a_numpy_only_reason(tmp_path):
    folder = support.make_submission(tmp_path / "torch",
                                     TOP_LEVEL + IMPORTLIB + IN_FUNCTION + DUNDER_IMPORT)
    results = support.grade(folder)
    delegating = {"conv_forward", "max_pool_forward", "batchnorm_backward", "avg_pool_forward"}
    # A forward that fails leaves its backward nothing to check; the reference's
    # spatial_batchnorm_backward calls batchnorm_backward.
    assert lost_points(results) == delegating | {"conv_backward", "max_pool_backward",
                                                 "avg_pool_backward", "spatial_batchnorm_backward"}
    for function, (score, _) in support.score_by_function(results).items():
        if function in delegating:
            assert score == 0, function
    for function, line in marked_lines(folder).items():
        output = support.outputs_of(results, function)
        assert RULE.format(function=function, line=line) in output, output[:600]
        assert "raised" not in output.split("\n")[0]
    spatial = support.outputs_of(results, "spatial_batchnorm_backward")
    assert RULE.format(function="spatial_batchnorm_backward",
                       line=marked_lines(folder)["batchnorm_backward"]) in spatial
    # The import warning at the top names the torch imports of layers.py, with lines.
    imports = [number for number, line in enumerate((folder / "layers.py").read_text().splitlines(), 1)
               if line.strip().startswith("import torch")]
    assert len(imports) == 3
    assert (f"- layers.py, lines {', '.join(map(str, imports))}: imports torch. layers.py must "
            f"compute with numpy") in results["output"]


def test_a_backward_delegating_to_torch_autograd_costs_only_itself(tmp_path):
    folder = support.make_submission(tmp_path / "autograd", AUTOGRAD_BACKWARD)
    results = support.grade(folder)
    assert lost_points(results) == {"conv_backward"}
    output = support.outputs_of(results, "conv_backward")
    assert output.startswith("0/")
    assert RULE.format(function="conv_backward", line=marked_lines(folder)["conv_backward"]) in output


def test_an_unused_torch_import_costs_nothing_but_is_named(tmp_path):
    folder = support.make_submission(tmp_path / "unused", """
        import torch
        from torch import nn

        def helper_never_called():
            return torch.zeros(1)

        class NeverMade(nn.Module):
            pass

        assert not isinstance(np.zeros(1), torch.Tensor)
    """)
    results = support.grade(folder)
    assert lost_points(results) == set()
    assert results["score"] == support.points("layers")
    assert "imports torch. layers.py must compute with numpy" in results["output"]


def test_torch_used_while_importing_fails_the_import_with_the_reason(tmp_path):
    folder = support.make_submission(tmp_path / "at-import", """
        import torch
        torch.manual_seed(0)
    """)
    results = support.grade(folder)
    line = (folder / "layers.py").read_text().splitlines().index("torch.manual_seed(0)") + 1
    conv = support.outputs_of(results, "conv_forward")
    assert support.score_by_function(results)["conv_forward"][0] == 0
    assert (f"layers.py must compute with numpy: importing it used torch (layers.py, line {line}: "
            f"torch.manual_seed)") in conv


# -- the worker's hook alone, and the mount hiding -------------------------------------------

def run_layers_call(tmp_path, code, function, sandbox):
    """Run layers.function(x) of a layers.py made of code in a layers job; its StepResult."""
    (tmp_path / "layers.py").write_text(textwrap.dedent(code))
    job = new_job(f"numpy-only {function}")
    job.new_unit()
    step = job.call(f"layers.{function}", np.ones((2, 3)))
    return sandbox.run(job, {"layers.py": tmp_path / "layers.py"}).results[step]


HOOK_STYLES = {
    "top level": "import torch\ndef f(x):\n    return torch.as_tensor(x).numpy()\n",
    "in function": "def f(x):\n    import torch.nn.functional as F\n    return F.relu(x)\n",
    "importlib": "import importlib\ndef f(x):\n    return importlib.import_module('to' + 'rch').relu(x)\n",
    "__import__": "def f(x):\n    return __import__('torch').autograd.grad(x, x)\n",
    "from import": "from torch.autograd import grad\ndef f(x):\n    return grad(x, x)\n",
    "arithmetic": "import torch\ndef f(x):\n    return x * torch.pi\n",
    "as dtype": "import numpy as np, torch\ndef f(x):\n    return np.zeros(3, dtype=torch.float64)\n",
    "subclass": "import torch\nclass M(torch.nn.Module):\n    pass\ndef f(x):\n    return M()\n",
    "jax": "def f(x):\n    import jax.numpy as jnp\n    return jnp.asarray(x)\n",
}


@pytest.mark.parametrize("style", sorted(HOOK_STYLES))
def test_the_workers_hook_alone_refuses_every_import_style(tmp_path, style):
    box = Sandbox(user=None)                        # no identity change: no mount namespace either
    assert box.mount_plan() is None and box.forbidden_folders(new_job("x")) == ()
    result = run_layers_call(tmp_path, HOOK_STYLES[style], "f", box)
    framework = "jax" if style == "jax" else "torch"
    assert not result.ok and result.error["kind"] == "numpy_only", result.error
    assert result.error_text().startswith(f"layers.py must compute with numpy: f used {framework} "
                                          f"(layers.py, line ")
    assert "layers.py, line" in result.error["where"][-1]


def test_a_job_without_the_rule_keeps_torch(tmp_path):
    (tmp_path / "layers.py").write_text("import torch\ndef f(x):\n    return torch.as_tensor(x).numpy()\n")
    job = Job("torch allowed", files=["layers.py"])
    job.module("layers", "layers.py")
    step = job.call("layers.f", np.ones(2))
    result = Sandbox(user=None).run(job, {"layers.py": tmp_path / "layers.py"}).results[step]
    assert result.ok and result.value.tolist() == [1.0, 1.0]


BYPASSES = {
    "hook removed": f"""
        import sys
        def f(x):
            sys.meta_path[:] = [m for m in sys.meta_path if type(m).__name__ != "FrameworkBlocker"]
            for name in [n for n in sys.modules if n.split(".")[0] == "torch"]:
                del sys.modules[name]
            import torch
            return torch.as_tensor(x).numpy()
    """,
    "by path": f"""
        import importlib.util, sys
        def f(x):
            spec = importlib.util.spec_from_file_location(
                "torch", {str(TORCH_DIR / "__init__.py")!r}, submodule_search_locations=[{str(TORCH_DIR)!r}])
            module = importlib.util.module_from_spec(spec)
            sys.modules["torch"] = module
            spec.loader.exec_module(module)
            return module.as_tensor(x).numpy()
    """,
    "ctypes": f"""
        import ctypes
        def f(x):
            ctypes.CDLL({str(TORCH_DIR / "lib" / "libtorch_cpu.so")!r})
            return x
    """,
}


@pytest.mark.skipif(os.geteuid() != 0 or not mount_isolation(),
                    reason="hiding folders needs a root grader with mount namespaces")
@pytest.mark.parametrize("how", sorted(BYPASSES))
def test_as_root_the_frameworks_folders_are_hidden_so_bypassing_the_hook_fails(tmp_path, how):
    box = Sandbox()
    hidden = box.forbidden_folders(new_job("x"))
    assert str(TORCH_DIR) in hidden
    assert ("hide", str(TORCH_DIR)) in box.mount_plan(tmp_path, hidden).steps
    result = run_layers_call(tmp_path, BYPASSES[how], "f", box)
    assert not result.ok, f"{how}: torch was reachable"
    assert result.error["type"] in ("AttributeError", "FileNotFoundError", "OSError",
                                    "ModuleNotFoundError"), result.error


# -- which jobs are numpy only -----------------------------------------------------------------

def test_layers_jobs_forbid_the_frameworks_and_models_jobs_do_not():
    assert new_job("x").forbidden == {"modules": sorted(FRAMEWORKS), "file": "layers.py"}
    assert new_job("x").wire([])["forbidden"]["modules"] == sorted(FRAMEWORKS)
    ta_layers = _layers_job(Job("TA check", files=[]))
    assert ta_layers.forbidden["file"] == "layers.py"
    ta_mixed = _layers_job(Job("TA check", files=[]))
    ta_mixed.helper("cnn", __file__)
    ta_mixed.forbid((), None)
    assert _layers_job(ta_mixed).forbidden is None and "forbidden" not in ta_mixed.wire([])
    from autograder.parts.cnn.jobs import new_job as new_models_job
    assert new_models_job("m", []).forbidden is None
    # Stored outcomes of a job know whether it ran numpy only.
    plain = Job("x", files=["layers.py"])
    assert job_key(plain) != job_key(new_job("x"))


def test_import_warnings_name_framework_imports_of_layers_py_only(tmp_path):
    layers = tmp_path / "layers.py"
    layers.write_text("import numpy as np\nimport torch\n\ndef f():\n    import jax.numpy\n"
                      "    from torch.nn import functional\n")
    models = tmp_path / "models.py"
    models.write_text("import torch\nimport torch.nn as nn\n")
    lines = import_warnings(SimpleNamespace(files={"layers.py": layers, "models.py": models}))
    text = "\n".join(lines)
    assert "NUMPY ONLY: layers.py may use numpy and the standard library only." in text
    assert "- layers.py, lines 2, 6: imports torch. layers.py must compute with numpy" in text
    assert "- layers.py, line 5: imports jax. layers.py must compute with numpy" in text
    assert "models.py" not in text and "PACKAGES" not in text


def test_a_ta_check_calling_a_layer_that_uses_torch_fails_with_the_numpy_only_reason(tmp_path):
    from test_ta_checks import by_number, grade, write_checks
    submission = support.make_submission(tmp_path / "ta", AUTOGRAD_BACKWARD)
    checks = write_checks(tmp_path / "ta_checks", test_torch='''
        class Torch(unittest.TestCase):
            @weight(1)
            @number("9.1")
            @tags("conv_backward")
            def test_conv(self):
                x, w, b = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), np.zeros(1)
                out, cache = student.layers.conv_forward(x, w, b, {"stride": 1, "pad": 0})
                student.layers.conv_backward(np.ones_like(out), cache)
    ''')
    test = by_number(grade(submission, checks, tmp_path))["9.1"]
    line = marked_lines(submission)["conv_backward"]
    assert test["score"] == 0
    assert RULE.format(function="conv_backward", line=line) in test["output"], test["output"]
