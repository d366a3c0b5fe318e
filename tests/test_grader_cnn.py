"""The CNN part of the grader (issue #5): architecture rules, checkpoint
loading, test-set accuracy tiers, the FCNet-vs-ConvNet loss curves, and what
happens without a data set.

The reference is graded once on the real CIFAR-10 (module fixture, slow).
Everything else uses small stand-ins: rubrics restricted to the checks a test
is about, synthetic data sets in the real file format, and a short curve
protocol, so each of these tests takes a few seconds.
"""
import importlib.util
import json
import pickle
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from autograder import cli, provided
from autograder.layout import WORKER_DIR
from autograder.parts import GradingContext
from autograder.parts.cnn import CURVE_CHECKS, grade_curves
from autograder.parts.cnn import curves as curve_checks
from autograder.parts.cnn import evaluation
from autograder.parts.cnn.transforms import Family
from autograder.parts import cnn as cnn_part
from autograder.parts.cnn.jobs import TorchMissing, error_text, new_job
from autograder.parts.cnn.data_protocol import CHANCE_LOSS, CURVE_PROTOCOL, evaluation_steps
from autograder.parts.cnn.settings import DEFAULTS, SettingsError, load_settings
from autograder.results import MAX_RESULTS_BYTES, validate
from autograder.rubric import RUBRIC_PATH, RubricError, load_rubric, read_rubric
from autograder.sandbox import Sandbox
from autograder.submission import find_submission
from conftest import as_shown, shown

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO / "solutions" / "cnn"
RUBRIC = yaml.safe_load(RUBRIC_PATH.read_text())

# Small models in the shape of a student's models.py; {convnet} is replaced by a ConvNet class.
SMALL_MODELS = '''
import torch
from torch import nn


class FCNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 32), nn.ReLU(),
                                    nn.Linear(32, 10))

    def forward(self, x):
        return self.layers(x)

{convnet}
'''

SMALL_CONVNET = '''
class ConvNet(nn.Module):
    def __init__(self, n_conv=4, extra_linear=0):
        super().__init__()
        layers, channels = [], 3
        for _ in range(n_conv):
            layers += [nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()]
            channels = 8
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Sequential(*[nn.Linear(128, 128) for _ in range(extra_linear)], nn.Linear(128, 10))

    def forward(self, x):
        return self.head(self.features(x))
'''


def write_models(folder, convnet=SMALL_CONVNET, extra=""):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = SMALL_MODELS.replace("{convnet}", textwrap.dedent(convnet)) + textwrap.dedent(extra)
    (folder / "models.py").write_text(source)
    return folder


def load_models_module(folder, name):
    """The models.py of folder as module `name` of this test process (to build
    checkpoints; registered in sys.modules so that whole models can be pickled)."""
    spec = importlib.util.spec_from_file_location(name, Path(folder) / "models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def rubric_points(checks=None, part=None):
    """Points of the shipped rubric for a check id, a set of them, or a part."""
    checks = {checks} if isinstance(checks, str) else checks
    return sum(e.points for e in load_rubric() if (checks is None or e.check in checks)
               and part in (None, e.part))


def restricted_rubric(tmp_path, checks, layer_checks=()):
    """A rubric file with only the given CNN (and layer) checks, same numbers and points."""
    tests = [t for t in RUBRIC["tests"]
             if (t["part"] == "cnn" and t["check"] in checks) or
             (t["part"] == "layers" and t["check"] in layer_checks)]
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump({"tests": tests, "cnn": RUBRIC["cnn"]}))
    return path


def grade(folder, tmp_path, rubric, data_dir=None, part="cnn"):
    results_path = tmp_path / "results" / "results.json"
    argv = ["grade", str(folder), "--results", str(results_path), "--part", part, "--rubric", str(rubric)]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    assert cli.main(argv) == 0
    results = json.loads(results_path.read_text())
    validate(results)
    return as_shown(results)       # the words of the feedback (tests/test_pictures.py: its pictures)


def by_check(results, rubric_path):
    """{check id: test} of a results.json graded with rubric_path."""
    number_to_check = {e.number: e.check for e in load_rubric(rubric_path)}
    return {number_to_check[t["number"]]: t for t in results["tests"] if t["number"] in number_to_check}


def write_batch(path, images, labels):
    with open(path, "wb") as handle:
        pickle.dump({b"data": images.reshape(len(images), -1), b"labels": [int(v) for v in labels]}, handle)


