"""TA command: ``python -m autograder build-cases`` regenerates
autograder/cases/public and autograder/cases/hidden from the reference
solutions/cnn/layers.py (see autograder/cases.py for the format).

Inputs come from seeded legacy RandomState streams (frozen across numpy
versions); expected values are what the reference returns; "variants" are
what a known wrong implementation returns, mostly obtained by calling the
reference on altered inputs (a flipped kernel, stride 1, no bias, ...), so
that feedback can name a student's likely mistake. The output is the same,
byte for byte, on every run. This module is a build tool: it imports the
reference and must not be shipped in the handout or the Gradescope zip.

Each cases.json records ``built_from``, a fingerprint of what the cases are
computed from (the reference layers.py and this file), so that the commands
that ship cases can tell stale ones in a moment (stale_problem) and
``build-cases --if-stale`` rebuilds only then.
"""
import hashlib
import importlib.util
import json
import shutil
import zlib
from pathlib import Path

import numpy as np

from autograder.cases import CASES_DIR, FORMAT

from autograder.layout import REFERENCE_DIR as DEFAULT_SOLUTIONS

# (name, N, C, H, W, F, HH, WW, stride, pad)
CONV_CASES = [
    ("p1", 2, 3, 5, 5, 2, 3, 3, 1, 1),
    ("p2", 2, 2, 7, 7, 3, 3, 3, 2, 1),
    ("p3", 1, 1, 4, 6, 1, 2, 3, 1, 0),
    ("h1", 3, 3, 8, 8, 4, 3, 3, 1, 1),
    ("h2", 2, 3, 9, 7, 2, 5, 3, 3, 0),       # stride 3 leaves rows and columns unused
    ("h3", 1, 2, 6, 6, 3, 1, 1, 1, 0),       # 1x1 kernel, batch of one
    ("h4", 2, 1, 7, 9, 3, 3, 5, 2, 2),       # one channel, non-square kernel, pad 2
    ("h5", 2, 3, 6, 6, 6, 3, 3, 1, 1),       # W_out == F: a bias on the last axis does not crash
    ("h6", 4, 2, 5, 5, 4, 3, 3, 2, 0),       # N == F: a bias per sample does not crash
    ("h7", 2, 2, 4, 4, 3, 4, 4, 1, 0),       # the kernel covers the image: 1x1 output
    ("h8", 2, 2, 9, 9, 2, 2, 2, 3, 1),       # stride larger than the kernel
    ("h9", 1, 3, 3, 3, 2, 3, 3, 1, 2),       # padding larger than the kernel's reach
    ("h10", 4, 3, 16, 16, 8, 3, 3, 1, 1),
    ("h11", 2, 3, 32, 32, 4, 5, 5, 2, 2),
    ("h12", 3, 4, 11, 13, 5, 4, 2, 2, 1),
]

# (name, N, C, H, W, pool_height, pool_width, stride, ties)
MAX_POOL_CASES = [
    ("p1", 2, 3, 4, 4, 2, 2, 2, False),
    ("p2", 1, 2, 5, 5, 3, 3, 1, False),      # overlapping windows
    ("p3", 2, 1, 6, 4, 2, 2, 2, True),
    ("h1", 2, 3, 8, 8, 2, 2, 2, False),
    ("h2", 3, 2, 7, 7, 3, 3, 2, False),
    ("h3", 1, 1, 5, 7, 2, 3, 1, False),
    ("h4", 2, 4, 9, 9, 3, 3, 3, False),
    ("h5", 2, 2, 6, 8, 3, 2, 2, False),
    ("h6", 4, 3, 16, 16, 2, 2, 2, False),
    ("h7", 2, 3, 32, 32, 3, 3, 2, False),
    ("h8", 2, 3, 6, 6, 2, 2, 2, True),
    ("h9", 2, 2, 9, 6, 3, 3, 3, True),
    ("h10", 1, 1, 4, 4, 4, 4, 1, False),     # one window: global pooling
    # Non-square windows, several random draws each: a mistake that swaps
    # the two window sizes in one place only shows where the maxima fall.
    ("h11", 2, 2, 5, 7, 2, 3, 1, False),
    ("h12", 2, 3, 5, 7, 2, 3, 1, False),
    ("h13", 2, 2, 6, 8, 3, 2, 2, False),
    ("h14", 3, 2, 6, 8, 3, 2, 2, False),
    ("h15", 2, 2, 7, 5, 3, 2, 1, False),
    ("h16", 2, 3, 7, 5, 3, 2, 1, False),
    ("h17", 2, 2, 6, 9, 2, 3, 3, False),
    ("h18", 2, 3, 6, 9, 2, 3, 3, False),
    ("h19", 2, 2, 8, 6, 4, 2, 2, False),
    ("h20", 2, 2, 6, 8, 2, 4, 2, False),
]

