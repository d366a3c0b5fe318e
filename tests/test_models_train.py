"""The reference models (solutions/cnn/models.py) against the rules the grader
checks, and smoke runs of the training loop (solutions/cnn/train.py) on tiny
synthetic data."""
import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

from conftest import import_reference

models = import_reference("models")
train_module = import_reference("train")
TrainConfig = train_module.TrainConfig

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The machine's cores are shared; these runs are tiny anyway."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_strict_json(path):
    """Parse path as standard JSON, which has no NaN or Infinity."""
    def reject(constant):
        raise ValueError(f"{path}: non-standard JSON constant {constant}")
    return json.loads(path.read_text(), parse_constant=reject)


def layers_with_parameters(model):
    return [module for module in model.modules() if list(module.parameters(recurse=False))]


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------

def test_fcnet_has_only_linear_weight_layers():
    model = models.FCNet()
    kinds = {type(module).__name__ for module in layers_with_parameters(model)}
    assert kinds <= {"Linear", "BatchNorm1d"}, f"FCNet has parameters in {sorted(kinds)}"
    assert not any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in model.modules())
    assert models.count_weight_layers(model) == sum(isinstance(m, nn.Linear) for m in model.modules()) >= 2


def test_convnet_layer_counts_and_parameter_budget():
    model = models.ConvNet()
    with_parameters = layers_with_parameters(model)
    others = [type(m).__name__ for m in with_parameters if not isinstance(m, WEIGHT_LAYERS + NORM_LAYERS)]
    assert not others, f"ConvNet has weights outside Conv2d/Linear/batch norm: {others}"
    convolutions = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    weight_layers = sum(isinstance(m, WEIGHT_LAYERS) for m in model.modules())
    assert 5 <= weight_layers <= 8, f"ConvNet has {weight_layers} Conv2d + Linear layers"
    assert convolutions >= 2, f"ConvNet has {convolutions} convolutions"
    assert models.count_weight_layers(model) == weight_layers
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters <= 1_000_000, f"ConvNet has {parameters:,} parameters"
    assert models.count_parameters(model) == parameters
    used = {type(m) for m in model.modules()}
    for required in (nn.BatchNorm2d, nn.ReLU, nn.Dropout):
        assert required in used, f"ConvNet does not use {required.__name__}"
    assert any(issubclass(kind, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d))
               for kind in used), "ConvNet does not pool"


@pytest.mark.parametrize("model_name", ["FCNet", "ConvNet"])
def test_model_maps_images_to_ten_logits(model_name):
    torch.manual_seed(0)
    model = getattr(models, model_name)()
    images = torch.randn(4, 3, 32, 32)
    logits = model(images)
    assert logits.shape == (4, 10) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    without_gradient = [name for name, p in model.named_parameters() if p.grad is None]
    assert not without_gradient, f"{model_name}: no gradient reaches {without_gradient}"
    model.eval()
    with torch.no_grad():
        single = model(images[:1])
    assert single.shape == (1, 10) and single.dtype == torch.float32


# ----------------------------------------------------------------------------
# Training loop
# ----------------------------------------------------------------------------