def synthetic_images(labels, seed):
    """Images a small model can learn in a few steps: noise plus a bright
    square whose position encodes the label."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 120, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    for index, label in enumerate(labels):
        row, col = divmod(int(label), 4)
        images[index, :, row * 8:row * 8 + 8, col * 8:col * 8 + 8] = 250
    return images


def synthetic_cifar(folder, train_per_batch=0, test_images=None, test_labels=None, seed=0):
    """A cifar-10-batches-py folder with learnable synthetic data."""
    folder = Path(folder) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    if test_images is None:
        test_labels = rng.integers(0, 10, 200)
        test_images = synthetic_images(test_labels, seed + 1)
    write_batch(folder / "test_batch", test_images, test_labels)
    for index in range(1, 6):
        if train_per_batch:
            labels = rng.integers(0, 10, train_per_batch)
            write_batch(folder / f"data_batch_{index}", synthetic_images(labels, seed + 10 + index), labels)
    return folder.parent


# -- the reference on the real data -----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.data
def test_reference_gets_full_cnn_marks_on_the_real_test_set(reference_results):
    results, folder = reference_results
    cnn_tests = [t for t in results["tests"] if t["max_score"] > 0]
    assert len(cnn_tests) == 12
    failed = {t["name"]: t["output"] for t in cnn_tests if t["status"] != "passed"}
    assert not failed
    assert results["score"] == sum(t["max_score"] for t in cnn_tests) == rubric_points(part="cnn")
    [entry] = results["leaderboard"]
    assert entry["name"] == "ConvNet test accuracy" and entry["order"] == "desc"
    assert 78.0 <= entry["value"] <= 83.0          # the reference ConvNet: 79.64% on the 5,000 changed images


@pytest.mark.slow
@pytest.mark.data
def test_reference_output_carries_the_key_numbers_and_names_the_plot(reference_results):
    results, folder = reference_results
    outputs = {t["number"]: shown(t) for t in results["tests"]}
    first_tier = load_settings(RUBRIC_PATH)["convnet_accuracy_tiers"][0]
    assert (f"ConvNet test accuracy 79.64% reaches {first_tier:.0%} (5,000 fixed CIFAR-10 test images, each with a "
            "small change that keeps its class)") in outputs["6.1"]
    assert "on 1,500 of these images: 80.53% unchanged, 79.20% changed" in outputs["6.1"]
    assert "FCNet test accuracy 5" in outputs["6.4"]
    assert "final held-out loss: ConvNet 1.6" in outputs["7.2"]
    assert "held-out loss by step {0: 2.30" in outputs["7.4"]
    plot = folder / curve_checks.PLOT_NAME
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(plot) in shown(results)


@pytest.mark.slow
@pytest.mark.data
def test_reference_results_show_the_curves_classes_filters_and_layer_table(reference_results):
    """On Gradescope (html): both curves as an image in the curve tests, a
    per-class breakdown in the accuracy tests, the filters and the layer table."""
    results, folder = reference_results
    tests = {t["number"]: t for t in results["tests"]}

    def images(number):
        return tests[number]["output"].count('<img src="data:image/png;base64,')
    assert all(images(n) == 1 for n in ("7.1", "7.2", "7.3", "7.4", "6.1", "6.4", "5.1", "5.2", "5.3"))
    assert "held-out loss of your FCNet (orange) and ConvNet (blue) over the reference band" in shown(tests["7.1"])
    for number in ("6.1", "6.2", "6.3"):
        assert "ConvNet accuracy per class: airplane " in shown(tests[number]) and "truck " in shown(tests[number])
    assert "FCNet accuracy per class: airplane " in shown(tests["6.4"])
    assert "first-layer filters of convnet.pt: 24 filters of 3x3 on 3 input channels" in shown(tests["5.3"])
    table = shown(tests["5.1"])
    assert "layer\ttype\toutput shape (one image)\tparameters\tmultiply-adds per image" in table
    assert "features.0\tConv2d\t24 x 32 x 32\t648\t664 k" in table
    assert "ConvNet cost: parameters 636 k of 1 M (64%)" in table
    assert (folder / "results.json").stat().st_size <= MAX_RESULTS_BYTES
    assert (folder / "results.html").read_text().count("data:image/png") >= 9


def test_without_torch_for_the_workers_the_cnn_part_blames_the_installation(tmp_path):
    """An image built without torch must not tell students their models.py
    fails to import: the part stops with TorchMissing, which grade.py reports
    as an autograder error on the CNN tests only."""
    venv = tmp_path / "no-torch"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ctx = GradingContext(submission=find_submission(write_models(tmp_path / "sub")),
                         sandbox=SimpleNamespace(python=str(venv / "bin" / "python")), cases_dir=None,
                         settings=load_settings(RUBRIC_PATH))
    with pytest.raises(TorchMissing, match=r"torch is not installed for .*no-torch/bin/python"):
        cnn_part.grade(ctx, {"convnet_architecture"})


# -- architecture ---------------------------------------------------------------------------

NINE_LAYER_CONVNET = SMALL_CONVNET.replace("def __init__(self, n_conv=4, extra_linear=0)",
                                           "def __init__(self, n_conv=7, extra_linear=1)")
CONV_FCNET = '''
class FCNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))
'''


def test_nine_weight_layer_convnet_and_fcnet_with_conv_fail_architecture_with_the_layer_list(tmp_path):
    folder = write_models(tmp_path / "sub", convnet=NINE_LAYER_CONVNET, extra=CONV_FCNET)
    rubric = restricted_rubric(tmp_path, {"convnet_architecture", "fcnet_architecture"})
    tests = by_check(grade(folder, tmp_path, rubric), rubric)
    convnet, fcnet = tests["convnet_architecture"], tests["fcnet_architecture"]
    assert convnet["score"] == 0 and fcnet["score"] == 0
    assert convnet["output"].startswith("ConvNet has 9 weight layers (Conv2d x7, Linear x2); "
                                        "it must have 5 to 8")
    assert "features.18 Conv2d(8->8, 3x3)" in convnet["output"] and "head.1 Linear(128->10)" in convnet["output"]
    assert fcnet["output"].startswith("FCNet must use nn.Linear weight layers only; found "
                                      "convolutions: conv Conv2d(3->4, 3x3)")
    assert "fc Linear(4096->10)" in fcnet["output"]


def test_rules_in_bounds_pass_and_budget_shape_and_constructor_problems_are_named(tmp_path):
    good = write_models(tmp_path / "good")
    rubric = restricted_rubric(tmp_path, {"convnet_architecture", "fcnet_architecture"})
    tests = by_check(grade(good, tmp_path, rubric), rubric)
    assert all(tests[check]["score"] == rubric_points(check) for check in ("convnet_architecture", "fcnet_architecture"))
    assert "5 weight layers (Conv2d x4, Linear x1)" in tests["convnet_architecture"]["output"]

    odd = write_models(tmp_path / "odd", convnet='''
        class ConvNet(nn.Module):
            def __init__(self, width):
                super().__init__()
        ''', extra='''
        class FCNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3 * 32 * 32, 4000)

            def forward(self, x):
                return self.fc(x.flatten(1))[:, :7].double()
        ''')
    tests = by_check(grade(odd, tmp_path, rubric), rubric)
    assert ("ConvNet() must be constructible with no arguments; its __init__ requires width"
            in tests["convnet_architecture"]["output"])
    fc_output = tests["fcnet_architecture"]["output"]
    assert tests["fcnet_architecture"]["score"] == 0
    assert "maps a (2, 3, 32, 32) batch to shape (2, 7); expected (2, 10)" in fc_output


def test_parameter_budget_comes_from_the_rubric_settings(tmp_path):
    folder = write_models(tmp_path / "sub")
    rubric = restricted_rubric(tmp_path, {"convnet_architecture"})
    data = yaml.safe_load(rubric.read_text())
    data["cnn"]["convnet_max_parameters"] = 1000
    rubric.write_text(yaml.safe_dump(data))
    [test] = grade(folder, tmp_path, rubric)["tests"]
    assert test["score"] == 0 and "parameters; the limit is 1,000" in test["output"]


# -- the compute rule ---------------------------------------------------------------------

@pytest.fixture
def worker_torch(monkeypatch):
    """autograder/worker/torch_steps.py as a worker runs it: with the provided data.py
    and train.py as modules data and train."""
    monkeypatch.setitem(sys.modules, "data", provided.load_data_module())
    spec = importlib.util.spec_from_file_location("train", provided.provided_path("train.py"))
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    monkeypatch.setitem(sys.modules, "train", train)
    spec = importlib.util.spec_from_file_location("torch_steps", WORKER_DIR / "torch_steps.py")
    torch_steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(torch_steps)
    return torch_steps


def test_model_cost_counts_multiply_adds_and_the_tensors_a_forward_pass_creates(worker_torch):
    for inplace, activations in ((False, 8192 + 8192 + 10), (True, 8192 + 10)):
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=inplace), nn.Flatten(),
                              nn.Linear(8192, 10))
        # conv: 8 outputs x 27 inputs x 1024 pixels; linear: 8192 x 10; views and in-place ops create nothing
        assert worker_torch.model_cost(model) == {"multiply_adds": 8 * 27 * 1024 + 8192 * 10,
                                                  "activations": activations}


def rubric_with_compute_limits(tmp_path, checks, **limits):
    rubric = restricted_rubric(tmp_path, checks)
    data = yaml.safe_load(rubric.read_text())
    data["cnn"].update(limits)
    rubric.write_text(yaml.safe_dump(data))
    return rubric


@pytest.mark.parametrize("limit, figure", [("convnet_max_multiply_adds", "multiply_adds"),
                                           ("convnet_max_activations", "activations")])
def test_a_model_over_the_compute_rule_is_rejected_by_name_before_any_image_runs(tmp_path, limit, figure,
                                                                                  worker_torch):
    from autograder.parts.cnn.architecture import amount
    folder = write_models(tmp_path / "sub")
    models = load_models_module(folder, f"compute_rule_models_{figure}")
    torch.manual_seed(0)   # an untrained net: its init decides its (chance) accuracy and the integrity figures
    torch.save(models.ConvNet().state_dict(), folder / "convnet.pt")
    cost = worker_torch.model_cost(models.ConvNet())[figure]
    checks = {"convnet_architecture", "convnet_accuracy_1", "curves_fall"}
    data_dir = synthetic_cifar(tmp_path / "data")
    word = {"multiply_adds": "multiply-adds", "activations": "activation values"}[figure]

    over = rubric_with_compute_limits(tmp_path, checks, **{limit: int(cost * 0.99)})
    tests = by_check(grade(folder, tmp_path, over, data_dir=data_dir), over)
    assert tests["convnet_architecture"]["score"] == 0
    assert tests["convnet_architecture"]["output"].startswith(
        f"ConvNet: {amount(cost)} {word} per image")
    assert f"the limit is {amount(int(cost * 0.99))}" in tests["convnet_architecture"]["output"]
    # Neither the test images nor the training runs were paid for.
    assert tests["convnet_accuracy_1"]["output"] == (
        "not scored: ConvNet breaks the architecture rules (see its architecture test); "
        "its test images were not run")
    assert tests["curves_fall"]["output"].startswith("not run: the curves are compared only for models "
                                                     "that follow the architecture rules; fix ConvNet")

    under = rubric_with_compute_limits(tmp_path, checks, **{limit: int(cost * 1.01)})
    tests = by_check(grade(folder, tmp_path, under, data_dir=data_dir), under)
    assert tests["convnet_architecture"]["score"] == rubric_points("convnet_architecture")
    assert f"{amount(cost)} {word.split()[0]}" in tests["convnet_architecture"]["output"]
    assert "ConvNet test accuracy" in tests["convnet_accuracy_1"]["output"]
    # Past the rules: here only the synthetic data set's missing training batches stop the curves.
    assert tests["curves_fall"]["output"].startswith("not run: no CIFAR-10 training images")


def test_the_worker_refuses_to_predict_with_a_model_over_the_compute_rule(worker_torch):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8192, 10))
    images = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    assert worker_torch.predict(model, images, {"multiply_adds": 4e5, "activations": 1e5}).shape == (4, 10)
    with pytest.raises(worker_torch.StudentError, match="needs 303,104 multiply-adds per image; the limit is 300,000"):
        worker_torch.predict(model, images, {"multiply_adds": 3e5, "activations": 1e5}, "ConvNet")


# -- checkpoints ----------------------------------------------------------------------------

def gpu_saved(state_dict, path):
    """A state_dict file as torch.save writes it on a GPU machine: the same
    archive with every storage located on 'cuda:0' (this machine has no GPU)."""
    torch.save(state_dict, path)
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            if info.filename.endswith("/data.pkl"):
                assert cpu in data
                data = data.replace(cpu, cuda)
            archive.writestr(info, data)


def malformed_checkpoints(folder):
    """{file name: (what it is, expected message fragment)} written into folder."""
    models = load_models_module(folder, "ckpt_models")
    torch.manual_seed(0)
    good = models.ConvNet().state_dict()
    files = {}

    def add(name, fragment, write):
        write(folder / name)
        files[name] = fragment

    add("whole.pt", "Save model.state_dict(), not the model", lambda p: torch.save(models.ConvNet(), p))
    add("script.pt", "is a TorchScript archive", lambda p: torch.jit.save(torch.jit.script(models.FCNet()), p))
    add("missing_keys.pt", "missing keys (2): head.0.weight, head.0.bias",
        lambda p: torch.save({k: v for k, v in good.items() if not k.startswith("head.")}, p))
    add("parallel.pt", "every key starts with 'module.'",
        lambda p: torch.save({f"module.{k}": v for k, v in good.items()}, p))
    add("shapes.pt", "wrong shapes (1): head.0.weight: file (10, 64), model (10, 128)",
        lambda p: torch.save(dict(good, **{"head.0.weight": torch.zeros(10, 64)}), p))
    add("nan.pt", "has NaN or infinite values in 1 tensors (head.0.bias)",
        lambda p: torch.save(dict(good, **{"head.0.bias": torch.full((10,), float("nan"))}), p))
    add("nested.pt", "a training checkpoint with the weights nested under 'model_state_dict'",
        lambda p: torch.save({"epoch": 3, "model_state_dict": good}, p))
    add("garbage.pt", "is not a file torch.save wrote", lambda p: p.write_bytes(b"not a checkpoint" * 10))
    add("empty.pt", "is empty", lambda p: p.write_bytes(b""))
    return files


@pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")
def test_each_malformed_checkpoint_gets_a_message_saying_what_to_fix(tmp_path):
    folder = write_models(tmp_path / "sub")
    files = malformed_checkpoints(folder)
    models = load_models_module(folder, "gpu_models")
    gpu_saved(models.ConvNet().state_dict(), folder / "gpu.pt")
    job = new_job("checkpoints", list(files) + ["gpu.pt"])
    steps = {}
    for name in list(files) + ["gpu.pt"]:
        job.new_unit()
        steps[name] = job.call("cnn.load_checkpoint", "ConvNet", name, encode="out_cache", timeout_scale=3)
    submission = {name: str(folder / name) for name in list(files) + ["gpu.pt", "models.py"]}
    outcome = Sandbox().run(job, submission).results
    for name, fragment in files.items():
        result = outcome[steps[name]]
        assert not result.ok, name
        message = error_text(result)
        assert fragment in message, f"{name}: {message}"
        assert "save" in message.lower(), f"{name}: the message must say how to save it: {message}"
    gpu = outcome[steps["gpu.pt"]]
    assert gpu.ok, error_text(gpu)
    assert "saved from a GPU" in gpu.value[0]["note"]


def test_missing_oversize_and_pickled_checkpoints_in_a_graded_submission(tmp_path):
    folder = write_models(tmp_path / "sub")
    models = load_models_module(folder, "graded_models")
    torch.save(models.FCNet(), folder / "fcnet.pt")                 # the whole model
    with open(folder / "convnet.pt", "wb") as handle:               # sparse, over the cap
        handle.truncate(50_000_001)
    rubric = restricted_rubric(tmp_path, {"convnet_checkpoint", "fcnet_checkpoint", "convnet_accuracy_1"})
    tests = by_check(grade(folder, tmp_path, rubric, data_dir=synthetic_cifar(tmp_path / "data")), rubric)
    assert tests["convnet_checkpoint"]["score"] == 0
    assert "convnet.pt is larger than the 50,000,000 bytes allowed" in tests["convnet_checkpoint"]["output"]
    assert tests["convnet_accuracy_1"]["output"].startswith("not run: convnet.pt is larger")
    assert "Save model.state_dict(), not the model" in tests["fcnet_checkpoint"]["output"]

    (folder / "convnet.pt").unlink()
    tests = by_check(grade(folder, tmp_path, rubric, data_dir=synthetic_cifar(tmp_path / "data2")), rubric)
    assert "convnet.pt was not found in the submission" in tests["convnet_checkpoint"]["output"]


# -- accuracy --------------------------------------------------------------------------------

@pytest.mark.slow
def test_accuracy_is_scored_by_the_grader_and_an_untrained_checkpoint_fails_every_tier(tmp_path, monkeypatch):
    """Test labels are the reference ConvNet's own predictions on synthetic
    images: the reference checkpoint scores 100 %, an untrained ConvNet ~10 %.
    That also shows the grader keeps the labels aligned with the images it
    shuffled. (The images are shown unchanged here, and 100 % on them is not
    held for review: tests/test_integrity.py covers both.)"""
    monkeypatch.setitem(evaluation.TRANSFORMS, "ConvNet", Family())
    reference = load_models_module(REFERENCE_DIR, "accuracy_reference_models")
    convnet = reference.ConvNet()
    convnet.load_state_dict(torch.load(REFERENCE_DIR / "convnet.pt", weights_only=True))
    convnet.eval()
    images = synthetic_images(np.arange(300) % 10, seed=5)
    data = provided.load_data_module()
    with torch.no_grad():
        labels = convnet(data.normalize(images)).argmax(1).numpy()
    assert len(set(labels.tolist())) >= 3, "degenerate labels would make this test weak"
    data_dir = synthetic_cifar(tmp_path / "data", test_images=images, test_labels=labels)

    trained = tmp_path / "trained"
    trained.mkdir()
    for name in ("models.py", "convnet.pt"):
        shutil.copy(REFERENCE_DIR / name, trained / name)
    untrained = tmp_path / "untrained"
    shutil.copytree(trained, untrained)
    torch.manual_seed(1)
    torch.save(reference.ConvNet().state_dict(), untrained / "convnet.pt")

    checks = {"convnet_checkpoint", "convnet_accuracy_1", "convnet_accuracy_2", "convnet_accuracy_3"}
    rubric = restricted_rubric(tmp_path, checks | {"convnet_architecture"})
    rubric.write_text(rubric.read_text().replace("integrity_withhold: true", "integrity_withhold: false"))
    good = grade(trained, tmp_path, rubric, data_dir=data_dir)
    assert [t["score"] for t in good["tests"]] == [t["max_score"] for t in good["tests"]]
    assert len(good["tests"]) == 5 and good["score"] == rubric_points(checks | {"convnet_architecture"})
    assert good["leaderboard"] == [{"name": "ConvNet test accuracy", "value": 100.0, "order": "desc"}]

    bad = by_check(grade(untrained, tmp_path, rubric, data_dir=data_dir), rubric)
    assert bad["convnet_checkpoint"]["score"] == rubric_points("convnet_checkpoint")
    for tier, threshold in enumerate(load_settings(RUBRIC_PATH)["convnet_accuracy_tiers"], start=1):
        test = bad[f"convnet_accuracy_{tier}"]
        assert test["score"] == 0 and f"is below {threshold:.0%}" in test["output"], test["output"]


def test_accuracy_is_not_scored_for_a_model_that_breaks_the_rules(tmp_path):
    folder = write_models(tmp_path / "sub", convnet=NINE_LAYER_CONVNET)
    models = load_models_module(folder, "rule_breaking_models")
    torch.save(models.ConvNet().state_dict(), folder / "convnet.pt")
    rubric = restricted_rubric(tmp_path, {"convnet_architecture", "convnet_accuracy_1"})
    tests = by_check(grade(folder, tmp_path, rubric, data_dir=synthetic_cifar(tmp_path / "data")), rubric)
    assert tests["convnet_accuracy_1"]["score"] == 0
    assert tests["convnet_accuracy_1"]["output"].startswith("not scored: ConvNet breaks the architecture rules")


def test_without_a_data_set_data_checks_fail_with_directions_and_the_rest_still_scores(tmp_path, monkeypatch):
    # The grader's provided code in a folder without data/ next to it, and no CIFAR10_DIR.
    copy = tmp_path / "provided"
    copy.mkdir()
    for name in provided.PROVIDED_FILES:
        shutil.copy(REFERENCE_DIR / name, copy / name)
    monkeypatch.setattr(provided, "COPY_DIR", copy)
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    rubric = restricted_rubric(tmp_path, {"convnet_architecture", "fcnet_checkpoint", "convnet_accuracy_1",
                                          "curves_fall"}, layer_checks={"max_pool_forward"})
    tests = by_check(grade(REFERENCE_DIR, tmp_path, rubric, part="all"), rubric)
    for check in ("max_pool_forward", "convnet_architecture", "fcnet_checkpoint"):
        assert tests[check]["score"] == rubric_points(check)
    for check in ("convnet_accuracy_1", "curves_fall"):
        output = tests[check]["output"]
        assert tests[check]["score"] == 0 and output.startswith("not run: no CIFAR-10")
        assert "CIFAR10_DIR" in output and "--data-dir" in output and "python data.py" in output


def test_a_data_dir_without_the_data_is_reported_not_replaced_by_another_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_DIR", str(synthetic_cifar(tmp_path / "elsewhere")))
    empty = tmp_path / "empty"
    empty.mkdir()
    rubric = restricted_rubric(tmp_path, {"convnet_accuracy_1"})
    test = by_check(grade(REFERENCE_DIR, tmp_path, rubric, data_dir=empty), rubric)["convnet_accuracy_1"]
    assert test["score"] == 0 and f"CIFAR-10 not found in {empty}" in test["output"]


def test_missing_models_file_fails_every_cnn_check_with_its_name(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "layers.py").write_text("")
    rubric = restricted_rubric(tmp_path, {"convnet_architecture", "fcnet_accuracy", "curves_fall"})
    results = grade(folder, tmp_path, rubric)
    assert len(results["tests"]) == 3
    assert all(t["score"] == 0 and "models.py was not found" in t["output"] for t in results["tests"])


# -- when models.py cannot even build a model --------------------------------------------------

CUDA_FORWARD_CONVNET = SMALL_CONVNET.replace("        return self.head(self.features(x))",
                                             "        x = x.to(torch.device('cuda'))\n"
                                             "        return self.head(self.features(x))")
CUDA_INIT_CONVNET = SMALL_CONVNET.replace("        self.head = nn.Sequential(",
                                          "        self.cuda()\n        self.head = nn.Sequential(")
UNBUILT_CHECKS = {"convnet_architecture", "convnet_checkpoint", "convnet_accuracy_1", "curves_fall"}


def grade_unbuilt(tmp_path, convnet=SMALL_CONVNET, extra=""):
    """Grade a models.py whose ConvNet cannot be built or run, with a
    convnet.pt of the same keys (saved from the plain small ConvNet)."""
    plain = load_models_module(write_models(tmp_path / "plain"), f"plain_models_{tmp_path.name}")
    folder = write_models(tmp_path / "sub", convnet=convnet, extra=extra)
    torch.save(plain.ConvNet().state_dict(), folder / "convnet.pt")
    rubric = restricted_rubric(tmp_path, UNBUILT_CHECKS)
    return by_check(grade(folder, tmp_path, rubric, data_dir=synthetic_cifar(tmp_path / "data")), rubric)


def test_an_import_error_is_named_by_every_check_with_the_students_frames_only(tmp_path):
    tests = grade_unbuilt(tmp_path, extra="import scipy_is_not_installed_here\n")
    architecture = tests["convnet_architecture"]["output"]
    assert architecture.startswith("ConvNet() could not be built and run on a (2, 3, 32, 32) batch: the "
                                   "submission could not be imported: ModuleNotFoundError: No module "
                                   "named 'scipy_is_not_installed_here'")
    frames = architecture.split("Traceback (your code, most recent call last):\n", 1)[1]
    assert frames.lstrip().startswith("models.py, line ") and "import scipy_is_not_installed_here" in frames
    for test in tests.values():
        assert test["score"] == 0 and "<frozen" not in test["output"]
    curves = tests["curves_fall"]["output"]
    assert curves.startswith("not run: ConvNet() and FCNet() could not be built and run: the submission "
                             "could not be imported: ModuleNotFoundError")
    assert "architecture rules" not in curves


@pytest.mark.skipif(torch.cuda.is_available(), reason="the grader's machines have no GPU")
@pytest.mark.parametrize("convnet, line", [(CUDA_FORWARD_CONVNET, "x = x.to(torch.device('cuda'))"),
                                           (CUDA_INIT_CONVNET, "self.cuda()")])
def test_a_model_that_asks_for_a_gpu_is_told_the_grader_has_none_and_how_to_fix_it(tmp_path, convnet, line):
    tests = grade_unbuilt(tmp_path, convnet=convnet)
    architecture = tests["convnet_architecture"]["output"]
    first, second = architecture.split("\n")[:2]
    assert first.startswith("ConvNet() could not be built and run on a (2, 3, 32, 32) batch: raised ")
    assert first.endswith("(the grader has no GPU)")
    assert second.startswith("The grader has no GPU: it runs your models on the CPU only")
    assert "device=x.device" in second and "torch.cuda.is_available()" in second
    assert line in architecture                                  # the student's own line
    accuracy = tests["convnet_accuracy_1"]["output"]
    assert accuracy.startswith("not run: ") and "(the grader has no GPU)" in accuracy
    assert "breaks the architecture rules" not in accuracy
    curves = tests["curves_fall"]["output"]
    assert curves.startswith("not run: ConvNet() could not be built and run: raised ")
    assert "(the grader has no GPU)" in curves and "architecture rules" not in curves
    assert all(tests[check]["score"] == 0 for check in ("convnet_architecture", "convnet_accuracy_1",
                                                        "curves_fall"))


def test_a_rule_breaking_model_still_hears_about_the_architecture_rules_in_the_curve_checks(tmp_path):
    tests = grade_unbuilt(tmp_path, convnet=NINE_LAYER_CONVNET)
    assert tests["curves_fall"]["output"] == (
        "not run: the curves are compared only for models that follow the architecture rules; fix "
        "ConvNet first (see the architecture tests)")


# -- loss curves on a short protocol ------------------------------------------------------------

SHORT_PROTOCOL = {
    "training_images": 5 * 60, "train_size": 192, "held_out_size": 64, "subset_seed": 3,
    "config": {"max_steps": 36, "batch_size": 16, "lr": 0.05, "warmup": 0.1, "label_smoothing": 0.0,
               "augment": False, "precision": "fp32", "eval_every": 12, "weight_decay": 5e-4},
}
CONSTANT_CONVNET = SMALL_CONVNET + '''
    def forward(self, x):   # ignores the image: nothing to learn
        return self.head(self.features(x)) * 0.0
'''
DIVERGING_CONVNET = SMALL_CONVNET + '''
    def forward(self, x):   # logits scaled so far up that SGD overflows to inf and NaN
        return self.head(self.features(x)) * 1e30
'''


@pytest.fixture(scope="module")
def curve_data(tmp_path_factory):
    return synthetic_cifar(tmp_path_factory.mktemp("curve-data"), train_per_batch=60, seed=7)


def run_curves(folder, data_dir, tmp_path, band_path=None):
    settings = load_settings(RUBRIC_PATH)
    ctx = GradingContext(submission=find_submission(folder), sandbox=Sandbox(), cases_dir=None,
                         data_dir=str(data_dir), output_dir=tmp_path)
    return grade_curves(ctx, settings, {"ConvNet": True, "FCNet": True}, protocol=SHORT_PROTOCOL,
                        band_path=band_path or tmp_path / "no-band.json")


@pytest.mark.slow
def test_small_models_that_learn_pass_the_comparison_checks(tmp_path, curve_data):
    results = run_curves(write_models(tmp_path / "sub"), curve_data, tmp_path)
    assert results["curves_fall"].fraction == 1.0, results["curves_fall"]
    assert results["curve_convnet_area"].summary.startswith("area under the held-out loss curve")
    # No band for this protocol: the band check says so instead of guessing.
    assert "reference band is unusable" in results["curve_convnet_band"].summary
    assert (tmp_path / curve_checks.PLOT_NAME).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("convnet, expected", [
    (CONSTANT_CONVNET, "ConvNet does not learn: held-out loss went from 2.303 before training to 2.303"),
    (DIVERGING_CONVNET, "ConvNet's training loss became NaN or infinite at step"),
])
def test_a_model_that_does_not_learn_or_diverges_fails_the_curve_checks(tmp_path, curve_data, convnet, expected):
    results = run_curves(write_models(tmp_path / "sub", convnet=convnet), curve_data, tmp_path)
    assert results["curves_fall"].fraction == 0.5
    assert expected in results["curves_fall"].summary
    assert results["curve_convnet_below_fcnet"].fraction == 0.0
    assert results["curve_convnet_area"].fraction == 0.0
    assert results["curve_convnet_band"].fraction == 0.0
    if "NaN" in expected:
        for check in CURVE_CHECKS:
            assert "NaN or infinite" in results[check].summary


def test_a_crashing_training_run_fails_every_curve_check_with_the_error(tmp_path, curve_data):
    folder = write_models(tmp_path / "sub", convnet=SMALL_CONVNET + '''
    def forward(self, x):
        raise RuntimeError("shapes do not match")
''')
    results = run_curves(folder, curve_data, tmp_path)
    for check in CURVE_CHECKS:
        assert results[check].fraction == 0.0
        assert results[check].summary.startswith("training ConvNet() with the provided loop failed: "
                                                 "raised RuntimeError: shapes do not match")


# Runs in the worker next to the provided training loop: rewrites what the
# loop reports for a ConvNet that learns nothing.
FORGED_REPORT = """
import sys
import numpy as np