AVG_POOL_CASES = [
    ("p1", 2, 3, 4, 4, 2, 2, 2, False),
    ("p2", 1, 2, 5, 5, 3, 3, 1, False),
    ("h1", 2, 3, 8, 8, 2, 2, 2, False),
    ("h2", 3, 2, 7, 7, 3, 3, 2, False),
    ("h3", 1, 1, 5, 7, 2, 3, 1, False),
    ("h4", 2, 2, 6, 8, 3, 2, 2, False),
    ("h5", 4, 3, 16, 16, 2, 2, 2, False),
    ("h6", 2, 3, 32, 32, 3, 3, 2, False),
    ("h7", 1, 1, 4, 4, 4, 4, 1, False),
    ("h8", 2, 4, 9, 9, 3, 3, 3, False),
]

# Batch norm. bn_param entries other than mode are only written when given;
# "running" says whether running statistics are passed in (else they start at zero);
# "scale"/"shift" set the spread and offset of x.
BN_TRAIN_CASES = [
    dict(name="p1", shape=(4, 5)),
    dict(name="p2", shape=(10, 3), eps=1e-3, momentum=0.8, running=True),
    dict(name="h1", shape=(2, 4)),
    dict(name="h2", shape=(50, 20), momentum=0.95, running=True),
    dict(name="h3", shape=(8, 1)),
    dict(name="h4", shape=(16, 6), eps=1e-5, momentum=0.9, scale=5.0, shift=3.0),
    dict(name="h5", shape=(5, 7), eps=1e-2, momentum=0.5, scale=0.1, running=True),
    dict(name="h6", shape=(32, 10), running=True),
    dict(name="h11", shape=(2, 5), scale=0.02),        # two values per feature, eps matters
]
BN_SEQUENCE_CASES = [
    dict(name="p4", shape=(6, 4), batches=3, momentum=0.7),
    dict(name="h7", shape=(10, 3), batches=4),
    dict(name="h8", shape=(20, 5), batches=3, momentum=0.5, eps=1e-4, running=True),
]
BN_TEST_CASES = [
    dict(name="p3", shape=(5, 4)),
    dict(name="h9", shape=(8, 6), eps=1e-3),
    dict(name="h10", shape=(1, 3)),
]
SPATIAL_TRAIN_CASES = [
    dict(name="p1", shape=(2, 3, 4, 4)),
    dict(name="h1", shape=(4, 2, 5, 3), eps=1e-3, momentum=0.8, running=True),
    dict(name="h2", shape=(1, 3, 6, 6)),
    dict(name="h3", shape=(3, 5, 2, 2)),
    dict(name="h4", shape=(8, 4, 8, 8), scale=3.0, shift=-2.0),
    dict(name="h5", shape=(2, 1, 3, 7), momentum=0.6, running=True),
    dict(name="h7", shape=(2, 3, 1, 1), scale=0.02),   # two values per channel, eps matters
    dict(name="h8", shape=(1, 2, 1, 2), eps=1e-3, scale=0.05, running=True),
]
SPATIAL_TEST_CASES = [
    dict(name="p2", shape=(2, 3, 4, 4)),
    dict(name="h6", shape=(3, 4, 5, 5), eps=1e-3),
]

# (name, x shape, keep probability p, seed, another seed)
DROPOUT_TRAIN_CASES = [
    ("p1", (30, 40), 0.75, 11, 12),
    ("h1", (4, 3, 10, 10), 0.3, 5, 6),
    ("h2", (3000,), 0.6, 21, 22),
    ("h3", (50, 60), 0.9, 7, 8),
    ("h4", (2, 5, 20, 20), 0.15, 3, 4),
]
DROPOUT_TEST_CASES = [
    ("p2", (10, 20), 0.3),
    ("h5", (2, 3, 4, 4), 0.6),
]


# Known-mistake outputs are only stored for arrays up to this many values:
# small cases name a mistake just as well, and the data stays small.
MAX_VARIANT_SIZE = 4096


def rng_for(group, name):
    return np.random.RandomState(zlib.crc32(f"{group}/{name}".encode()))


def visibility_of(name):
    return "public" if name.startswith("p") else "hidden"


def pad_sides(x, before, after):
    """Zero-pad the two spatial axes with `before` rows/columns above/left and `after` below/right."""
    return np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))


