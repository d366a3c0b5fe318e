"""Training loop for the CIFAR-10 models (provided code, nothing to implement).

From a notebook:

    from data import load_cifar10
    from models import ConvNet
    from train import TrainConfig, split_validation, train
    data = split_validation(load_cifar10())
    history = train(ConvNet(), data, TrainConfig(epochs=2), checkpoint_path="convnet.pt")

From a shell (the presets in PRESETS; `python train.py --help` lists them):

    python train.py convnet-cpu               # ConvNet, sized for a laptop CPU
    python train.py convnet --device cuda     # a longer schedule, for a GPU
    python train.py fcnet --epochs 5 --data-dir ~/data
    python train.py --report                  # your models' sizes and costs (models.py's rules)

Devices: TrainConfig.device 'auto' takes a CUDA GPU, then Apple's MPS, then
the CPU. Each gets what fits it: float16 mixed precision on CUDA, bfloat16 on
CPUs that compute it natively, float32 elsewhere. The model comes back on the
CPU and the checkpoint is always a CPU state_dict, which the grader loads as is.

The grader runs this same loop on its CPU, with a fixed seed, subset and step
budget, to compare the learning curves of your FCNet and ConvNet.
"""
import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F

from data import DatasetError, load_cifar10, normalize


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 10            # passes over the training images (may be fractional)
    max_steps: int = 0            # if > 0: stop after this many steps whatever epochs says
    batch_size: int = 512
    lr: float = 0.2               # peak learning rate of SGD with Nesterov momentum
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: float = 0.15          # share of the steps spent raising the rate from 0 to lr
    label_smoothing: float = 0.1
    augment: bool = True          # random crop (4-pixel padding) and horizontal flip
    seed: int = 0
    eval_every: int = 0           # steps between held-out evaluations; 0 = once per epoch
    precision: str = "auto"       # 'auto' (see module docstring), 'fp32', 'bf16' or 'fp16' (CUDA)
    device: str = "auto"          # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda' or 'mps'


# `convnet-cpu` (4 epochs in float32, about 20 minutes on two CPU cores) and
# `fcnet` trained the reference checkpoints (`make reference`); `convnet` is
# the longer schedule for a GPU. The README has each preset's measured time
# and accuracy.
PRESETS = {
    "convnet": TrainConfig(epochs=10, lr=0.4, weight_decay=5e-4, label_smoothing=0.1, augment=True),
    "convnet-cpu": TrainConfig(epochs=4, lr=0.4, weight_decay=5e-4, label_smoothing=0.1, augment=True,
                               precision="fp32"),
    "fcnet": TrainConfig(epochs=20, lr=0.05, weight_decay=1e-3, label_smoothing=0.0, augment=True),
}
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(name="auto"):
    """torch.device for 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda' or 'mps';
    a device that is asked for but missing is an error saying so."""
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {name!r}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no CUDA GPU (on Colab: Runtime > "
                         "Change runtime type > GPU; elsewhere a CUDA build of torch is needed)")
    elif name == "mps" and not has_mps:
        raise ValueError("device 'mps' asked for, but torch sees no Apple GPU (needs an Apple "
                         "silicon Mac and macOS 12.3 or newer)")
    return torch.device(name)


