"""Small PNG pictures drawn with matplotlib (Agg) in the grader process, from
plain numbers and arrays: each a few tens of kB (a low dpi, few colours,
optimized), so that results.json stays small however many a grade has."""
import io

import numpy as np

DPI = 90
COLOURS = 64              # palette size of the PNG (quantized)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    return plt


def png(figure, colours=COLOURS):
    """The figure as small PNG bytes (closed afterwards)."""
    from PIL import Image
    plt = pyplot()
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(figure)
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    small = image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def class_accuracy(name, correct_by_class, confusion):
    """Accuracy per CIFAR-10 class (bars) beside the confusion matrix (rows:
    true class, columns: predicted; each row as shares of its images)."""
    plt = pyplot()
    figure, (bars, matrix) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1, 1.15]})
    positions = np.arange(len(CIFAR10_CLASSES))
    bars.barh(positions, 100 * np.asarray(correct_by_class), color="tab:blue")
    bars.set_yticks(positions, CIFAR10_CLASSES, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlim(0, 100)
    bars.set_xlabel("accuracy (%)", fontsize=8)
    bars.set_title(f"{name}: accuracy per class", fontsize=9)
    bars.grid(axis="x", alpha=0.3)
    rows = np.asarray(confusion, dtype=float)
    shares = rows / np.maximum(rows.sum(axis=1, keepdims=True), 1)
    matrix.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    matrix.set_xticks(positions, [c[:4] for c in CIFAR10_CLASSES], fontsize=7, rotation=90)
    matrix.set_yticks(positions, [c[:4] for c in CIFAR10_CLASSES], fontsize=7)
    matrix.set_xlabel("predicted", fontsize=8)
    matrix.set_ylabel("true class", fontsize=8)
    matrix.set_title("confusion (share of each true class)", fontsize=9)
    figure.tight_layout()
    return png(figure)


def mosaic(weights, columns=16, pad=1):
    """First-layer filters (F, C, kh, kw) as one image: RGB when C == 3 (each
    filter scaled to [0, 1] on its own), else the first input channel in grey."""
    weights = np.asarray(weights, dtype=np.float64)
    count, channels, height, width = weights.shape
    rows = -(-count // columns)
    columns = min(columns, count)
    canvas = np.ones((rows * (height + pad) + pad, columns * (width + pad) + pad, 3))
    for index in range(count):
        tile = weights[index, :3].transpose(1, 2, 0) if channels == 3 else \
            np.repeat(weights[index, :1].transpose(1, 2, 0), 3, axis=2)
        low, high = tile.min(), tile.max()
        tile = (tile - low) / (high - low) if high > low else np.full_like(tile, 0.5)
        top, left = pad + (index // columns) * (height + pad), pad + (index % columns) * (width + pad)
        canvas[top:top + height, left:left + width] = tile
    return canvas


def filters(weights, title):
    """The filters of a first convolution as a grid of small images."""
    plt = pyplot()
    canvas = mosaic(weights)
    scale = 0.12
    figure = plt.figure(figsize=(max(3.0, canvas.shape[1] * scale), max(1.2, canvas.shape[0] * scale + 0.5)))
    axis = figure.add_axes([0.02, 0.02, 0.96, 0.8])
    axis.imshow(canvas, interpolation="nearest")
    axis.set_axis_off()
    figure.suptitle(title, fontsize=9)
    return png(figure)


def error_map(shares, title):
    """Where in an output the wrong values are: per row and column, the share
    of wrong values over samples and channels (0 white, 1 dark red)."""
    plt = pyplot()
    shares = np.asarray(shares, dtype=float)
    height, width = shares.shape
    figure, axis = plt.subplots(figsize=(3.6, 3.2))
    shown = axis.imshow(shares, cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
    axis.set_xlabel("column", fontsize=8)
    axis.set_ylabel("row", fontsize=8)
    axis.set_xticks(range(width) if width <= 16 else np.linspace(0, width - 1, 5).astype(int))
    axis.set_yticks(range(height) if height <= 16 else np.linspace(0, height - 1, 5).astype(int))
    axis.tick_params(labelsize=7)
    axis.set_title(title, fontsize=8)
    bar = figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04)
    bar.ax.tick_params(labelsize=7)
    bar.set_label("share of values wrong", fontsize=7)
    figure.tight_layout()
    return png(figure, colours=32)


def cost(name, used):
    """The model's cost beside the limits: [(what, value, limit)] as bars of value / limit."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 0.5 + 0.45 * len(used)))
    labels = [what for what, _, _ in used]
    shares = [100 * value / limit if limit else 0 for _, value, limit in used]
    colours = ["tab:red" if share > 100 else "tab:green" for share in shares]
    axis.barh(range(len(used)), [min(share, 150) for share in shares], color=colours)
    axis.axvline(100, color="black", linewidth=1)
    axis.set_yticks(range(len(used)), labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0, 150)
    axis.set_xlabel("% of the limit (the line is the limit)", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.set_title(f"{name}: cost against the limits", fontsize=9)
    figure.tight_layout()
    return png(figure, colours=16)
