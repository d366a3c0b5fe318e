"""What each checkpoint is shown, drawn in secret from the submission's seed
(autograder/parts/cnn/secret.py):

- ``changed``: every image of the fixed test subset (data_protocol.TEST_IMAGES),
  each with its own small change that keeps its class (transforms.py). The
  accuracy here is the one scored and put on the leaderboard: a copy of the
  public test set kept in the checkpoint finds no image it knows exactly.
- ``unchanged``: UNCHANGED_IMAGES of those images as they are, TRAIN_IMAGES
  training images, plus the fresh CIFAR-10.1 images when the grader has
  them, all mixed, predicted later in another worker process. Only the
  integrity report (integrity.py) uses them: the clean accuracy, how often
  the model answers an image and its changed copy alike, whether it does
  better on test images than on training images (a model that learned from
  the training set never does), and the accuracy on images no table can hold.

Each model gets draws of its own, and every view comes in an order only
the grader knows; labels never leave the grader.
"""
from dataclasses import dataclass

import numpy as np

from autograder.parts.cnn.transforms import Family, transform

# Calibrated with `python -m autograder calibrate-accuracy` (README, "The
# accuracy protocol"): these cost honest ConvNets about 1-2 points of accuracy
# (resampling, i.e. sub-pixel shifts, rotation or zoom, would cost 2-3 more).
# The FCNet's images are not shifted: a fully-connected network sees a shifted
# image as another input (2-px shifts cost honest FCNets 2.5-4.5 points) and
# its rules do not ask it to see past that.
COLOUR = dict(flip=0.5, gain=0.05, saturation=0.2, contrast=0.15, brightness=0.08, noise=2)
TRANSFORMS = {"ConvNet": Family(shift=2, **COLOUR), "FCNet": Family(shift=0, **COLOUR)}
# How many unchanged test images and CIFAR-10.1 images each model predicts for
# the integrity report: enough for its flags (standard error of a drop about
# 0.6 points against a 6-point limit, of a CIFAR-10.1 accuracy about 1.5
# against 20), few enough to keep the at-limits grade in its time (README,
# "Measured figures").
UNCHANGED_IMAGES = 1500
FRESH_IMAGES = 1000
# Training images (from one training batch file the seed picks): honest
# models are at least as right on them as on test images; 1,000 put the
# standard error of the gap near 1.6 points against a 6-point limit.
TRAIN_IMAGES = 1000
TEST, FRESH, TRAIN = 0, 1, 2      # sources of a row: the CIFAR-10 test subset, CIFAR-10.1, training images


@dataclass
class View:
    images: np.ndarray            # uint8 (N, 3, 32, 32), in a secret order: what the worker gets
    labels: np.ndarray            # int64 (N,), same order; never leaves the grader
    source: np.ndarray            # TEST, FRESH or TRAIN per row
    index: np.ndarray             # the row's position in its source


@dataclass
class Views:
    changed: View
    unchanged: View


def draw_views(test_set, seed, names, fresh=None, train=None, families=TRANSFORMS, unchanged=UNCHANGED_IMAGES,
               fresh_images=FRESH_IMAGES, train_images=TRAIN_IMAGES):
    """{name: Views} for each model name, each from its own stream of seed and
    changed by families[name]. test_set, fresh and train: objects with
    .images and .labels (fresh and train may be None)."""
    streams = np.random.SeedSequence(seed).spawn(len(names))
    views = {}
    for name, stream in zip(names, streams):
        rng = np.random.default_rng(stream)
        count = len(test_set.labels)
        order = _permutation(rng, count)
        changed = View(images=transform(test_set.images[order], rng, families[name]),
                       labels=test_set.labels[order], source=np.full(count, TEST), index=order)
        chosen = _permutation(rng, count)[:min(unchanged, count)]
        sources = [(TEST, test_set, chosen)]
        if fresh is not None:
            sources.append((FRESH, fresh, _permutation(rng, len(fresh.labels))[:fresh_images]))
        if train is not None:
            sources.append((TRAIN, train, _permutation(rng, len(train.labels))[:train_images]))
        source = np.concatenate([np.full(len(rows), kind) for kind, _, rows in sources])
        index = np.concatenate([rows for _, _, rows in sources])
        mixed = _permutation(rng, len(index))
        source, index = source[mixed], index[mixed]
        images = np.empty((len(index), 3, 32, 32), dtype=np.uint8)
        labels = np.empty(len(index), dtype=np.int64)
        for kind, data, _ in sources:
            rows = source == kind
            images[rows] = data.images[index[rows]]
            labels[rows] = data.labels[index[rows]]
        views[name] = Views(changed=changed, unchanged=View(images, labels, source, index))
    return views


def _permutation(rng, n):
    """A random order of range(n) from uniform doubles (Generator.permutation's
    stream may change between numpy versions; this one does not)."""
    return np.argsort(rng.random(n), kind="stable")