def cpu_has_native_bf16():
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device, precision="auto"):
    """The dtype a forward pass autocasts to on device (None: plain float32).
    'auto' is float16 on CUDA, bfloat16 on CPUs that compute it natively
    (AVX512-BF16 or AMX, several times faster there), float32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    kind = torch.device(device).type
    if precision == "auto":
        precision = {"cuda": "fp16", "cpu": "bf16" if cpu_has_native_bf16() else "fp32"}.get(kind, "fp32")
    if precision == "fp16" and kind == "cpu":
        raise ValueError("precision 'fp16' is for GPUs; on the CPU use 'bf16' or 'fp32'")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def use_bf16(precision):
    """Whether the CPU autocasts to bfloat16 under this precision setting."""
    return autocast_dtype("cpu", precision) == torch.bfloat16


def split_validation(data, size=5000):
    """Move the last `size` training images to 'x_val'/'y_val' (held out for
    curves and early decisions; the test set is kept for the final score)."""
    out = dict(data)
    out["x_train"], out["x_val"] = data["x_train"][:-size], data["x_train"][-size:]
    out["y_train"], out["y_val"] = data["y_train"][:-size], data["y_train"][-size:]
    return out


def augment_batch(images, generator):
    """Random 32x32 crop of the 4-pixel zero-padded image and a random
    horizontal flip, per image. images: uint8 tensor (B, 3, 32, 32)."""
    b = images.shape[0]
    padded = F.pad(images, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (b, 1), generator=generator)
    dx = torch.randint(0, 9, (b, 1), generator=generator)
    rows = (dy + torch.arange(32))[:, None, :, None]
    cols = (dx + torch.arange(32))
    flip = torch.rand(b, generator=generator) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    return padded[torch.arange(b)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]


def _batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _model_device(model):
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def predict(model, images, batch_size=500, bf16=False, amp_dtype=None):
    """Logits (N, 10) float32 numpy of model on uint8 images (N, 3, 32, 32), on
    the device the model is on. amp_dtype: autocast dtype (bf16=True: bfloat16)."""
    model.eval()
    device = _model_device(model)
    amp_dtype = amp_dtype or (torch.bfloat16 if bf16 else None)
    memory_format = torch.contiguous_format if device.type == "mps" else torch.channels_last
    outputs = []
    for s in _batches(len(images), batch_size):
        x = normalize(torch.as_tensor(images[s]).to(device)).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            outputs.append(model(x).float().cpu())
    return torch.cat(outputs).numpy()


def evaluate(model, images, labels, batch_size=500, bf16=False, amp_dtype=None):
    """(mean cross-entropy loss, accuracy) of model on uint8 images and int labels."""
    logits = torch.from_numpy(predict(model, images, batch_size, bf16, amp_dtype))
    labels = torch.as_tensor(labels, dtype=torch.int64)
    loss = F.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(1) == labels).double().mean().item()
    return loss, accuracy


@dataclass
class TrainingRun:
    """What one call of train() works with, set up by start_run()."""
    device: torch.device
    amp_dtype: torch.dtype | None   # autocast's dtype (None: plain float32)
    memory_format: torch.memory_format
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    generator: torch.Generator      # the shuffling and augmentation draws


def count_steps(n, config):
    """(steps per epoch, total steps) of training on n images with config."""
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = config.max_steps or max(1, round(config.epochs * steps_per_epoch))
    return steps_per_epoch, total_steps


def make_optimizer(model, config, total_steps):
    """(optimizer, schedule): SGD with Nesterov momentum, its learning rate
    raised linearly from 0 to config.lr over the warmup steps, then lowered
    linearly to 0 at total_steps."""
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=True, weight_decay=config.weight_decay)
    warmup_steps = max(1, round(config.warmup * total_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (
        step / warmup_steps if step < warmup_steps
        else max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))))
    return optimizer, schedule


def start_run(model, config, total_steps):
    """Seed, pick the device and precision, move model there and build its
    optimizer: the TrainingRun of one train() call."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = pick_device(config.device)
    amp_dtype = autocast_dtype(device, config.precision)
    # float16 gradients can underflow: scale the loss (a no-op for other dtypes).
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    # Channels-last suits CPUs and CUDA's tensor cores; MPS runs contiguous.
    memory_format = torch.contiguous_format if device.type == "mps" else torch.channels_last
    model.to(device=device, memory_format=memory_format)
    optimizer, schedule = make_optimizer(model, config, total_steps)
    return TrainingRun(device, amp_dtype, memory_format, optimizer, schedule, scaler, generator)


def new_history(model, config, run):
    """The history train() fills in: the run's settings, no losses yet."""
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[run.amp_dtype]
    return {"config": asdict(config), "device": run.device.type, "precision": precision,
            "parameters": sum(p.numel() for p in model.parameters()), "train_loss": [], "val": []}


