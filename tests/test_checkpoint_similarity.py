"""Shared checkpoints across a class (issue #20, autograder/staff/checkpoint_similarity.py):
an export with a copied submission (same bytes), a fine-tuned copy and
independently trained models (another seed; the same seed-0 init and
another data order, as students following the notebook get) flags exactly
the copied pairs, in the CSV and report.html."""
import copy
import csv
import importlib.util
import shutil
from types import SimpleNamespace

import pytest
import torch

from autograder.layout import REFERENCE_DIR
from autograder.staff import checkpoint_similarity as similarity
from autograder.staff import class_results, report
from autograder.staff.regrade import ExportEntry, Outcome

CLASSES = 10


def reference_models():
    spec = importlib.util.spec_from_file_location("reference_models_issue20", REFERENCE_DIR / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_batches(seed, steps, batch=64):
    """A fixed 10-class task (the class's shared "dataset": prototypes + noise), drawn in the order of `seed`."""
    prototypes = torch.randn(CLASSES, 3, 32, 32, generator=torch.Generator().manual_seed(1234))
    draw = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        labels = torch.randint(0, CLASSES, (batch,), generator=draw)
        yield prototypes[labels] + 1.5 * torch.randn(batch, 3, 32, 32, generator=draw), labels


def train(model, data_seed, steps, lr=0.05):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for images, labels in synthetic_batches(data_seed, steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return model


def student(model_class, init_seed, data_seed, steps):
    """A student's model: the init of torch.manual_seed(init_seed) (the notebook seeds 0), trained."""
    torch.manual_seed(init_seed)
    return train(model_class(), data_seed, steps)


def fine_tuned(model, data_seed, steps):
    """A copy of model trained a little further on other batches."""
    return train(copy.deepcopy(model), data_seed, steps)


def make_export(root, model_name, models):
    """An export: submission_<name>/<model_name>.pt per {name: state_dict or bytes}."""
    export = root / "export"
    for name, state in models.items():
        folder = export / f"submission_{name}"
        folder.mkdir(parents=True)
        if isinstance(state, bytes):
            (folder / model_name).write_bytes(state)
        else:
            torch.save(state, folder / model_name)
    return export


def flagged(findings):
    return {(pair.first, pair.second) for pair in findings.pairs}


def copied_class(tmp_path, model_class, file_name, steps, tune_steps):
    torch.set_num_threads(1)
    original = student(model_class, 0, data_seed=1, steps=steps)
    models = {"a_original": original.state_dict(),
              "c_finetuned": fine_tuned(original, data_seed=99, steps=tune_steps).state_dict(),
              "d_other_seed": student(model_class, 7, data_seed=3, steps=steps).state_dict(),
              "e_same_init": student(model_class, 0, data_seed=2, steps=steps).state_dict()}
    export = make_export(tmp_path, file_name, models)
    shutil.copytree(export / "submission_a_original", export / "submission_b_copy")
    folders = {folder.name: folder for folder in export.iterdir()}
    return export, folders, models


COPIED = {("submission_a_original", "submission_b_copy"), ("submission_a_original", "submission_c_finetuned"),
          ("submission_b_copy", "submission_c_finetuned")}


def test_fcnet_copies_and_fine_tuned_copies_are_flagged_and_independent_models_never(tmp_path):
    export, folders, models = copied_class(tmp_path, reference_models().FCNet, "fcnet.pt", steps=40, tune_steps=10)
    findings = similarity.find_copies(folders)
    assert flagged(findings) == COPIED
    evidence = {(p.first, p.second): p for p in findings.pairs}
    assert evidence[("submission_a_original", "submission_b_copy")].evidence == "same file"
    tuned = evidence[("submission_a_original", "submission_c_finetuned")]
    assert tuned.evidence.startswith("near copy: per-layer cosine of the displacements from the common seed-0 init")
    assert tuned.shared_init and set(tuned.layers) == {"layers.1.weight", "layers.5.weight", "layers.9.weight"}
    assert findings.compared == 5 and findings.problems == []
    # Each independent pair scores well under the flag on its own too.
    init = similarity.seed0_init(models["a_original"])
    load = lambda name: similarity.load_checkpoint(folders[f"submission_{name}"] / "fcnet.pt", name, "FCNet")
    for other in ("d_other_seed", "e_same_init"):
        assert similarity.compare(load("a_original"), load(other), "FCNet", init) is None


def test_a_permuted_copy_and_a_copied_first_layer_are_flagged(tmp_path):
    torch.set_num_threads(1)
    FCNet = reference_models().FCNet
    original = student(FCNet, 3, data_seed=1, steps=20).state_dict()
    permuted = {k: v.clone() for k, v in original.items()}
    perm = torch.randperm(1024, generator=torch.Generator().manual_seed(5))
    for key in ("layers.1.weight", "layers.2.weight", "layers.2.bias", "layers.2.running_mean",
                "layers.2.running_var"):
        permuted[key] = permuted[key][perm]
    permuted["layers.5.weight"] = permuted["layers.5.weight"][:, perm]
    partial = student(FCNet, 4, data_seed=2, steps=20).state_dict()
    partial["layers.1.weight"] = original["layers.1.weight"].clone()
    findings = similarity.find_copies({f"submission_{n}": make_export(tmp_path / n, "fcnet.pt", {"x": s}) / "submission_x"
                                       for n, s in [("original", original), ("permuted", permuted),
                                                    ("partial", partial)]})
    pairs = {(p.first, p.second): p for p in findings.pairs}
    assert set(pairs) == {("submission_original", "submission_permuted"), ("submission_original", "submission_partial")}
    assert "after matching units" in pairs[("submission_original", "submission_permuted")].evidence


def test_checkpoints_that_are_not_state_dicts_are_reported_and_never_unpickled(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    FCNet = reference_models().FCNet
    export = make_export(tmp_path, "fcnet.pt", {"good": FCNet().state_dict(), "garbage": b"not a checkpoint"})
    for name, obj in [("object", Payload()), ("model", torch.nn.Sequential(torch.nn.Linear(4, 2))), ("list", [torch.zeros(3)])]:
        (export / f"submission_{name}").mkdir()
        torch.save(obj, export / f"submission_{name}" / "fcnet.pt")
    findings = similarity.find_copies({folder.name: folder for folder in export.iterdir()})
    assert not marker.exists()
    problems = {submission: why for submission, _, why in findings.problems}
    assert set(problems) == {"submission_garbage", "submission_object", "submission_model", "submission_list"}
    assert "weights_only=True" in problems["submission_object"] and "weights_only=True" in problems["submission_model"]
    assert problems["submission_list"].startswith("is not a state_dict")
    assert findings.compared == 1 and findings.pairs == []


def test_other_architectures_are_never_compared_and_unrelated_models_are_no_candidates(tmp_path):
    torch.set_num_threads(1)
    models = reference_models()
    small = lambda seed: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 64), torch.nn.ReLU(),
                                             torch.nn.Linear(64, 10))
    checkpoints = []
    for seed in range(12):
        torch.manual_seed(100 + seed)
        state = small(seed).state_dict()
        checkpoints.append(similarity.Checkpoint(f"s{seed}", "FCNet", str(seed), state).fingerprint({}))
    assert similarity.candidate_pairs(checkpoints) == []
    torch.manual_seed(0)
    same_weights = {k: v.clone() for k, v in models.FCNet().state_dict().items()}
    folders = {"submission_small": make_export(tmp_path / "1", "fcnet.pt", {"x": checkpoints[0].state}) / "submission_x",
               "submission_reference": make_export(tmp_path / "2", "fcnet.pt", {"x": same_weights}) / "submission_x"}
    findings = similarity.find_copies(folders)
    assert findings.compared == 2 and findings.candidates == 0 and findings.pairs == []


def test_the_csv_column_and_the_report_name_the_pairs_as_a_lead(tmp_path):
    pairs = [similarity.Pair("ConvNet", "submission_1", "submission_2", "same file"),
             similarity.Pair("FCNet", "submission_1", "submission_3", "=near copy: <b>", {"w": 0.9}, True)]
    findings = similarity.Findings(pairs, [("submission_4", "convnet.pt", "is not a state_dict")], 4, 2)
    entries = [ExportEntry(f"submission_{i}", [{"name": f"=Student {i}", "sid": str(i), "email": ""}])
               for i in range(1, 5)]
    outcomes = [Outcome(entry, {"score": 1.0, "tests": [], "execution_time": 2.0}) for entry in entries]
    header, rows = class_results.csv_rows(outcomes, [], findings)
    column = {row[0]: row[header.index("shared_checkpoint")] for row in rows}
    assert column == {"submission_1": "ConvNet: submission_2 (same file); FCNet: submission_3 (=near copy: <b>)",
                      "submission_2": "ConvNet: submission_1 (same file)",
                      "submission_3": "FCNet: submission_1 (=near copy: <b>)", "submission_4": ""}
    args = SimpleNamespace(rubric=class_results.ta_suite.TA_CHECKS_DIR.parent / "rubric.yaml", part="layers",
                           csv=tmp_path / "grades.csv", histogram=None, report=None, export_dir=tmp_path)
    class_results.write_all(outcomes, args, tmp_path, findings)
    with open(tmp_path / "grades.csv", newline="") as handle:
        assert [row["shared_checkpoint"] for row in csv.DictReader(handle)][2] == "FCNet: submission_1 (=near copy: <b>)"
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Shared checkpoints</h2>" in page and "not a verdict" in page
    assert "4 checkpoints compared, 2 candidate pairs after the fingerprints, 2 pairs flagged." in page
    assert "<td>review: =near copy: &lt;b&gt;</td>" in page and "<b>" not in page
    assert "<td>submission_4</td><td>convnet.pt</td><td>is not a state_dict</td>" in page
    assert "Shared checkpoints" not in report.render([], [], 10)


@pytest.mark.slow
def test_convnet_copies_and_fine_tuned_copies_are_flagged_and_independent_models_never(tmp_path):
    """Also the fully trained reference ConvNet and a copy of it fine-tuned 40 SGD steps (the issue's
    measured case: its predictions agree on only 86.5% of test images)."""
    ConvNet = reference_models().ConvNet
    export, folders, _ = copied_class(tmp_path, ConvNet, "convnet.pt", steps=30, tune_steps=10)
    reference = ConvNet()
    reference.load_state_dict(torch.load(REFERENCE_DIR / "convnet.pt", weights_only=True))
    for name, model in [("f_reference", reference), ("g_reference_tuned", fine_tuned(reference, 5, 40))]:
        (export / f"submission_{name}").mkdir()
        torch.save(model.state_dict(), export / f"submission_{name}" / "convnet.pt")
        folders[f"submission_{name}"] = export / f"submission_{name}"
    findings = similarity.find_copies(folders)
    assert flagged(findings) == COPIED | {("submission_f_reference", "submission_g_reference_tuned")}


def test_a_regrade_names_the_copied_pair_in_its_csv_column_and_report(tmp_path, capsys):
    from autograder import cli

    torch.manual_seed(3)
    state = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 32), torch.nn.Linear(32, 10)).state_dict()
    torch.manual_seed(4)
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 32), torch.nn.Linear(32, 10)).state_dict()
    export = make_export(tmp_path, "fcnet.pt", {"1": state, "3": other})
    shutil.copytree(export / "submission_1", export / "submission_2")
    grades = tmp_path / "grades.csv"
    assert cli.main(["regrade", str(export), "--csv", str(grades), "--part", "layers", "--time-budget", "60"]) == 0
    with open(grades, newline="") as handle:
        column = {row["submission"]: row["shared_checkpoint"] for row in csv.DictReader(handle)}
    assert column == {"submission_1": "FCNet: submission_2 (same file)",
                      "submission_2": "FCNet: submission_1 (same file)", "submission_3": ""}
    assert "<td>FCNet</td><td>submission_1</td><td></td><td>submission_2</td><td></td><td>same file</td>" in \
        (tmp_path / "report.html").read_text()
    assert "shared checkpoints: 1 pair flagged among 3 checkpoints" in capsys.readouterr().out
