"""The fixed recipes of the CNN part, shared by grading and by the TA's
calibration command (autograder/staff/calibrate_curves.py): which images, which training
settings, which seed, and how long each worker call may take.

Changing CURVE_PROTOCOL invalidates autograder/reference/curve_band.json:
the grader refuses a band calibrated with another protocol.
"""
import math
import os
from dataclasses import dataclass

import numpy as np

from autograder.provided import load_data_module

# Fresh FCNet() and ConvNet() are trained with train.py's train() and these
# TrainConfig fields on train_size training images, and evaluated before
# training and every eval_every steps on held_out_size other training images
# (both fixed by subset_seed). The worker returns the held-out logits; the
# held-out labels stay in the grader, which computes the losses.
#
# Why this size (measured, README "The compute rule and the grading
# protocol"): one pass over 2,400 images in batches of 16 separates the
# reference ConvNet from the reference FCNet on every one of 8 calibration
# seeds (final held-out losses 0.136-0.308 apart, margin 0.1) at about 40% of
# the cost of the earlier 200 steps of 32; more, smaller steps learn more per
# image seen than fewer, larger ones.
CURVE_PROTOCOL = {
    "training_images": 50_000,   # the permutation runs over the whole training set
    "train_size": 2400,
    "held_out_size": 512,
    "subset_seed": 12345,
    "config": {"max_steps": 150, "batch_size": 16, "lr": 0.05, "warmup": 0.1,
               "label_smoothing": 0.0, "augment": False, "precision": "fp32",
               "eval_every": 50, "weight_decay": 5e-4,
               "device": "cpu"},         # the same everywhere, even where a GPU is at hand
}
GRADING_SEED = 0                 # torch.manual_seed before building each model, and the config's seed
SMOOTHING_WINDOW = 20            # steps averaged into one "smoothed training loss" value
CHANCE_LOSS = math.log(10)       # cross-entropy of a uniform guess over 10 classes

# Test-set accuracy is measured on a fixed half of the CIFAR-10 test set:
# 5,000 images put the standard error of an accuracy near 75% at 0.6 points,
# an eighth of a tier's 5-point width, for half the cost of all 10,000.
TEST_IMAGES = 5000
TEST_SUBSET_SEED = 2024

# Wall-clock seconds a long worker call may take before it first reports
# progress (building the model, its first batch or step). Once it reports,
# its time limit follows its own measured pace (autograder/sandbox/clock.py,
# Job.call(progress=True)): the work left at that pace, with slack.
STARTUP_SECONDS = {"inspect": 60, "load": 60, "predict": 60, "train": 90}


class DataUnavailable(Exception):
    """CIFAR-10 cannot be used; the message names CIFAR10_DIR, --data-dir and data.py."""


# No folder given: where the grader would have looked (grade.find_data_dir).
NO_DATA = ("CIFAR-10 not found: the grader reads it from --data-dir, then CIFAR10_DIR, then, when it grades "
           "the handout folder it came in, from that folder's cnn/data/; never from the files it grades. "
           "Pass --data-dir with the folder where `python data.py` put it (cnn/data/ of your handout "
           "folder, the one holding cifar-10-batches-py), or set CIFAR10_DIR to it.")


def _data_module_and_folder(data_dir):
    """The provided data module and the cifar-10-batches-py folder. A folder
    given by --data-dir or CIFAR10_DIR must hold the data: the grader does not
    fall back to another copy behind the TA's back; with neither, NO_DATA
    (never the provided data.py's own default folder, inside the grader)."""
    data = load_data_module()
    data_dir = data_dir or os.environ.get("CIFAR10_DIR")
    if data_dir:
        for folder in (data_dir, os.path.join(data_dir, data.FOLDER)):
            if os.path.isfile(os.path.join(folder, data.TEST_FILE)):
                return data, folder
        raise DataUnavailable(
            f"CIFAR-10 not found in {data_dir} (given by --data-dir or CIFAR10_DIR): no "
            f"{data.TEST_FILE} there or in its {data.FOLDER} subfolder. Point --data-dir or "
            f"CIFAR10_DIR at the folder holding {data.FOLDER}, or download it with `python data.py` "
            f"in the cnn folder.")
    raise DataUnavailable(NO_DATA)


