"""autograder/bench/at_limits.py's submission at the limits of the rules, autograder/bench/bench.py's
reading of results and autograder/bench/box.py's cgroup box."""
import os
import sys

import numpy as np
import pytest

from autograder.bench import at_limits, bench, box
from autograder.parts.cnn.settings import load_settings
from autograder.rubric import RUBRIC_PATH

KEYS = ("parameters", "multiply_adds", "activations")


@pytest.fixture(scope="module")
def limits_submission(tmp_path_factory):
    settings = load_settings(RUBRIC_PATH)
    folder = tmp_path_factory.mktemp("at_limits")
    return settings, folder, at_limits.write_at_limits_submission(folder, settings)


@pytest.mark.slow
@pytest.mark.parametrize("name,prefix,closest", [("ConvNet", "convnet", 0.95), ("FCNet", "fcnet", 0.9)])
def test_at_limits_models_sit_just_under_every_limit(limits_submission, name, prefix, closest):
    settings, _, measured = limits_submission
    for key in KEYS:
        limit = settings[f"{prefix}_max_{key}"]
        assert measured[name][key] <= limit, (name, key)
    # The parameter limit is always filled; the compute limits as closely as the design allows.
    assert measured[name]["parameters"] >= 0.97 * settings[f"{prefix}_max_parameters"]
    for key in ("multiply_adds", "activations"):
        assert measured[name][key] >= closest * settings[f"{prefix}_max_{key}"], (name, key, measured[name])


@pytest.mark.slow
def test_at_limits_submission_obeys_the_architecture_rules(limits_submission):
    import torch

    settings, folder, _ = limits_submission
    assert sorted(path.name for path in folder.iterdir()) == ["convnet.pt", "fcnet.pt", "layers.py", "models.py"]
    namespace = {}
    exec(compile((folder / "models.py").read_text(), "models.py", "exec"), namespace)
    convnet, fcnet = namespace["ConvNet"](), namespace["FCNet"]()
    conv = sum(isinstance(m, torch.nn.Conv2d) for m in convnet.modules())
    linear = sum(isinstance(m, torch.nn.Linear) for m in convnet.modules())
    assert conv >= 2 and conv + linear == settings["convnet_weight_layers"][1]
    assert not any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in fcnet.modules())
    convnet.load_state_dict(torch.load(folder / "convnet.pt"), strict=True)
    fcnet.load_state_dict(torch.load(folder / "fcnet.pt"), strict=True)
    for model in (convnet.eval(), fcnet.eval()):
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_lost_to_the_clock_are_checks_not_run_or_timed_out():
    results = {"tests": [{"name": "a", "output": "ConvNet: 8 weight layers"},
                         {"name": "b", "output": "not run: the grading time budget of 480 s ran out"},
                         {"name": "c", "output": "ConvNet: timed out: training did not finish within 300 s"}]}
    assert bench.lost_to_clock(results) == ["b", "c"]
    assert bench.lost_to_clock({"tests": []}) == []


def fake_v1_tree(root):
    """Folders that look like v1 cpu and memory hierarchies but are plain folders."""
    for controller in ("cpu", "memory"):
        (root / controller).mkdir()
        (root / controller / "cgroup.procs").write_text("")


def test_no_box_names_the_file_when_the_cgroup_root_refuses_it(tmp_path, monkeypatch):
    fake_v1_tree(tmp_path)
    monkeypatch.setattr(box, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    reason = box.box_available()
    # A plain folder takes the new folder but has no cpu.cfs_period_us in it to write.
    assert reason and str(tmp_path / "cpu") in reason and "cpu.cfs_period_us" in reason, reason
    assert not list(tmp_path.glob("*/autograder-box-*")), "a failed box leaves nothing behind"


def test_no_box_when_the_folder_cannot_be_made(tmp_path, monkeypatch):
    fake_v1_tree(tmp_path)
    monkeypatch.setattr(box, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 0)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(box.Path, "mkdir", refuse)
    reason = box.box_available()
    assert reason and reason.startswith(f"cannot create {tmp_path / 'cpu'}") and "Permission denied" in reason


def test_no_box_names_the_missing_controller(tmp_path, monkeypatch):
    monkeypatch.setattr(box, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    reason = box.box_available()
    assert reason and str(tmp_path / "cpu" / "cgroup.procs") in reason and "missing" in reason
    (tmp_path / "cgroup.controllers").write_text("cpuset io pids\n")
    reason = box.box_available()
    assert reason and str(tmp_path / "cgroup.controllers") in reason and "cpu and memory" in reason


def test_no_box_when_not_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "not root" in box.box_available()


BOX_PROBLEM = box.box_available()
needs_box = pytest.mark.skipif(BOX_PROBLEM is not None, reason=f"no cgroup box here: {BOX_PROBLEM}")


@needs_box
def test_box_reports_an_oom_kill():
    allocate = "b = bytearray(300 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1"
    result = box.run_in_box([sys.executable, "-c", allocate], cpu=1, memory_mb=128, timeout=60)
    assert result.oom_kills >= 1 and result.status == -9, result
    assert 64 * box.MB < result.peak_bytes <= 128 * box.MB, result


@needs_box
def test_box_quota_stretches_a_cpu_bound_second_to_about_two():
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1: pass"
    result = box.run_in_box([sys.executable, "-c", spin], cpu=0.5, memory_mb=256, timeout=60)
    assert result.status == 0 and result.oom_kills == 0, result
    assert 1.0 <= result.cpu <= 1.6, result
    assert 1.6 <= result.wall <= 3.5, result


@needs_box
def test_box_kills_everything_at_the_timeout_and_is_removed():
    result = box.run_in_box(["sh", "-c", "sleep 30 & sleep 30; wait"], timeout=1)
    assert result.timed_out and result.wall < 10, result
    with box.Box() as made:
        directories = list(made.dirs.values())
        assert all(directory.is_dir() for directory in directories)
    assert not any(directory.exists() for directory in directories)


def test_the_boxed_grades_data_has_a_stand_in_cifar10_1_the_grader_finds_and_loads(tmp_path):
    """The bench's box runs pay for CIFAR-10.1 as Gradescope's grades do:
    2,000 training images in its published format beside the CIFAR-10 in use,
    loaded by fresh_data once their own MD5s stand in for the published ones."""
    from test_grader_cnn import synthetic_cifar

    from autograder.parts.cnn import fresh_data

    cifar10_dir = synthetic_cifar(tmp_path / "cifar", train_per_batch=2000) / "cifar-10-batches-py"
    (tmp_path / "data").mkdir()
    md5 = bench.stand_in_data_dir(tmp_path / "data", cifar10_dir)
    folder = fresh_data.find(str(tmp_path / "data"))
    assert folder == str(tmp_path / "data" / fresh_data.FOLDER)
    with pytest.raises(fresh_data.FreshDataError, match="MD5"):
        fresh_data.load(folder)                    # not the published files
    images, labels = fresh_data.load(folder, md5=md5)
    assert images.shape == (2000, 3, 32, 32) and images.dtype == np.uint8 and labels.shape == (2000,)