class Builder:
    def __init__(self, ref, built_from=""):
        self.ref = ref
        self.built_from = built_from                # source_fingerprint of what ref was loaded from
        self.cases = {"public": {}, "hidden": {}}   # visibility -> group -> [entry]
        self.arrays = {}                            # relative path under visibility folder -> array

    def add(self, group, name, *, kind="standard", tags=(), params=None, inputs=None,
            expected=None, variants=None):
        visibility = visibility_of(name)
        prefix = f"{group}/{name}"
        entry = {"name": name, "kind": kind, "tags": list(tags), "params": params or {},
                 "inputs": {}, "expected": {}, "variants": {}}
        for role, arrays in (("inputs", inputs or {}), ("expected", expected or {})):
            for key, array in arrays.items():
                entry[role][key] = self._store(visibility, f"{prefix}.{role[:3]}.{key}.npy", array)
        for output, candidates in (variants or {}).items():
            kept = distinct_variants(candidates, (expected or {}).get(output))
            if kept:
                entry["variants"][output] = {
                    mistake: self._store(visibility, f"{prefix}.var.{output}.{mistake}.npy", array)
                    for mistake, array in kept.items()}
        self.cases[visibility].setdefault(group, []).append(entry)

    def _store(self, visibility, relative, array):
        array = np.ascontiguousarray(array)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"build_cases: {relative} would hold dtype {array.dtype}")
        self.arrays[(visibility, relative)] = array
        return relative

    def write(self, out_dir):
        out_dir = Path(out_dir)
        for visibility in ("public", "hidden"):
            folder = out_dir / visibility
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            index = {"format": FORMAT, "visibility": visibility, "built_from": self.built_from,
                     "groups": self.cases[visibility]}
            (folder / "cases.json").write_text(json.dumps(index, indent=1) + "\n")
        for (visibility, relative), array in sorted(self.arrays.items()):
            path = out_dir / visibility / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, array, allow_pickle=False)


def distinct_variants(candidates, expected):
    """Drop variants equal to the expected output or to an earlier variant:
    they could never tell a mistake apart."""
    kept = {}
    for mistake, array in candidates.items():
        array = np.asarray(array, dtype=np.float64)
        if array.size > MAX_VARIANT_SIZE:
            continue
        same = [other for other in [expected] + list(kept.values())
                if other is not None and other.shape == array.shape
                and np.allclose(other, array, rtol=1e-5, atol=1e-7)]
        if not same:
            kept[mistake] = array
    return kept


# -- convolution -----------------------------------------------------------------

def build_conv(builder):
    ref = builder.ref
    for name, N, C, H, W, F, HH, WW, S, P in CONV_CASES:
        rng = rng_for("conv", name)
        x = rng.randn(N, C, H, W)
        w = rng.randn(F, C, HH, WW) * 0.5
        b = rng.randn(F)
        conv_param = {"stride": S, "pad": P}
        out, cache = ref.conv_forward(x, w, b, conv_param)
        dout = rng.randn(*out.shape)
        dx, dw, db = ref.conv_backward(dout, cache)

        def forward(x_, w_, b_, stride, pad):
            return ref.conv_forward(x_, w_, b_, {"stride": stride, "pad": pad})[0]

        def grads(x_, w_, dout_, stride, pad):
            _, cache_ = ref.conv_forward(x_, w_, b, {"stride": stride, "pad": pad})
            return ref.conv_backward(dout_, cache_)

        flipped = w[:, :, ::-1, ::-1]
        no_bias = forward(x, w, np.zeros_like(b), S, P)
        out_variants = {"flipped_kernel": forward(x, flipped, b, S, P),
                        "bias_missing": no_bias, "bias_summed": no_bias + b.sum(),
                        "bias_per_kernel_element": no_bias + b[None, :, None, None] * (C * HH * WW)}
        if out.shape[3] == F:
            out_variants["bias_last_axis"] = no_bias + b
        if N == F:
            out_variants["bias_per_sample"] = no_bias + b[:, None, None, None]
        if S > 1:
            every_position = forward(x, w, b, 1, P)
            out_variants["stride_ignored"] = every_position
            out_variants["stride_ignored_cropped"] = every_position[:, :, :out.shape[2], :out.shape[3]]
        if P > 0:
            out_variants["pad_ignored"] = forward(x, w, b, S, 0)
            out_variants["pad_top_left_only"] = forward(pad_sides(x, P, 0), w, b, S, 0)
            out_variants["pad_bottom_right_only"] = forward(pad_sides(x, 0, P), w, b, S, 0)
            out_variants["pad_doubled_bottom_right"] = forward(pad_sides(x, 0, 2 * P), w, b, S, 0)
            out_variants["pad_doubled_top_left"] = forward(pad_sides(x, 2 * P, 0), w, b, S, 0)

        dx_variants = {"kernel_not_flipped": grads(x, flipped, dout, S, P)[0]}
        if P > 0:
            dx_variants["padding_not_removed"] = grads(pad_sides(x, P, P), w, dout, S, 0)[0]
        dw_variants = {"dw_flipped": dw[:, :, ::-1, ::-1]}
        db_variants = {"db_not_summed_spatially": dout.sum(axis=0),
                       "db_per_sample": dout.sum(axis=(2, 3))}
        if N > 1:
            dw_variants["first_sample_only"] = grads(x[:1], w, dout[:1], S, P)[1]
            dw_variants["batch_mean"] = dw / N
            db_variants["first_sample_only"] = dout[0].sum(axis=(1, 2))
            db_variants["batch_mean"] = db / N

        builder.add("conv", name, params={"conv_param": conv_param},
                    inputs={"x": x, "w": w, "b": b, "dout": dout},
                    expected={"out": out, "dx": dx, "dw": dw, "db": db},
                    variants={"out": out_variants, "dx": dx_variants, "dw": dw_variants,
                              "db": db_variants})