_cnn = sys.modules["cnn"]
_honest_train_curve = _cnn.train_curve


def _forged_train_curve(class_name, *args):
    run = _honest_train_curve(class_name, *args)
    if class_name == "ConvNet":
        run["train_loss"] = np.linspace(2.3, 0.05, len(run["train_loss"]))
        run["val_loss"] = np.linspace(2.3, 0.1, len(run["val_step"]))
        run["diverged_at_step"] = 0
        # confident logits, but with no labels to go by
        run["val_logits"] = np.where(np.arange(10) == 3, 20.0, 0.0) + 0 * run["val_logits"]
    return run


_cnn.train_curve = _forged_train_curve
"""


@pytest.mark.slow
def test_a_model_that_forges_its_reported_losses_earns_no_curve_points(tmp_path, curve_data):
    honest = run_curves(write_models(tmp_path / "honest", convnet=CONSTANT_CONVNET), curve_data,
                        tmp_path)
    forged = run_curves(write_models(tmp_path / "forged", convnet=CONSTANT_CONVNET, extra=FORGED_REPORT),
                        curve_data, tmp_path)
    for check in CURVE_CHECKS:
        assert forged[check].fraction <= honest[check].fraction, (check, forged[check])
    assert forged["curves_fall"].fraction == 0.5
    assert forged["curves_fall"].summary.startswith("ConvNet does not learn: held-out loss went from")
    assert forged["curve_convnet_below_fcnet"].fraction == 0.0


# -- curve judgements on hand-made runs ---------------------------------------------------------------

def make_curve(name, start, end, held_out, steps=200, diverged=0):
    """A run evaluated at steps 0 (before training), 50, ..., 200."""
    train = np.linspace(start, end, steps)
    return curve_checks.Curve(name, train, np.array([0, 50, 100, 150, 200]),
                              np.array([CHANCE_LOSS] + list(held_out), float), diverged)


def test_margin_area_and_band_judgements():
    settings = dict(DEFAULTS)
    fcnet = make_curve("FCNet", 2.3, 1.8, [2.5, 2.1, 1.8, 1.72])
    close = make_curve("ConvNet", 2.3, 1.7, [2.4, 2.1, 1.8, 1.65])
    far = make_curve("ConvNet", 2.3, 1.5, [2.0, 1.86, 1.64, 1.49])
    assert curve_checks.judge_margin(fcnet, close, settings, 200).fraction == 0.0
    assert curve_checks.judge_margin(fcnet, far, settings, 200).fraction == 1.0
    assert curve_checks.judge_area(fcnet, far, 200).fraction == 1.0
    assert curve_checks.judge_area(far, fcnet, 200).fraction == 0.0
    band = {"seeds": [0, 1, 2, 3, 4],
            "held_out": {"steps": [0, 50, 100, 150, 200], "low": [2.0, 1.7, 1.6, 1.4, 1.25],
                         "high": [2.4, 2.3, 2.1, 1.9, 1.7]}}
    assert curve_checks.judge_band(far, band, 200).fraction == 1.0
    slow = curve_checks.judge_band(fcnet, band, 200)
    # step 0 (before training) is not judged: initialisations may differ
    assert slow.fraction == 2 / 4
    assert "step 50: held-out loss 2.500 is above the band [1.700, 2.300]" in slow.details[0]
    assert "step 200: held-out loss 1.720 is above the band [1.250, 1.700]" in slow.details[1]


def test_learning_needs_the_held_out_loss_to_drop_and_end_below_chance():
    settings = dict(DEFAULTS)
    flat = make_curve("ConvNet", 2.30, 1.2, [2.3, 2.3, 2.3, 2.29])
    overfits = make_curve("FCNet", 2.3, 1.0, [2.1, 2.0, 2.1, CHANCE_LOSS - 0.05])
    result = curve_checks.judge_fall([flat, overfits], settings, 200)
    assert result.fraction == 0.0
    assert result.summary.startswith("ConvNet does not learn: held-out loss went from 2.303 "
                                     "before training to 2.290 (needs a drop of at least 0.1)")
    assert any("final held-out loss 2.253 is not below 2.203" in line for line in result.details)
    learns = make_curve("ConvNet", 2.3, 1.2, [2.0, 1.8, 1.7, 1.6])
    assert curve_checks.judge_fall([learns, learns], settings, 200).fraction == 1.0


def test_held_out_loss_is_computed_by_the_grader_from_logits_and_its_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 40, 10)).astype(np.float32) * [[[1.0]], [[5.0]], [[30.0]]]
    labels = rng.integers(0, 10, 40)
    losses, accuracy = curve_checks.held_out_scores(logits, labels)
    for index in range(3):
        expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits[index]).double(),
                                                     torch.from_numpy(labels))
        assert losses[index] == pytest.approx(float(expected), rel=1e-9)
        assert accuracy[index] == np.mean(logits[index].argmax(1) == labels)
    logits[1, 3, 2] = np.nan
    assert np.isnan(curve_checks.held_out_scores(logits, labels)[0][1])

    steps = [0, 50, 100]
    value = {"train_loss": np.linspace(2.3, 1.0, 100), "val_step": np.array(steps),
             "val_logits": logits, "diverged_at_step": 0}
    curve = curve_checks.Curve.from_value("ConvNet", value, labels, steps)
    assert curve.val_loss[0] == pytest.approx(losses[0])
    assert "held-out logits are NaN or infinite" in curve.problem(100)
    # anything but logits of every evaluation for every held-out image is not a run
    assert curve_checks.Curve.from_value("ConvNet", value, labels[:-1], steps) is None
    assert curve_checks.Curve.from_value("ConvNet", value, labels, [0, 25, 100]) is None
    assert curve_checks.Curve.from_value("ConvNet", dict(value, val_logits=logits[..., :9]), labels, steps) is None
    assert curve_checks.Curve.from_value("ConvNet", {"val_loss": [0.1, 0.1, 0.1]}, labels, steps) is None


# -- rubric, settings, band -----------------------------------------------------------------------

def test_rubric_cnn_part_is_tagged_by_model_and_named_with_its_thresholds():
    # Totals are the rubric's to choose: test_rubric_promises.py compares them with the README.
    entries = [e for e in load_rubric() if e.part == "cnn"]
    assert all(set(e.tags) <= {"ConvNet", "FCNet"} and e.tags for e in entries)
    settings = load_settings(RUBRIC_PATH)
    names = {e.check: e.name for e in entries}
    for tier, threshold in enumerate(settings["convnet_accuracy_tiers"], start=1):
        assert f">= {100 * threshold:g}%" in names[f"convnet_accuracy_{tier}"]
    assert f">= {100 * settings['fcnet_accuracy']:g}%" in names["fcnet_accuracy"]


def test_settings_errors_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump({"tests": [], "cnn": {"fcnet_accuracy": 45}}))
    with pytest.raises(SettingsError, match=r"rubric.yaml: cnn settings .*fcnet_accuracy must be in \(0, 1\]"):
        load_settings(path)
    path.write_text(yaml.safe_dump({"tests": [], "cnn": {"tiers": [0.5]}}))
    with pytest.raises(SettingsError, match="unknown keys tiers"):
        load_settings(path)
    # Read through the rubric (the part's read_settings), the same message as a RubricError.
    with pytest.raises(RubricError, match=r"rubric.yaml: cnn settings .*unknown keys tiers"):
        read_rubric(path)


def test_a_grade_reads_the_rubric_once_and_hands_the_part_its_settings(tmp_path, monkeypatch):
    rubric = rubric_with_compute_limits(tmp_path, {"convnet_architecture"}, convnet_max_parameters=1234)
    folder = write_models(tmp_path / "sub")
    reads = []
    real_read_text = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (
        reads.append(self) if self == rubric else None) or real_read_text(self, *a, **k))
    results = grade(folder, tmp_path, rubric)
    assert reads == [rubric]
    tests = by_check(results, rubric)
    assert "1234" in tests["convnet_architecture"]["output"].replace(",", "")


def test_shipped_band_matches_the_protocol_and_holds_the_reference_with_slack():
    band = curve_checks.load_band()
    assert band["protocol"] == CURVE_PROTOCOL and len(band["seeds"]) >= 5
    held = band["held_out"]
    assert held["steps"] == evaluation_steps() and held["steps"][0] == 0
    # before training, the reference is at chance level whatever the seed
    assert abs(held["mean"][0] - CHANCE_LOSS) < 0.02
    for mean, spread, low, high in list(zip(held["mean"], held["spread"], held["low"], held["high"]))[1:]:
        assert low < mean - 2 * spread and high > mean + 2 * spread and high - low >= 0.3
    # the reference FCNet ends outside the ConvNet band: the band tells the two apart
    assert band["fcnet_held_out_mean"][-1] > held["high"][-1]


def test_the_reference_passes_every_curve_check_on_every_calibration_seed():
    """The protocol keeps its power: the shipped band's per-seed runs of the
    reference, judged by the grader's own curve checks, earn every point."""
    band = curve_checks.load_band()
    steps = np.array(band["held_out"]["steps"])
    total = CURVE_PROTOCOL["config"]["max_steps"]
    settings = load_settings(RUBRIC_PATH)
    for seed, runs in band["per_seed"].items():
        curves = {name: curve_checks.Curve(name, np.full(total, 2.0), steps, np.array(runs[name]["held_out"]), 0)
                  for name in ("FCNet", "ConvNet")}
        fcnet, convnet = curves["FCNet"], curves["ConvNet"]
        verdicts = [curve_checks.judge_fall([fcnet, convnet], settings, total),
                    curve_checks.judge_margin(fcnet, convnet, settings, total),
                    curve_checks.judge_area(fcnet, convnet, total),
                    curve_checks.judge_band(convnet, band, total)]
        assert all(v.fraction == 1.0 for v in verdicts), (seed, [v.summary for v in verdicts])