def band_images(count, seed):
    """Noise images whose class k is a bright band on rows 3k..3k+2: an
    easy problem a linear model solves in a few dozen steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = rng.integers(0, 100, (count, 3, 32, 32)).astype(np.uint8)
    for image, label in zip(images, labels):
        image[:, 3 * label:3 * label + 3, :] += 150
    return images, labels


def band_data(train_count=96, val_count=40, with_val=True):
    x_train, y_train = band_images(train_count, seed=0)
    data = {"x_train": x_train, "y_train": y_train}
    if with_val:
        data["x_val"], data["y_val"] = band_images(val_count, seed=1)
    return data


def linear_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))


def run(model, data, **config):
    return train_module.train(model, data, TrainConfig(**config), progress=False)


def test_history_has_a_loss_per_step_and_a_validation_per_epoch(tmp_path):
    model = linear_model()
    config = TrainConfig(epochs=2, batch_size=32, precision="fp32")
    log = tmp_path / "curve.json"
    history = train_module.train(model, band_data(train_count=96), config, log_path=str(log), progress=False)
    assert len(history["train_loss"]) == 6  # 96 images / 32 = 3 steps per epoch
    assert all(isinstance(loss, float) and math.isfinite(loss) for loss in history["train_loss"])
    assert [(v["step"], v["epoch"]) for v in history["val"]] == [(3, 1.0), (6, 2.0)]
    for entry in history["val"]:
        assert set(entry) == {"step", "epoch", "loss", "accuracy"}
        assert math.isfinite(entry["loss"]) and 0.0 <= entry["accuracy"] <= 1.0
    assert history["config"] == asdict(config)
    assert history["parameters"] == sum(p.numel() for p in model.parameters())
    assert history["seconds"] >= 0 and "diverged_at_step" not in history
    assert read_strict_json(log) == history


def test_eval_every_and_partial_last_batch():
    # 100 images in batches of 32: 4 steps per epoch, the last one of 4 images.
    history = run(linear_model(), band_data(train_count=100), epochs=1.5, batch_size=32,
                  eval_every=2, precision="fp32")
    assert len(history["train_loss"]) == 6
    assert [v["step"] for v in history["val"]] == [2, 4, 6]
    assert [v["epoch"] for v in history["val"]] == [0.5, 1.0, 1.5]


def test_without_validation_data_there_are_no_evaluations():
    history = run(linear_model(), band_data(with_val=False), epochs=1, batch_size=32)
    assert len(history["train_loss"]) == 3 and history["val"] == []


def test_max_steps_overrides_epochs():
    history = run(linear_model(), band_data(), epochs=100, max_steps=4, batch_size=32)
    assert len(history["train_loss"]) == 4
    assert history["val"][-1]["step"] == 4, "no evaluation after the last step"


def test_same_seed_gives_identical_histories_and_another_seed_does_not():
    data = band_data()

    def history_of(seed):
        history = run(linear_model(), data, epochs=2, batch_size=16, seed=seed)
        del history["seconds"]
        return history

    first, second, other = history_of(0), history_of(0), history_of(1)
    assert first == second
    assert first["train_loss"] != other["train_loss"]


def test_loop_learns_an_easy_problem():
    history = run(linear_model(), band_data(train_count=512, val_count=200), epochs=3, batch_size=64,
                  lr=0.01, label_smoothing=0.0, augment=False)
    losses = history["train_loss"]
    assert np.mean(losses[-4:]) < 0.25 * losses[0], f"loss did not fall: {losses}"
    assert history["val"][-1]["accuracy"] >= 0.9, history["val"]


@pytest.mark.parametrize("model_name", ["FCNet", "ConvNet"])
def test_checkpoint_is_a_state_dict_that_loads_strictly_into_a_fresh_model(tmp_path, model_name):
    torch.manual_seed(0)
    model = getattr(models, model_name)()
    checkpoint = tmp_path / f"{model_name}.pt"
    train_module.train(model, band_data(train_count=16, with_val=False),
                       TrainConfig(max_steps=2, batch_size=8), checkpoint_path=str(checkpoint), progress=False)
    state = torch.load(checkpoint, weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    assert all(v.is_contiguous() for v in state.values()), "checkpoint holds channels-last tensors"
    torch.manual_seed(1)
    fresh = getattr(models, model_name)()
    fresh.load_state_dict(state, strict=True)
    images = train_module.normalize(band_images(4, seed=2)[0])
    model.eval()
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(images), model(images), rtol=0, atol=0)


def test_diverging_run_stops_and_records_the_step(tmp_path):
    log = tmp_path / "diverged.json"
    history = train_module.train(linear_model(), band_data(), TrainConfig(max_steps=50, batch_size=16, lr=1e12),
                                 log_path=str(log), progress=False)
    step = history.get("diverged_at_step")
    assert step is not None and step < 50, f"no divergence recorded: {history['train_loss']}"
    losses = history["train_loss"]
    assert len(losses) == step, "training went on after the loss stopped being finite"
    assert not math.isfinite(losses[-1]) and all(math.isfinite(loss) for loss in losses[:-1])
    written = read_strict_json(log)
    assert written["diverged_at_step"] == step and written["train_loss"][-1] is None


# ----------------------------------------------------------------------------
# Devices and precision (this machine has no GPU: the CUDA and MPS choices are
# exercised up to where a device would be needed, and the float16 path with
# its gradient scaler on the CPU)
# ----------------------------------------------------------------------------

def test_auto_device_is_the_cpu_here_and_a_missing_gpu_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert train_module.pick_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU.*Colab"):
        train_module.pick_device("cuda")
    with pytest.raises(ValueError, match="no Apple GPU"):
        train_module.pick_device("mps")
    with pytest.raises(ValueError, match="one of auto, cpu, cuda, mps"):
        train_module.pick_device("gpu")


def test_auto_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert train_module.pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train_module.pick_device("auto").type == "mps"


def test_precision_per_device(monkeypatch):
    autocast = train_module.autocast_dtype
    assert autocast("cuda", "auto") == torch.float16
    assert autocast("cuda", "bf16") == torch.bfloat16
    assert autocast("mps", "auto") is None
    assert autocast("cpu", "fp32") is None and autocast("cuda", "fp32") is None
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: True)
    assert autocast("cpu", "auto") == torch.bfloat16
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: False)
    assert autocast("cpu", "auto") is None
    with pytest.raises(ValueError, match="for GPUs"):
        autocast("cpu", "fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast("cpu", "half")


def test_float16_training_path_scales_the_loss_and_saves_a_float32_cpu_state_dict(tmp_path, monkeypatch):
    """The CUDA recipe (float16 autocast + GradScaler), run on the CPU."""
    scalers = []
    real_scaler = torch.amp.GradScaler

    def recording_scaler(device, enabled=True):
        scaler = real_scaler(device, enabled=enabled)
        scalers.append(scaler)
        return scaler

    monkeypatch.setattr(train_module, "autocast_dtype", lambda device, precision: torch.float16)
    monkeypatch.setattr(torch.amp, "GradScaler", recording_scaler)
    torch.manual_seed(0)
    model = models.ConvNet()
    checkpoint = tmp_path / "convnet.pt"
    history = train_module.train(model, band_data(train_count=32, val_count=16),
                                 TrainConfig(max_steps=3, batch_size=16, device="cpu"),
                                 checkpoint_path=str(checkpoint), progress=False)
    assert history["precision"] == "fp16" and history["device"] == "cpu"
    assert scalers and scalers[0].is_enabled()
    assert all(math.isfinite(loss) for loss in history["train_loss"])
    state = torch.load(checkpoint, weights_only=True)
    assert all(v.device.type == "cpu" for v in state.values())
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())
    assert next(model.parameters()).device.type == "cpu", "train() must hand the model back on the CPU"


def test_train_py_help_offers_the_devices_and_presets(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--device {auto,cpu,cuda,mps}" in text and "convnet-cpu" in text


def test_train_py_asking_for_a_missing_gpu_exits_with_a_message(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["convnet-cpu", "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "train.py: device 'cuda' asked for, but torch sees no CUDA GPU" in capsys.readouterr().err