# -- pooling -----------------------------------------------------------------------

def pool_inputs(rng, shape, ties):
    """Distinct values (gaps of at least 4/n, far above the numerical-gradient step)
    or, with ties, small integers so that many windows share their maximum."""
    if ties:
        return rng.randint(0, 3, size=shape).astype(np.float64)
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * (4.0 / n)).reshape(shape)


def window_positions(x_shape, pool_param, out_shape):
    """(i, j, row slice, column slice) of every pooling window."""
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    for i in range(out_shape[2]):
        for j in range(out_shape[3]):
            yield i, j, slice(i * stride, i * stride + ph), slice(j * stride, j * stride + pw)


def max_pool_overwriting_backward(x, dout, pool_param):
    """Mistake: dx[window] = mask * dout instead of +=, so that overlapping
    windows overwrite each other's gradient."""
    dx = np.zeros_like(x)
    for i, j, rows, cols in window_positions(x.shape, pool_param, dout.shape):
        window = x[:, :, rows, cols]
        flat = window.reshape(x.shape[0], x.shape[1], -1)
        first_max = np.arange(flat.shape[2]) == flat.argmax(axis=2)[:, :, None]
        dx[:, :, rows, cols] = first_max.reshape(window.shape) * dout[:, :, i:i + 1, j:j + 1]
    return dx


def max_pool_routed_backward(x, dout, pool_param, route="assign"):
    """Mistakes in sending each window's gradient to its maximum: "assign"
    writes dx[max] = dout, so a position that is the maximum of several
    overlapping windows keeps only the last one's gradient; "no_stride" puts
    it at row i + a instead of i*stride + a; "no_offset" at the window-relative
    position (a, k) itself."""
    dx = np.zeros_like(x)
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C = x.shape[:2]
    for i, j, rows, cols in window_positions(x.shape, pool_param, dout.shape):
        flat = x[:, :, rows, cols].reshape(N, C, -1).argmax(axis=2)
        a, k = flat // pw, flat % pw
        for n in range(N):
            for c in range(C):
                if route == "assign":
                    dx[n, c, i * stride + a[n, c], j * stride + k[n, c]] = dout[n, c, i, j]
                elif route == "no_stride":
                    dx[n, c, i + a[n, c], j + k[n, c]] += dout[n, c, i, j]
                else:
                    dx[n, c, a[n, c], k[n, c]] += dout[n, c, i, j]
    return dx


def max_pool_all_ties_backward(x, dout, pool_param):
    """Mistake: every position equal to the window's maximum gets the gradient."""
    dx = np.zeros_like(x)
    for i, j, rows, cols in window_positions(x.shape, pool_param, dout.shape):
        window = x[:, :, rows, cols]
        is_max = window == window.max(axis=(2, 3), keepdims=True)
        dx[:, :, rows, cols] += is_max * dout[:, :, i:i + 1, j:j + 1]
    return dx


def avg_pool_overwriting_backward(x_shape, dout, pool_param):
    """Mistake: overlapping windows overwrite each other's share instead of adding up."""
    dx = np.zeros(x_shape)
    area = pool_param["pool_height"] * pool_param["pool_width"]
    for i, j, rows, cols in window_positions(x_shape, pool_param, dout.shape):
        dx[:, :, rows, cols] = dout[:, :, i:i + 1, j:j + 1] / area
    return dx


