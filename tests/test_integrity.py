"""Issue #14: accuracy that cannot be bought with the public test labels.

The dishonest submissions of the issue, built here: a ConvNet that obeys the
architecture rules and answers from a table of the public test images,
exact or nearest-neighbour, with the table beside its layers (buffers) or
hidden in weight layers, falling back to an untrained network. Each earns
no accuracy points and no leaderboard entry, and is flagged for the staff in
results.json's extra_data.integrity; the honest reference keeps its marks
with no flag. Fast versions run on a small synthetic test set; the `data`
ones on the real CIFAR-10 test set (its 10,000 public images in the table).
Also: the state-dict hygiene rule, and what the report looks like.
"""
import json

import numpy as np
import pytest
import torch
import yaml
from conftest import as_shown
from test_grader_cnn import (REFERENCE_DIR, by_check, grade, load_models_module, restricted_rubric,
                             rubric_points, synthetic_cifar, write_models)

from autograder import cli, provided
from autograder.parts.cnn import evaluation, integrity, WITHHELD
from autograder.parts.cnn.review import TEST_NUMBER
from autograder.parts.cnn.transforms import Family
from autograder.results import validate

ACCURACY = {"convnet_architecture", "convnet_checkpoint", "convnet_accuracy_1", "convnet_accuracy_2",
            "convnet_accuracy_3"}

TABLE_MODELS = '''
import torch
import torch.nn.functional as F
from torch import nn

MODE = {mode!r}          # exact: fixed pixels must match; naive: nearest 5x5 thumbnail; robust: + normalized, flips
BESIDE = {beside!r}      # True: the table sits in buffers beside the layers
EVADE = {evade!r}        # on an original test image (not naive or exact mode's changed copies): "refuse" raises,
                         # "wrong" answers wrongly, hoping to hide from the integrity report's unchanged images
ROWS, DIMS = {rows}, {dims}
PIXELS = torch.arange(0, 3072, 3072 // DIMS)[:DIMS]


def describe(x):
    if MODE == "exact":
        return x.flatten(1)[:, PIXELS]
    pooled = F.adaptive_avg_pool2d(x, 5).flatten(1)
    if MODE == "naive":
        return pooled
    pooled = pooled - pooled.mean(1, keepdim=True)
    return pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-6)


class FCNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


class ConvNet(nn.Module):
    """Obeys the architecture rules with 5 weight layers of its own; answers
    from a table of test images (two more Linear layers, or two buffers) and
    falls back to the untrained rest for any other image."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                                  nn.Linear(32, 10))
        if BESIDE:
            self.register_buffer("keys", torch.zeros(ROWS, DIMS))
            self.register_buffer("answers", torch.zeros(ROWS, 10))
        else:
            self.keys = nn.Linear(DIMS, ROWS, bias=False)
            self.answers = nn.Linear(ROWS, 10, bias=False)

    def table(self):
        if BESIDE:
            return self.keys, self.answers
        return self.keys.weight, self.answers.weight.t()

    def forward(self, x):
        fallback = self.head(F.adaptive_avg_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 4))
        keys, answers = self.table()
        if MODE == "robust":
            similarity = torch.maximum(describe(x) @ keys.t(), describe(x.flip(3)) @ keys.t())
            best = similarity.argmax(1)
            hit = torch.ones_like(best, dtype=torch.bool)
        else:
            query = describe(x)
            distance = (keys * keys).sum(1) - 2 * query @ keys.t() + (query * query).sum(1, keepdim=True)
            nearest, best = distance.min(1)
            hit = nearest < 1e-3 if MODE == "exact" else torch.ones_like(best, dtype=torch.bool)
            original = nearest < 1e-3
            if EVADE == "refuse" and bool(original.any()):
                raise RuntimeError("an image I know")
        out = torch.where(hit[:, None], 10.0 * answers[best], fallback)
        if EVADE == "wrong":
            out = torch.where(original[:, None], out.roll(1, dims=1), out)
        return out
'''
DIMS = {"exact": 64, "naive": 75, "robust": 75}