def train_step(model, run, images, labels, config):
    """One optimizer step on a batch of uint8 images and their labels
    (augmented if config.augment, then normalized); returns the loss."""
    model.train()
    if config.augment:
        images = augment_batch(images, run.generator)
    x = normalize(images.to(run.device)).contiguous(memory_format=run.memory_format)
    with torch.autocast(run.device.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None):
        loss = F.cross_entropy(model(x).float(), labels.to(run.device), label_smoothing=config.label_smoothing)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.schedule.step()
    return loss.item()


def record_evaluation(model, data, run, history, step, steps_per_epoch):
    """Evaluate model on data['x_val'], data['y_val'] and add the result to
    history['val']; returns (loss, accuracy)."""
    val_loss, val_acc = evaluate(model, data["x_val"], data["y_val"], amp_dtype=run.amp_dtype)
    history["val"].append({"step": step, "epoch": round(step / steps_per_epoch, 3),
                           "loss": val_loss, "accuracy": val_acc})
    return val_loss, val_acc


def finish_run(model, history, start, log_path=None, checkpoint_path=None):
    """Note the time taken, bring model back to the CPU, save its state_dict
    to checkpoint_path and history to log_path (when given)."""
    history["seconds"] = round(time.time() - start, 1)
    model.to(device="cpu", memory_format=torch.contiguous_format)
    if checkpoint_path:
        torch.save(model.state_dict(), checkpoint_path)
    if log_path:
        write_json(log_path, history)


def train(model, data, config=TrainConfig(), log_path=None, checkpoint_path=None, progress=True):
    """Train model in place on data['x_train'], data['y_train'] (uint8 images,
    int labels), evaluating on data['x_val'], data['y_val'] when present, on
    config.device (the model comes back on the CPU).

    Returns the history, also written as JSON to log_path:
      'train_loss': training loss of every step,
      'val': [{'step', 'epoch', 'loss', 'accuracy'}, ...] held-out evaluations,
      plus 'config', 'device', 'precision', 'parameters' and 'seconds', and
      'diverged_at_step' when the loss stopped being finite (training stops
      there; the JSON file writes the non-finite values as null).
    Saves the model's state_dict (CPU tensors) to checkpoint_path at the end.
    """
    from tqdm.auto import tqdm

    x_train = torch.as_tensor(data["x_train"])
    y_train = torch.as_tensor(data["y_train"], dtype=torch.int64)
    n = len(x_train)
    steps_per_epoch, total_steps = count_steps(n, config)
    eval_every = config.eval_every or steps_per_epoch
    run = start_run(model, config, total_steps)
    history = new_history(model, config, run)
    start = time.time()
    step = 0
    bar = tqdm(total=total_steps, disable=not progress, unit="step", file=sys.stdout)
    while step < total_steps:
        order = torch.randperm(n, generator=run.generator)       # one epoch
        for s in _batches(n, config.batch_size):
            if step == total_steps:
                break
            batch = order[s]
            loss_value = train_step(model, run, x_train[batch], y_train[batch], config)
            step += 1
            if not math.isfinite(loss_value):
                history["diverged_at_step"] = step
                total_steps = step  # a NaN loss never recovers: stop here
            history["train_loss"].append(loss_value)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            if "x_val" in data and (step % eval_every == 0 or step == total_steps):
                val_loss, val_acc = record_evaluation(model, data, run, history, step, steps_per_epoch)
                if progress:
                    bar.write(f"step {step}/{total_steps}  train loss {loss_value:.3f}  "
                              f"held-out loss {val_loss:.3f}  accuracy {val_acc:.3f}")
    bar.close()
    finish_run(model, history, start, log_path, checkpoint_path)
    return history


def model_cost(model, batch=2):
    """What one image costs in a forward pass of model, as the grader's compute
    rule measures it: {'multiply_adds', 'activations'}, per image, of one
    training-mode pass on a random (batch, 3, 32, 32) batch. Multiply-adds are
    torch.utils.flop_counter.FlopCounterMode's FLOPs / 2 (convolutions and
    linear layers); activations count the elements of every tensor the pass
    creates (views and in-place operations create none), which is what a
    training step keeps in memory and what batch norm, ReLU and pooling take
    their time over. Works on a copy: model itself is left unchanged."""
    import copy
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class CountCreated(TorchDispatchMode):
        elements = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if not func.is_view and not func._schema.is_mutable:
                for item in (out if isinstance(out, (tuple, list)) else (out,)):
                    if isinstance(item, torch.Tensor):
                        self.elements += item.numel()
            return out

    probe = copy.deepcopy(model).cpu().float().train()
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as flops, CountCreated() as created:
        probe(x)
    return {"multiply_adds": flops.get_total_flops() / 2 / batch, "activations": created.elements / batch}