def build_pool(builder, group, table, forward, backward):
    ref = builder.ref
    for name, N, C, H, W, ph, pw, S, ties in table:
        rng = rng_for(group, name)
        x = pool_inputs(rng, (N, C, H, W), ties)
        pool_param = {"pool_height": ph, "pool_width": pw, "stride": S}
        out, cache = forward(x, pool_param)
        dout = rng.randn(*out.shape)
        dx = backward(dout, cache)
        area = ph * pw

        def with_params(function, **changes):
            return function(x, dict(pool_param, **changes))[0]

        out_variants, dx_variants = {}, {}
        if group == "max_pool":
            out_variants["average_instead"] = ref.avg_pool_forward(x, pool_param)[0]
            out_variants["min_instead"] = -ref.max_pool_forward(-x, pool_param)[0]
            _, avg_cache = ref.avg_pool_forward(x, pool_param)
            dx_variants["whole_window"] = ref.avg_pool_backward(dout * area, avg_cache)
            if S < ph or S < pw:
                dx_variants["overlap_overwritten"] = max_pool_overwriting_backward(x, dout, pool_param)
                dx_variants["argmax_assigned"] = max_pool_routed_backward(x, dout, pool_param, "assign")
            if not ties:
                if S > 1:
                    dx_variants["argmax_without_stride"] = max_pool_routed_backward(
                        x, dout, pool_param, "no_stride")
                dx_variants["argmax_without_offset"] = max_pool_routed_backward(
                    x, dout, pool_param, "no_offset")
            if ties:
                dx_variants["all_ties"] = max_pool_all_ties_backward(x, dout, pool_param)
        else:
            out_variants["not_divided"] = out * area
            out_variants["max_instead"] = ref.max_pool_forward(x, pool_param)[0]
            dx_variants["not_divided"] = dx * area
            if S < ph or S < pw:
                dx_variants["overlap_overwritten"] = avg_pool_overwriting_backward(x.shape, dout, pool_param)
        if ph != pw:
            out_variants["window_swapped"] = with_params(forward, pool_height=pw, pool_width=ph)
        if S > 1:
            every_position = with_params(forward, stride=1)
            out_variants["stride_ignored"] = every_position
            out_variants["stride_ignored_cropped"] = every_position[:, :, :out.shape[2], :out.shape[3]]
        builder.add(group, name, tags=["ties"] if ties else [], params={"pool_param": pool_param},
                    inputs={"x": x, "dout": dout}, expected={"out": out, "dx": dx},
                    variants={"out": out_variants, "dx": dx_variants})


# -- batch normalization ---------------------------------------------------------

def bn_param_of(spec, mode):
    param = {"mode": mode}
    for key in ("eps", "momentum"):
        if key in spec:
            param[key] = spec[key]
    return param


def bn_inputs(rng, spec, features):
    x = rng.randn(*spec["shape"]) * spec.get("scale", 1.0) + spec.get("shift", 0.0)
    gamma = 1.0 + 0.5 * rng.randn(features)
    beta = rng.randn(features)
    running = {}
    if spec.get("running"):
        running = {"running_mean": rng.randn(features) * 0.5, "running_var": rng.rand(features) + 0.5}
    return x, gamma, beta, running


def bn_formula_variants(x2d, gamma, beta, param, running):
    """Train-mode mistakes on 2-d data (rows are samples): output and running statistics."""
    eps = param.get("eps", 1e-5)
    momentum = param.get("momentum", 0.9)
    n = x2d.shape[0]
    mean, var = x2d.mean(axis=0), x2d.var(axis=0)
    zeros = np.zeros_like(mean)
    old_var = running.get("running_var", zeros)
    out = {"eps_outside_sqrt": gamma * (x2d - mean) / (np.sqrt(var) + eps) + beta,
           "eps_missing": gamma * (x2d - mean) / np.sqrt(var) + beta}
    running_var = {}
    if n > 1:
        unbiased = var * n / (n - 1)
        out["unbiased_variance"] = gamma * (x2d - mean) / np.sqrt(unbiased + eps) + beta
        running_var["unbiased_running_var"] = momentum * old_var + (1 - momentum) * unbiased
    running_var["running_std"] = momentum * old_var + (1 - momentum) * np.sqrt(var)
    return out, running_var


def bn_reference_variants(forward, x, gamma, beta, param, running):
    """Mistakes obtained from the reference itself: another momentum or eps,
    gamma and beta left out. Returns (output variants, running-stat variants)."""
    def run(changes):
        bn_param = dict(param, **{k: v.copy() for k, v in running.items()})
        for key, value in changes.items():
            if value is None:
                del bn_param[key]
            else:
                bn_param[key] = value
        out, _ = forward(x, gamma, beta, bn_param)
        return out, bn_param

    momentum = param.get("momentum", 0.9)
    out = {"gamma_beta_ignored": forward(x, np.ones_like(gamma), np.zeros_like(beta),
                                         dict(param, **{k: v.copy() for k, v in running.items()}))[0]}
    running_variants = {"running_mean": {}, "running_var": {}}
    _, swapped = run({"momentum": 1 - momentum})
    for key in running_variants:
        running_variants[key]["momentum_swapped"] = swapped[key]
    if param.get("momentum", 0.9) != 0.9:
        _, default_momentum = run({"momentum": None})
        for key in running_variants:
            running_variants[key]["momentum_ignored"] = default_momentum[key]
    if param.get("eps", 1e-5) != 1e-5:
        out["eps_ignored"], _ = run({"eps": None})
    return out, running_variants


