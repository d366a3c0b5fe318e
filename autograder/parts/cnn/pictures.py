"""The CNN part's pictures (autograder/pictures), from what the worker
returned as plain data: the layer table and the cost beside the limits
(architecture), the first convolution's filters (checkpoint), accuracy per
class and the confusion matrix (accuracy, from the logits the grader scores
itself). Each comes with the text line that says the same."""
import numpy as np

from autograder.parts.cnn.architecture import amount
from autograder.pictures import Picture, Table, draw

TABLE_HEADER = ("layer", "type", "output shape (one image)", "parameters", "multiply-adds per image")
MAX_FILTER_VALUES = 64 * 3 * 11 * 11


def layer_table(name, report):
    """Table of the layers that ran in a forward pass (the worker's
    layer_table text: name, type, shape, parameters, multiply-adds), or None."""
    text = report.get("layer_table") if isinstance(report, dict) else None
    if not isinstance(text, str) or not text:
        return None
    rows = []
    for line in text.splitlines():
        cells = line.split("\t")
        if len(cells) != 5 or not (cells[3].isdigit() and cells[4].isdigit()):
            continue
        rows.append((cells[0], cells[1], cells[2].replace("x", " x "), f"{int(cells[3]):,}",
                     amount(int(cells[4]))))
    if not rows:
        return None
    return Table(title=f"{name}: its layers on one image", header=TABLE_HEADER, rows=tuple(rows),
                 note="modules only: functional calls (F.relu, torch.flatten, ...) do not appear")


def cost(name, report, settings):
    """(text line, Picture) of the model's size and compute beside the limits."""
    prefix = name.lower()
    used = [("parameters", report["parameters"], settings[f"{prefix}_max_parameters"]),
            ("multiply-adds", report["multiply_adds"], settings[f"{prefix}_max_multiply_adds"]),
            ("activations", report["activations"], settings[f"{prefix}_max_activations"])]
    line = f"{name} cost: " + ", ".join(f"{what} {amount(value)} of {amount(limit)} ({value / limit:.0%})"
                                        for what, value, limit in used)
    return line, Picture(title=f"{name}: cost beside the limits of the rules", png=draw.cost(name, used),
                         text=line)


def filters(info):
    """(text line, Picture) of the first convolution's filters in a loaded
    checkpoint's info, or None when it has none (or not as expected)."""
    weights = info.get("first_filters") if isinstance(info, dict) else None
    if not (isinstance(weights, np.ndarray) and weights.ndim == 4 and weights.dtype.kind == "f"
            and 0 < weights.size <= MAX_FILTER_VALUES and np.all(np.isfinite(weights))):
        return None
    count, channels, height, width = weights.shape
    how = "in colour (red, green, blue)" if channels == 3 else "in grey (its first input channel)"
    line = (f"first-layer filters of convnet.pt: {count} filters of {height}x{width} on {channels} input "
            f"channels, drawn {how}, each scaled to its own range: what the network learned to look for")
    return line, Picture(title="ConvNet: its first convolution's filters", text=line,
                         png=draw.filters(weights, f"{count} first-layer filters ({height}x{width})"))


def confusion_matrix(logits, labels, classes=10):
    """confusion[true, predicted] counts of the logits' predictions."""
    predicted = np.asarray(logits).argmax(axis=1)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), predicted), 1)
    return matrix


def by_class(name, logits, labels):
    """(text line, Picture) of accuracy per class and the confusion matrix, or None."""
    if not (isinstance(logits, np.ndarray) and logits.ndim == 2 and logits.shape[1] == 10
            and len(logits) == len(labels) and np.all(np.isfinite(logits))):
        return None
    matrix = confusion_matrix(logits, labels)
    shares = np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
    off = matrix.astype(float) / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    np.fill_diagonal(off, 0)
    true, wrong = np.unravel_index(np.argmax(off), off.shape)
    line = (f"{name} accuracy per class: " + ", ".join(f"{c} {s:.0%}" for c, s in zip(draw.CIFAR10_CLASSES, shares))
            + f"; most often confused: {draw.CIFAR10_CLASSES[true]} taken for {draw.CIFAR10_CLASSES[wrong]} "
              f"({off[true, wrong]:.0%} of the {draw.CIFAR10_CLASSES[true]} images)")
    return line, Picture(title=f"{name}: accuracy per class and confusion matrix on the graded images",
                         png=draw.class_accuracy(name, shares, matrix), text=line)