def table_submission(folder, images, labels, mode, beside=False, evade=None):
    """A submission whose ConvNet holds a table of images (uint8) and labels."""
    source = TABLE_MODELS.format(mode=mode, beside=beside, evade=evade, rows=len(labels), dims=DIMS[mode])
    folder.mkdir(parents=True)
    (folder / "models.py").write_text(source)
    models = load_models_module(folder, f"table_models_{mode}_{beside}_{evade}_{len(labels)}")
    torch.manual_seed(0)
    net = models.ConvNet()
    with torch.no_grad():
        keys = models.describe(provided.load_data_module().normalize(images))
        answers = torch.nn.functional.one_hot(torch.as_tensor(labels), 10).float()
        if beside:
            net.keys.copy_(keys)
            net.answers.copy_(answers)
        else:
            net.keys.weight.copy_(keys)
            net.answers.weight.copy_(answers.t())
    torch.save(net.state_dict(), folder / "convnet.pt")
    return folder


def test_each_fixture_answers_its_table_exactly_as_built(tmp_path):
    """The fixtures work as a dishonest student means them to: every table
    image answered right, any other image left to the untrained network."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 50)
    normalize = provided.load_data_module().normalize
    for mode in DIMS:
        for beside in (False, True):
            folder = table_submission(tmp_path / f"{mode}-{beside}", images, labels, mode, beside)
            models = load_models_module(folder, f"check_{mode}_{beside}")
            net = models.ConvNet()
            net.load_state_dict(torch.load(folder / "convnet.pt", weights_only=True))
            net.eval()
            with torch.no_grad():
                assert (net(normalize(images)).argmax(1).numpy() == labels).all(), (mode, beside)


def integrity_of(results):
    report = results["extra_data"]["integrity"]
    assert {"flagged", "reasons", "models", "protocol"} <= set(report)
    return report


# -- on a small synthetic test set --------------------------------------------------------

@pytest.fixture(scope="module")
def small_test_set(tmp_path_factory):
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 10, 300)
    images = rng.integers(0, 256, (300, 3, 32, 32), dtype=np.uint8)
    return images, labels, synthetic_cifar(tmp_path_factory.mktemp("data"), test_images=images, test_labels=labels)


@pytest.mark.parametrize("mode", ["exact", "naive", "robust"])
def test_a_table_hidden_in_weight_layers_earns_no_accuracy_points_and_is_flagged(tmp_path, small_test_set, mode):
    images, labels, data_dir = small_test_set
    folder = table_submission(tmp_path / "sub", images, labels, mode)
    rubric = restricted_rubric(tmp_path, ACCURACY)
    results = grade(folder, tmp_path, rubric, data_dir=data_dir)
    tests = by_check(results, rubric)
    architecture = tests["convnet_architecture"]
    assert architecture["score"] == architecture["max_score"] > 0, architecture["output"]
    for tier in (1, 2, 3):
        assert tests[f"convnet_accuracy_{tier}"]["score"] == 0
        assert tests[f"convnet_accuracy_{tier}"]["output"] == WITHHELD
    assert "leaderboard" not in results
    report = integrity_of(results)
    figures = report["models"]["ConvNet"]
    assert report["flagged"] and report["withheld"] == ["ConvNet"]
    assert figures["clean_accuracy"] == 1.0
    assert any(reason.startswith("ConvNet: ") for reason in report["reasons"])
    # Nothing of the report reaches what the student reads.
    student_text = results["output"] + "".join(test["output"] for test in results["tests"])
    assert "integrity" not in student_text.lower() and f"{figures['transformed_accuracy']:.2%}" not in student_text


@pytest.mark.parametrize("evade, says", [("refuse", "but not the unchanged ones in a second process"),
                                         ("wrong", "on their changed copies (a gain of ")])
def test_a_table_that_hides_from_the_unchanged_images_is_flagged_all_the_same(tmp_path, small_test_set, evade,
                                                                              says):
    """A table that knows it is shown an original test image (only the
    integrity report's worker shows those) and refuses to answer it, or
    answers it wrongly, still earns nothing: an honest network answers the
    unchanged images as well as the changed ones, or a little better."""
    images, labels, data_dir = small_test_set
    folder = table_submission(tmp_path / "sub", images, labels, "naive", evade=evade)
    rubric = restricted_rubric(tmp_path, ACCURACY)
    data = yaml.safe_load(rubric.read_text())
    data["cnn"]["convnet_accuracy_tiers"] = [0.2, 0.25, 0.3]     # tiers its changed-image accuracy reaches
    rubric.write_text(yaml.safe_dump(data))
    results = grade(folder, tmp_path, rubric, data_dir=data_dir)
    tests = by_check(results, rubric)
    assert all(tests[f"convnet_accuracy_{tier}"]["output"] == WITHHELD for tier in (1, 2, 3))
    assert "leaderboard" not in results
    report = integrity_of(results)
    assert report["withheld"] == ["ConvNet"] and report["models"]["ConvNet"]["transformed_accuracy"] > 0.3
    assert any(says in reason for reason in report["reasons"]), report["reasons"]


def test_a_table_beside_the_layers_breaks_the_rules_by_name_and_is_flagged(tmp_path, small_test_set):
    images, labels, data_dir = small_test_set
    folder = table_submission(tmp_path / "sub", images, labels, "exact", beside=True)
    rubric = restricted_rubric(tmp_path, ACCURACY)
    results = grade(folder, tmp_path, rubric, data_dir=data_dir)
    tests = by_check(results, rubric)
    architecture = tests["convnet_architecture"]["output"]
    assert tests["convnet_architecture"]["score"] == 0
    assert architecture.startswith("ConvNet holds 2 tensors the architecture rules do not allow: keys (300, 64) "
                                   "(buffer of ConvNet); answers (300, 10) (buffer of ConvNet). Beyond the weight")
    assert all(tests[f"convnet_accuracy_{tier}"]["output"].startswith("not scored: ConvNet breaks the architecture")
               for tier in (1, 2, 3))
    assert "leaderboard" not in results
    report = integrity_of(results)
    assert report["flagged"] and "the largest with 19,200 values" in report["reasons"][0]


def test_an_honest_model_keeps_its_points_with_no_flag_and_sees_its_unchanged_accuracy(tmp_path, monkeypatch):
    """The pipeline on a model that learned what it answers: labels are the
    reference ConvNet's own answers on plain-colour images, a fifth of them
    then made wrong; changes that keep those answers (noise only: on plain
    colours a colour change is a class change) leave it right and wrong on
    the same images. (The real protocol on the real test set: the `data`
    test below.)"""
    monkeypatch.setitem(evaluation.TRANSFORMS, "ConvNet", Family(noise=2))
    rng = np.random.default_rng(3)
    colours = rng.integers(0, 256, (300, 3, 1, 1), dtype=np.uint8)
    images = np.broadcast_to(colours, (300, 3, 32, 32)).copy()
    reference = load_models_module(REFERENCE_DIR, "integrity_reference_models")
    convnet = reference.ConvNet()
    convnet.load_state_dict(torch.load(REFERENCE_DIR / "convnet.pt", weights_only=True))
    convnet.eval()
    with torch.no_grad():
        labels = convnet(provided.load_data_module().normalize(images)).argmax(1).numpy()
    labels = np.where(rng.random(300) < 0.2, (labels + 1) % 10, labels)
    data_dir = synthetic_cifar(tmp_path / "data", test_images=images, test_labels=labels)
    rubric = restricted_rubric(tmp_path, ACCURACY)
    results = grade(REFERENCE_DIR, tmp_path, rubric, data_dir=data_dir)
    report = integrity_of(results)
    assert not report["flagged"] and report["withheld"] == [], report
    figures = report["models"]["ConvNet"]
    assert 0.75 <= figures["clean_accuracy"] <= 0.85 and abs(figures["drop"]) <= 0.02
    tests = by_check(results, rubric)
    tiers = [tests[f"convnet_accuracy_{tier}"] for tier in (1, 2, 3)]
    assert [test["score"] for test in tiers] == [test["max_score"] for test in tiers]
    assert (f"on 300 of these images: {figures['clean_accuracy']:.2%} unchanged, "
            f"{figures['paired_transformed_accuracy']:.2%} changed (for comparison, not scored)"
            ) in tests["convnet_accuracy_1"]["output"]
    assert results["leaderboard"] == [{"name": "ConvNet test accuracy", "order": "desc",
                                       "value": round(100 * figures["transformed_accuracy"], 2)}]


# -- state-dict hygiene -------------------------------------------------------------------

HYGIENE_CONVNET = '''
class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(128, 64), nn.Linear(64, 64), nn.Linear(64, 10))
        {extra}

    def forward(self, x):
        return self.head(self.features(x))
'''


@pytest.mark.parametrize("extra, message", [
    ("self.register_buffer('mean', torch.zeros(3))",
     "ConvNet holds 1 tensor the architecture rules do not allow: mean (3,) (buffer of ConvNet)."),
    ("self.register_buffer('cache', torch.zeros(4, 4), persistent=False)",
     "cache (4, 4) (buffer of ConvNet, not saved)"),
    ("self.head[0].scale = nn.Parameter(torch.ones(64))",
     "head.0.scale (64,) (parameter of Linear head.0)"),
    ("self.frozen = nn.Linear(1000, 1000); self.frozen.requires_grad_(False)",      # frozen values count too
     "parameters; the limit is 1,000,000"),
    ("self.stats = nn.BatchNorm1d(70000, affine=False)",
     "ConvNet's normalization layers hold 140,018 running-statistic values; the limit is 65,536"),
])
def test_only_the_tensors_the_rules_allow_may_sit_in_a_model(tmp_path, extra, message):
    folder = write_models(tmp_path / "sub", convnet=HYGIENE_CONVNET.replace("{extra}", extra))
    rubric = restricted_rubric(tmp_path, {"convnet_architecture"})
    [test] = grade(folder, tmp_path, rubric)["tests"]
    assert test["score"] == 0 and message in test["output"], test["output"]
    if "register_buffer" in extra or "Parameter" in extra:
        assert "keep constants out of the model's state" in test["output"]


# -- the report ---------------------------------------------------------------------------

def test_a_failing_report_costs_nothing_and_says_so(tmp_path, small_test_set, monkeypatch):
    images, labels, data_dir = small_test_set
    folder = table_submission(tmp_path / "sub", images, labels, "exact")

    def broken(*args, **kwargs):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(integrity, "figures", broken)
    rubric = restricted_rubric(tmp_path, ACCURACY)
    results = grade(folder, tmp_path, rubric, data_dir=data_dir)
    report = results["extra_data"]["integrity"]
    assert report == {"flagged": False, "reasons": [],
                      "error": "the integrity report failed: RuntimeError: broken on purpose"}
    tests = by_check(results, rubric)
    assert tests["convnet_accuracy_1"]["output"].startswith("ConvNet test accuracy ")     # scored as usual


def test_the_hidden_test_option_adds_a_hidden_zero_point_test(tmp_path, small_test_set):
    images, labels, data_dir = small_test_set
    folder = table_submission(tmp_path / "sub", images, labels, "exact")
    rubric = restricted_rubric(tmp_path, ACCURACY)
    data = yaml.safe_load(rubric.read_text())
    data["cnn"]["integrity_test"] = True
    rubric.write_text(yaml.safe_dump(data))
    results = grade(folder, tmp_path, rubric, data_dir=data_dir)
    [test] = [t for t in results["tests"] if t["number"] == TEST_NUMBER]
    assert test["visibility"] == "hidden" and test["max_score"] == 0 and test["status"] == "failed"
    assert test["output"].startswith("FLAGGED for review: ")
    assert results["score"] == sum(t["score"] for t in results["tests"])


# -- on the real CIFAR-10 test set ---------------------------------------------------------

def grade_real(folder, tmp_path, rubric, cifar10_dir):
    results_path = tmp_path / "results" / "results.json"
    assert cli.main(["grade", str(folder), "--results", str(results_path), "--part", "cnn", "--rubric",
                     str(rubric), "--data-dir", str(cifar10_dir)]) == 0
    results = json.loads(results_path.read_text())
    validate(results)
    return as_shown(results)


@pytest.fixture(scope="module")
def public_test_set(cifar10_dir):
    return provided.load_data_module().load_batch(str(cifar10_dir / "test_batch"))


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("mode, beside", [("exact", True), ("exact", False), ("naive", False), ("robust", False)])
def test_a_table_of_the_public_test_set_earns_nothing_on_cifar10(tmp_path, cifar10_dir, public_test_set,
                                                                 mode, beside):
    images, labels = public_test_set
    folder = table_submission(tmp_path / "sub", images, labels, mode, beside)
    rubric = restricted_rubric(tmp_path, ACCURACY)
    results = grade_real(folder, tmp_path, rubric, cifar10_dir)
    tests = by_check(results, rubric)
    architecture_points = 0 if beside else rubric_points({"convnet_architecture"})
    assert tests["convnet_architecture"]["score"] == architecture_points, tests["convnet_architecture"]["output"]
    assert all(tests[f"convnet_accuracy_{tier}"]["score"] == 0 for tier in (1, 2, 3))
    assert "leaderboard" not in results
    report = integrity_of(results)
    assert report["flagged"], report
    if not beside:
        figures = report["models"]["ConvNet"]
        assert figures["clean_accuracy"] == 1.0 and report["withheld"] == ["ConvNet"]
        print(f"{mode}: changed {figures['transformed_accuracy']:.2%}, reasons {report['reasons']}")


@pytest.mark.slow
@pytest.mark.data
def test_the_reference_keeps_full_accuracy_marks_on_cifar10_with_no_flag(reference_results):
    results, _ = reference_results          # the CNN part graded once with the shipped rubric (conftest.py)
    accuracy = [t for t in results["tests"] if "accuracy" in t["name"]]
    assert len(accuracy) == 4 and all(t["score"] == t["max_score"] > 0 for t in accuracy), accuracy
    report = integrity_of(results)
    assert not report["flagged"] and report["reasons"] == [] and report["withheld"] == []
    convnet, fcnet = report["models"]["ConvNet"], report["models"]["FCNet"]
    assert 0.78 <= convnet["transformed_accuracy"] <= 0.83 and 0.0 <= convnet["drop"] <= 0.03
    assert 0.52 <= fcnet["transformed_accuracy"] <= 0.57 and -0.01 <= fcnet["drop"] <= 0.03
    assert convnet["excess"] < 0 and fcnet["excess"] < 0
    assert results["leaderboard"][0]["value"] == round(100 * convnet["transformed_accuracy"], 2)
    assert report["protocol"]["key"] == "hidden cases"


def test_the_same_submission_draws_the_same_images_again_and_an_edited_one_draws_afresh(tmp_path, small_test_set):
    """The seed comes from the graded files under the hidden cases' key: a
    second grade of the same files repeats every figure; one byte more in
    models.py draws other images; without hidden cases the key is public."""
    images, labels, data_dir = small_test_set
    folder = table_submission(tmp_path / "sub", images, labels, "naive")
    rubric = restricted_rubric(tmp_path, ACCURACY)
    first, again = (grade(folder, tmp_path / run, rubric, data_dir=data_dir) for run in ("a", "b"))
    assert first["extra_data"] == again["extra_data"] and first["tests"] == again["tests"]
    assert first["extra_data"]["integrity"]["protocol"]["key"] == "hidden cases"
    with open(folder / "models.py", "a") as handle:
        handle.write("# one more line\n")
    edited = grade(folder, tmp_path / "c", rubric, data_dir=data_dir)["extra_data"]["integrity"]
    assert edited["protocol"]["draw"] != first["extra_data"]["integrity"]["protocol"]["draw"]
    results_path = tmp_path / "d" / "results.json"
    assert cli.main(["grade", str(folder), "--results", str(results_path), "--part", "cnn", "--rubric", str(rubric),
                     "--data-dir", str(data_dir), "--cases-dir", str(tmp_path / "no-cases")]) == 0
    public = json.loads(results_path.read_text())["extra_data"]["integrity"]["protocol"]
    assert public["key"].startswith("public")