def build_batchnorm(builder):
    ref = builder.ref
    for spec in BN_TRAIN_CASES:
        rng = rng_for("batchnorm", spec["name"])
        D = spec["shape"][1]
        x, gamma, beta, running = bn_inputs(rng, spec, D)
        param = bn_param_of(spec, "train")
        bn_param = dict(param, **{k: v.copy() for k, v in running.items()})
        out, cache = ref.batchnorm_forward(x, gamma, beta, bn_param)
        dout = rng.randn(*out.shape)
        dx, dgamma, dbeta = ref.batchnorm_backward(dout, cache)
        out_formula, running_var_formula = bn_formula_variants(x, gamma, beta, param, running)
        out_ref, running_variants = bn_reference_variants(ref.batchnorm_forward, x, gamma, beta,
                                                          param, running)
        running_variants["running_var"].update(running_var_formula)
        inv_std = 1.0 / np.sqrt(x.var(axis=0) + param.get("eps", 1e-5))
        builder.add("batchnorm", spec["name"], kind="train", params={"bn_param": param},
                    inputs=dict(x=x, gamma=gamma, beta=beta, dout=dout, **running),
                    expected={"out": out, "running_mean": bn_param["running_mean"],
                              "running_var": bn_param["running_var"],
                              "dx": dx, "dgamma": dgamma, "dbeta": dbeta},
                    variants={"out": dict(out_formula, **out_ref),
                              "running_mean": running_variants["running_mean"],
                              "running_var": running_variants["running_var"],
                              "dx": {"batch_statistics_constant": dout * gamma * inv_std},
                              "dgamma": {"batch_mean": dgamma / x.shape[0],
                                         "eps_missing": np.sum(
                                             dout * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0)),
                                             axis=0)},
                              "dbeta": {"batch_mean": dbeta / x.shape[0]}})

    for spec in BN_SEQUENCE_CASES:
        rng = rng_for("batchnorm", spec["name"])
        N, D = spec["shape"]
        _, gamma, beta, running = bn_inputs(rng, spec, D)
        batches = rng.randn(spec["batches"], N, D) * 2.0 + rng.randn(D)
        param = bn_param_of(spec, "train")
        states = {"expected": dict(param, **{k: v.copy() for k, v in running.items()}),
                  "momentum_swapped": dict(param, momentum=1 - param.get("momentum", 0.9),
                                           **{k: v.copy() for k, v in running.items()})}
        history = {name: {"running_mean": [], "running_var": []} for name in states}
        for batch in batches:
            for name, state in states.items():
                ref.batchnorm_forward(batch, gamma, beta, state)
                history[name]["running_mean"].append(state["running_mean"].copy())
                history[name]["running_var"].append(state["running_var"].copy())
        expected = {key: np.stack(values) for key, values in history["expected"].items()}
        swapped = {key: np.stack(values) for key, values in history["momentum_swapped"].items()}
        builder.add("batchnorm", spec["name"], kind="sequence", params={"bn_param": param},
                    inputs=dict(batches=batches, gamma=gamma, beta=beta, **running),
                    expected=expected,
                    variants={key: {"momentum_swapped": swapped[key]} for key in swapped})

    for spec in BN_TEST_CASES:
        rng = rng_for("batchnorm", spec["name"])
        D = spec["shape"][1]
        x, gamma, beta, _ = bn_inputs(rng, spec, D)
        running = {"running_mean": rng.randn(D), "running_var": rng.rand(D) + 0.5}
        param = bn_param_of(spec, "test")
        out, _ = ref.batchnorm_forward(x, gamma, beta, dict(param, **running))
        variants = {}
        if x.shape[0] > 1:
            variants["batch_statistics"] = ref.batchnorm_forward(
                x, gamma, beta, dict(param, mode="train", **{k: v.copy() for k, v in running.items()}))[0]
        if "eps" in param:
            variants["eps_ignored"] = ref.batchnorm_forward(
                x, gamma, beta, dict(running, mode="test"))[0]
        eps = param.get("eps", 1e-5)
        variants["eps_outside_sqrt"] = (gamma * (x - running["running_mean"])
                                        / (np.sqrt(running["running_var"]) + eps) + beta)
        builder.add("batchnorm", spec["name"], kind="test", params={"bn_param": param},
                    inputs=dict(x=x, gamma=gamma, beta=beta, **running),
                    expected={"out": out}, variants={"out": variants})