@dataclass
class TestSet:
    images: np.ndarray            # uint8 (TEST_IMAGES, 3, 32, 32), in test-set order
    labels: np.ndarray            # int64, same order; never leaves the grader


def load_test_set(data_dir, size=TEST_IMAGES):
    """The fixed TEST_IMAGES-image subset of the CIFAR-10 test set (the same
    images on every run). What each model is shown of it, and in which order,
    is drawn in secret per submission (evaluation.draw_views)."""
    data, folder = _data_module_and_folder(data_dir)
    try:
        images, labels = data.load_batch(os.path.join(folder, data.TEST_FILE))
    except data.DatasetError as exc:
        raise DataUnavailable(str(exc)) from None
    chosen = np.sort(np.random.default_rng(TEST_SUBSET_SEED).permutation(len(labels))[:size])
    return TestSet(images=np.ascontiguousarray(images[chosen]), labels=labels[chosen])


def load_train_batch(data_dir, choice):
    """(file name, TestSet) of the training batch file data.TRAIN_FILES[choice
    modulo their count]; the TestSet is None when the file is missing or
    unreadable (the integrity report then goes without training images)."""
    data = load_data_module()
    name = data.TRAIN_FILES[choice % len(data.TRAIN_FILES)]
    try:
        _, folder = _data_module_and_folder(data_dir)
        images, labels = data.load_batch(os.path.join(folder, name))
    except (DataUnavailable, data.DatasetError, OSError):
        return name, None
    return name, TestSet(images=np.ascontiguousarray(images), labels=labels)


def load_curve_subset(data_dir, protocol=CURVE_PROTOCOL):
    """{'x_train', 'y_train', 'x_val', 'y_val'}: the protocol's images, read
    one training batch file at a time (never the whole 150 MB set at once)."""
    data, folder = _data_module_and_folder(data_dir)
    wanted = np.random.default_rng(protocol["subset_seed"]).permutation(protocol["training_images"])
    wanted = wanted[:protocol["train_size"] + protocol["held_out_size"]]
    images = np.empty((len(wanted), 3, 32, 32), dtype=np.uint8)
    labels = np.empty(len(wanted), dtype=np.int64)
    start = 0
    try:
        for name in data.TRAIN_FILES:
            batch_images, batch_labels = data.load_batch(os.path.join(folder, name))
            stop = start + len(batch_labels)
            positions = np.flatnonzero((wanted >= start) & (wanted < stop))
            images[positions] = batch_images[wanted[positions] - start]
            labels[positions] = batch_labels[wanted[positions] - start]
            start = stop
            del batch_images, batch_labels     # before the next file is read
    except data.DatasetError as exc:
        raise DataUnavailable(str(exc)) from None
    if start != protocol["training_images"]:
        raise DataUnavailable(f"{folder}: the training batches hold {start} images, expected "
                              f"{protocol['training_images']}; re-download CIFAR-10 with `python data.py`")
    split = protocol["train_size"]
    return {"x_train": images[:split], "y_train": labels[:split],
            "x_val": images[split:], "y_val": labels[split:]}


def evaluation_steps(protocol=CURVE_PROTOCOL):
    """The steps at which a run's held-out logits are recorded: 0 (before
    training), every eval_every steps, and the last step."""
    config = protocol["config"]
    total, every = config["max_steps"], config["eval_every"]
    steps = list(range(0, total + 1, every))
    return steps if steps[-1] == total else steps + [total]


def smoothed(train_loss, steps, window=SMOOTHING_WINDOW):
    """Mean training loss of the `window` steps up to each step (1-based)."""
    losses = np.asarray(train_loss, dtype=np.float64)
    return np.array([losses[max(0, step - window):step].mean() if step <= len(losses) else np.nan
                     for step in steps])