def test_the_compute_rule_is_stated_with_the_rubric_numbers_wherever_students_read_it():
    settings = load_settings(RUBRIC_PATH)
    keys = ("convnet_max_multiply_adds", "convnet_max_activations", "fcnet_max_multiply_adds",
            "fcnet_max_activations")
    prose = {"models.py docstring": (REFERENCE_DIR / "models.py").read_text(),
             "solutions/README.md": (REPO / "solutions" / "README.md").read_text()}
    for where, text in prose.items():
        for key in keys:
            assert f"{settings[key]:,}" in text, f"{where} does not state {key} = {settings[key]:,}"
    notebook = (REFERENCE_DIR / "3_cifar10_training.ipynb").read_text()
    for key in keys:
        assert f"{settings[key]:_}" in notebook, f"notebook 3's check cell does not use {key} = {settings[key]:_}"


@pytest.mark.parametrize("checks", [{"convnet_architecture", "convnet_checkpoint"},
                                    {"convnet_checkpoint", "convnet_accuracy_1", "fcnet_accuracy"}])
def test_a_rubric_that_leaves_accuracy_tiers_out_grades_what_it_keeps(tmp_path, checks):
    """Checkpoints present, some or all accuracy checks absent from the rubric:
    the kept checks are graded, nothing fails in the grader."""
    folder = write_models(tmp_path / "sub")
    models = load_models_module(folder, f"leave_out_{len(checks)}")
    torch.manual_seed(0)
    torch.save(models.ConvNet().state_dict(), folder / "convnet.pt")
    torch.save(models.FCNet().state_dict(), folder / "fcnet.pt")
    rubric = restricted_rubric(tmp_path, checks)
    results = grade(folder, tmp_path, rubric, data_dir=synthetic_cifar(tmp_path / "data"))
    assert sorted(by_check(results, rubric)) == sorted(checks)
    assert not any("autograder itself failed" in t["output"] for t in results["tests"]), results["tests"]