def build_spatial_batchnorm(builder):
    ref = builder.ref
    for spec in SPATIAL_TRAIN_CASES:
        rng = rng_for("spatial_batchnorm", spec["name"])
        N, C, H, W = spec["shape"]
        x, gamma, beta, running = bn_inputs(rng, spec, C)
        param = bn_param_of(spec, "train")

        def fresh_param():
            return dict(param, **{k: v.copy() for k, v in running.items()})

        bn_param = fresh_param()
        out, cache = ref.spatial_batchnorm_forward(x, gamma, beta, bn_param)
        dout = rng.randn(*out.shape)
        dx, dgamma, dbeta = ref.spatial_batchnorm_backward(dout, cache)

        # Mistake: x.reshape(-1, C) without moving the channels last first.
        scrambled_param = fresh_param()
        scrambled, scrambled_cache = ref.batchnorm_forward(x.reshape(-1, C), gamma, beta, scrambled_param)
        scrambled_dx, scrambled_dgamma, _ = ref.batchnorm_backward(dout.reshape(-1, C), scrambled_cache)
        # Mistake: statistics per pixel (over N only) instead of per channel.
        per_pixel_param = {k: v for k, v in param.items()}
        per_pixel = ref.batchnorm_forward(x.reshape(N, -1), np.repeat(gamma, H * W),
                                          np.repeat(beta, H * W), per_pixel_param)[0]
        x2d = x.transpose(0, 2, 3, 1).reshape(-1, C)
        # Mistakes in the way back from (N*H*W, C): reshaped without the transpose.
        flat_out, flat_cache = ref.batchnorm_forward(x2d, gamma, beta, fresh_param())
        flat_dx, flat_dgamma, _ = ref.batchnorm_backward(dout.reshape(-1, C), flat_cache)
        out_formula, running_var_formula = bn_formula_variants(x2d, gamma, beta, param, running)
        out_variants = {"reshape_without_transpose": scrambled.reshape(x.shape),
                        "per_pixel_statistics": per_pixel.reshape(x.shape),
                        "output_not_transposed_back": flat_out.reshape(x.shape)}
        out_variants.update({key: value.reshape(N, H, W, C).transpose(0, 3, 1, 2)
                             for key, value in out_formula.items()})
        _, momentum_variants = bn_reference_variants(ref.batchnorm_forward, x2d, gamma, beta,
                                                     param, running)
        running_mean_variants = dict(momentum_variants["running_mean"],
                                     reshape_without_transpose=scrambled_param["running_mean"],
                                     per_pixel_statistics=per_pixel_param["running_mean"])
        running_var_variants = dict(momentum_variants["running_var"], **running_var_formula,
                                    reshape_without_transpose=scrambled_param["running_var"],
                                    per_pixel_statistics=per_pixel_param["running_var"])
        builder.add("spatial_batchnorm", spec["name"], kind="train", params={"bn_param": param},
                    inputs=dict(x=x, gamma=gamma, beta=beta, dout=dout, **running),
                    expected={"out": out, "running_mean": bn_param["running_mean"],
                              "running_var": bn_param["running_var"],
                              "dx": dx, "dgamma": dgamma, "dbeta": dbeta},
                    variants={"out": out_variants, "running_mean": running_mean_variants,
                              "running_var": running_var_variants,
                              "dx": {"reshape_without_transpose": scrambled_dx.reshape(x.shape),
                                     "dout_reshape_without_transpose": flat_dx.reshape(x.shape)},
                              "dgamma": {"reshape_without_transpose": scrambled_dgamma,
                                         "dout_reshape_without_transpose": flat_dgamma,
                                         "eps_missing": np.sum(
                                             dout * (x - x.mean(axis=(0, 2, 3), keepdims=True))
                                             / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True)),
                                             axis=(0, 2, 3))}})

    for spec in SPATIAL_TEST_CASES:
        rng = rng_for("spatial_batchnorm", spec["name"])
        C = spec["shape"][1]
        x, gamma, beta, _ = bn_inputs(rng, spec, C)
        running = {"running_mean": rng.randn(C), "running_var": rng.rand(C) + 0.5}
        param = bn_param_of(spec, "test")
        out, _ = ref.spatial_batchnorm_forward(x, gamma, beta, dict(param, **running))
        batch_statistics = ref.spatial_batchnorm_forward(
            x, gamma, beta, dict(param, mode="train", **{k: v.copy() for k, v in running.items()}))[0]
        eps = param.get("eps", 1e-5)
        mean = running["running_mean"][None, :, None, None]
        std = np.sqrt(running["running_var"])[None, :, None, None]
        eps_outside = gamma[None, :, None, None] * (x - mean) / (std + eps) + beta[None, :, None, None]
        builder.add("spatial_batchnorm", spec["name"], kind="test", params={"bn_param": param},
                    inputs=dict(x=x, gamma=gamma, beta=beta, **running), expected={"out": out},
                    variants={"out": {"batch_statistics": batch_statistics,
                                      "eps_outside_sqrt": eps_outside}})