def _json_safe(obj):
    """obj with every NaN or infinite float replaced by None: JSON has no NaN,
    and a diverged run's losses are exactly that."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(value) for value in obj]
    return obj


def write_json(path, obj):
    """Write obj to path as strict JSON (non-finite numbers become null), atomically."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(_json_safe(obj), fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)


def report(models):
    """Print each model's weight layers, parameters, output shape and compute
    cost per image (model_cost), to check them against the rules (models.py)."""
    for cls in (models.FCNet, models.ConvNet):
        net = cls()
        logits = net(torch.zeros(2, 3, 32, 32))
        cost = model_cost(net)
        print(f"{cls.__name__}: {models.count_weight_layers(net)} weight layers, "
              f"{models.count_parameters(net):,} parameters, output {tuple(logits.shape)}, "
              f"{cost['multiply_adds']:,.0f} multiply-adds and {cost['activations']:,.0f} "
              f"activation values per image")


def main(argv=None):
    import models
    parser = argparse.ArgumentParser(description="Train FCNet or ConvNet on CIFAR-10 with a preset "
                                                 "(convnet: the longer schedule, for a GPU; convnet-cpu: "
                                                 "fewer epochs in float32, for a CPU; fcnet).")
    parser.add_argument("model", choices=sorted(PRESETS), nargs="?")
    parser.add_argument("--report", action="store_true",
                        help="only print each model's weight layers, parameters and compute cost per image")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where to train (default: auto = cuda, then mps, then cpu)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="override the preset's precision (auto: fp16 on CUDA, bf16 on CPUs "
                             "that have it natively, else fp32)")
    parser.add_argument("--data-dir", help="folder with cifar-10-batches-py (default: $CIFAR10_DIR, then ./data)")
    parser.add_argument("--epochs", type=float, help="override the preset's number of epochs")
    parser.add_argument("--seed", type=int, help="override the preset's seed")
    parser.add_argument("--out", help="checkpoint to write (default: convnet.pt or fcnet.pt)")
    parser.add_argument("--log", help="JSON history to write (default: convnet_curve.json or fcnet_curve.json)")
    parser.add_argument("--val-size", type=int, default=5000, help="training images held out for curves")
    args = parser.parse_args(argv)
    if args.report:
        return report(models)
    if args.model is None:
        parser.error(f"name a preset to train ({', '.join(sorted(PRESETS))}) or pass --report")

    config = replace(PRESETS[args.model], device=args.device)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed),
                                   ("precision", args.precision)) if v is not None}
    config = replace(config, **overrides)
    try:
        pick_device(config.device)
        autocast_dtype(pick_device(config.device), config.precision)
        data = split_validation(load_cifar10(args.data_dir), args.val_size)
    except (ValueError, DatasetError) as exc:
        parser.exit(2, f"train.py: {exc}\n")
    cpu_start = time.process_time()
    torch.manual_seed(config.seed)
    name = "fcnet" if args.model == "fcnet" else "convnet"
    model = {"convnet": models.ConvNet, "fcnet": models.FCNet}[name]()
    out = args.out or f"{name}.pt"
    log = args.log or f"{name}_curve.json"
    history = train(model, data, config, checkpoint_path=out)
    _, history["test_accuracy"] = evaluate(model, data["x_test"], data["y_test"])
    history["preset"] = args.model
    history["cpu_seconds"] = round(time.process_time() - cpu_start, 1)
    write_json(log, history)
    print(f"{args.model} on {history['device']} ({history['precision']}): test accuracy "
          f"{history['test_accuracy']:.4f}, {history['parameters']:,} parameters, "
          f"{history['seconds']:.0f} s of training, {history['cpu_seconds']:.0f} CPU-s in all; "
          f"wrote {out} and {log}")


if __name__ == "__main__":
    main()