# -- dropout ------------------------------------------------------------------------

def dropout_input(rng, shape):
    """Values of magnitude 0.5 to 2: a zero in the output can only mean a dropped unit."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)


def build_dropout(builder):
    for name, shape, p, seed, other_seed in DROPOUT_TRAIN_CASES:
        rng = rng_for("dropout", name)
        builder.add("dropout", name, kind="train",
                    params={"p": p, "seed": seed, "other_seed": other_seed},
                    inputs={"x": dropout_input(rng, shape), "dout": rng.randn(*shape)})
    for name, shape, p in DROPOUT_TEST_CASES:
        rng = rng_for("dropout", name)
        builder.add("dropout", name, kind="test", params={"p": p},
                    inputs={"x": dropout_input(rng, shape), "dout": rng.randn(*shape)})


def load_reference(solutions_dir):
    path = Path(solutions_dir) / "layers.py"
    if not path.is_file():
        raise SystemExit(f"build-cases: the reference {path} does not exist (--solutions DIR)")
    spec = importlib.util.spec_from_file_location("reference_layers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_fingerprint(solutions_dir=DEFAULT_SOLUTIONS):
    """What the cases are computed from, as 16 hex digits: the reference
    layers.py and this builder (line endings do not count)."""
    digest = hashlib.sha256(f"cases format {FORMAT}\n".encode())
    for path in (Path(solutions_dir) / "layers.py", Path(__file__)):
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()[:16]


def built_from(cases_dir=CASES_DIR):
    """{visibility: the fingerprint its cases.json records, or None}."""
    found = {}
    for visibility in ("public", "hidden"):
        try:
            found[visibility] = json.loads((Path(cases_dir) / visibility / "cases.json").read_text()).get("built_from")
        except (OSError, ValueError, AttributeError):
            found[visibility] = None
    return found


def stale_problem(solutions_dir=DEFAULT_SOLUTIONS, cases_dir=CASES_DIR):
    """None when the cases in cases_dir were built from solutions_dir/layers.py
    as it is now (and by this builder), else what is wrong and the command to run."""
    wanted = source_fingerprint(solutions_dir)
    recorded = built_from(cases_dir)
    if all(value == wanted for value in recorded.values()):
        return None
    missing = [visibility for visibility, value in recorded.items() if value is None]
    what = (f"{cases_dir} has no {' or '.join(missing)} cases with a fingerprint" if missing
            else f"{cases_dir} was built from another {Path(solutions_dir) / 'layers.py'} (or build_cases.py)")
    return f"{what}: run `make cases` (python -m autograder build-cases) first"


def build(solutions_dir=DEFAULT_SOLUTIONS, out_dir=CASES_DIR):
    builder = Builder(load_reference(solutions_dir), source_fingerprint(solutions_dir))
    build_conv(builder)
    ref = builder.ref
    build_pool(builder, "max_pool", MAX_POOL_CASES, ref.max_pool_forward, ref.max_pool_backward)
    build_pool(builder, "avg_pool", AVG_POOL_CASES, ref.avg_pool_forward, ref.avg_pool_backward)
    build_batchnorm(builder)
    build_spatial_batchnorm(builder)
    build_dropout(builder)
    builder.write(out_dir)
    return builder


def add_arguments(parser):
    parser.add_argument("--solutions", default=str(DEFAULT_SOLUTIONS),
                        help="folder with the reference layers.py (default: solutions/cnn)")
    parser.add_argument("--out", default=str(CASES_DIR),
                        help="where to write public/ and hidden/ (default: autograder/cases)")
    parser.add_argument("--if-stale", action="store_true",
                        help="rebuild only when the cases were not built from the current reference "
                             "layers.py (what `make handout` and `make autograder-zip` run first)")


def run(args):
    if args.if_stale and stale_problem(args.solutions, args.out) is None:
        print(f"{args.out}: up to date with {Path(args.solutions) / 'layers.py'} (not rebuilt)")
        return 0
    builder = build(args.solutions, args.out)
    counts = {visibility: sum(len(cases) for cases in groups.values())
              for visibility, groups in builder.cases.items()}
    print(f"wrote {counts['public']} public and {counts['hidden']} hidden cases "
          f"({len(builder.arrays)} arrays) to {args.out}")
    return 0
