"""The reference numpy layers (solutions/cnn/layers.py) against torch in
float64, plus central-difference gradient checks and the contracts of the
docstrings (inputs never modified, float64 results, running statistics,
dropout masks, max-pool ties)."""
import copy
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import import_reference, numeric_gradient, rel_error

layers = import_reference("layers")

# float64 throughout: differences from torch are pure rounding, ~1e-15.
TORCH_RTOL, TORCH_ATOL = 1e-10, 1e-12
# Central differences with h=1e-6 on O(1) values agree to ~1e-9.
NUMERIC_TOL = 1e-7


def assert_matches_torch(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=TORCH_RTOL, atol=TORCH_ATOL,
                               err_msg=f"{what} differs from torch")


def torch_forward_backward(function, arrays, dout):
    """Run function on float64 tensors made from arrays and backpropagate
    dout. Returns (out, [gradient of each array]) as numpy."""
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = function(*tensors)
    out.backward(torch.from_numpy(dout))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def assert_numeric_gradient(analytic, f, x, dout, what):
    numeric = numeric_gradient(f, x, dout)
    error = rel_error(analytic, numeric)
    assert error < NUMERIC_TOL, f"{what}: relative error {error:.2e} against central differences"


# ----------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------

class ConvCase(NamedTuple):
    N: int
    C: int
    H: int
    W: int
    F: int
    HH: int
    WW: int
    stride: int
    pad: int

    def __str__(self):
        return (f"N{self.N}-C{self.C}-{self.H}x{self.W}-F{self.F}-k{self.HH}x{self.WW}"
                f"-s{self.stride}-p{self.pad}")

    def arrays(self, seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.N, self.C, self.H, self.W))
        w = rng.standard_normal((self.F, self.C, self.HH, self.WW))
        b = rng.standard_normal(self.F)
        return x, w, b, {"stride": self.stride, "pad": self.pad}

    def out_shape(self):
        return (self.N, self.F, 1 + (self.H + 2 * self.pad - self.HH) // self.stride,
                1 + (self.W + 2 * self.pad - self.WW) // self.stride)


def _random_conv_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        stride, pad = int(rng.integers(1, 4)), int(rng.integers(0, 3))
        HH, WW = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        H, W = int(rng.integers(1, 10)), int(rng.integers(1, 10))
        if H + 2 * pad >= HH and W + 2 * pad >= WW:
            cases.append(ConvCase(int(rng.integers(1, 4)), int(rng.integers(1, 4)), H, W,
                                  int(rng.integers(1, 5)), HH, WW, stride, pad))
    return cases


CONV_CASES = [
    ConvCase(1, 1, 5, 5, 1, 3, 3, 1, 0),   # batch 1, one channel, one filter
    ConvCase(2, 3, 8, 8, 4, 3, 3, 1, 1),   # the usual 'same' convolution
    ConvCase(2, 3, 7, 9, 3, 3, 2, 2, 1),   # non-square kernel, 7+2-3 and 9+2-2 odd: last rows unused
    ConvCase(1, 2, 6, 5, 2, 2, 3, 3, 2),   # stride 3, pad 2
    ConvCase(3, 2, 9, 9, 2, 2, 2, 3, 0),   # stride > kernel: input pixels no filter touches
    ConvCase(2, 1, 4, 6, 5, 5, 1, 2, 2),   # kernel taller than the input, only fits with padding
    ConvCase(1, 3, 1, 1, 2, 1, 1, 1, 0),   # 1x1 image, 1x1 kernel
] + _random_conv_cases(count=30, seed=2024)


def test_conv_cases_cover_the_required_configurations():
    cases = CONV_CASES
    assert {c.stride for c in cases} >= {1, 2, 3}
    assert {c.pad for c in cases} >= {0, 1, 2}
    assert any(c.HH != c.WW for c in cases), "no non-square kernel"
    assert any((c.H + 2 * c.pad - c.HH) % c.stride for c in cases), "stride always divides the height"
    assert any((c.W + 2 * c.pad - c.WW) % c.stride for c in cases), "stride always divides the width"
    assert any(c.N == 1 for c in cases) and any(c.C == 1 for c in cases)
    assert any(c.F > 1 for c in cases)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_forward_matches_torch(case):
    x, w, b, conv_param = case.arrays(seed=1)
    out, _ = layers.conv_forward(x, w, b, conv_param)
    assert out.shape == case.out_shape()
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                        stride=case.stride, padding=case.pad).numpy()
    assert_matches_torch(out, expected, f"conv_forward out for {case}")


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_backward_matches_torch_autograd(case):
    x, w, b, conv_param = case.arrays(seed=2)
    out, cache = layers.conv_forward(x, w, b, conv_param)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    dx, dw, db = layers.conv_backward(dout, cache)
    _, (tdx, tdw, tdb) = torch_forward_backward(
        lambda tx, tw, tb: F.conv2d(tx, tw, tb, stride=case.stride, padding=case.pad),
        (x, w, b), dout)
    assert_matches_torch(dx, tdx, f"conv_backward dx for {case}")
    assert_matches_torch(dw, tdw, f"conv_backward dw for {case}")
    assert_matches_torch(db, tdb, f"conv_backward db for {case}")


NUMERIC_CONV_CASES = [
    ConvCase(2, 2, 5, 6, 3, 3, 2, 2, 1),
    ConvCase(1, 1, 7, 7, 2, 2, 2, 3, 0),
    ConvCase(2, 3, 4, 4, 2, 3, 3, 1, 2),
]


@pytest.mark.parametrize("case", NUMERIC_CONV_CASES, ids=str)
def test_conv_backward_numeric_gradient(case):
    x, w, b, conv_param = case.arrays(seed=4)
    out, cache = layers.conv_forward(x, w, b, conv_param)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    dx, dw, db = layers.conv_backward(dout, cache)
    assert_numeric_gradient(dx, lambda v: layers.conv_forward(v, w, b, conv_param)[0], x, dout,
                            f"conv_backward dx for {case}")
    assert_numeric_gradient(dw, lambda v: layers.conv_forward(x, v, b, conv_param)[0], w, dout,
                            f"conv_backward dw for {case}")
    assert_numeric_gradient(db, lambda v: layers.conv_forward(x, w, v, conv_param)[0], b, dout,
                            f"conv_backward db for {case}")


# ----------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------

class PoolCase(NamedTuple):
    N: int
    C: int
    H: int
    W: int
    ph: int
    pw: int
    stride: int

    def __str__(self):
        return f"N{self.N}-C{self.C}-{self.H}x{self.W}-win{self.ph}x{self.pw}-s{self.stride}"

    def param(self):
        return {"pool_height": self.ph, "pool_width": self.pw, "stride": self.stride}

    def out_hw(self):
        return 1 + (self.H - self.ph) // self.stride, 1 + (self.W - self.pw) // self.stride

    def torch_kwargs(self):
        return {"kernel_size": (self.ph, self.pw), "stride": self.stride}


def _random_pool_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        ph, pw, stride = int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
        H, W = int(rng.integers(ph, 10)), int(rng.integers(pw, 10))
        cases.append(PoolCase(int(rng.integers(1, 4)), int(rng.integers(1, 4)), H, W, ph, pw, stride))
    return cases


POOL_CASES = [
    PoolCase(2, 3, 8, 8, 2, 2, 2),   # the usual 2x2/2
    PoolCase(1, 1, 7, 7, 3, 3, 1),   # overlapping windows, batch 1, one channel
    PoolCase(2, 2, 9, 8, 3, 2, 2),   # non-square and overlapping in height
    PoolCase(2, 2, 9, 10, 2, 2, 3),  # stride > window: rows and columns skipped
    PoolCase(1, 2, 5, 7, 2, 3, 1),   # non-square, overlapping both ways
    PoolCase(3, 1, 4, 4, 4, 4, 1),   # one window covers the whole image
] + _random_pool_cases(count=20, seed=77)


def test_pool_cases_cover_the_required_configurations():
    assert any(c.ph != c.pw for c in POOL_CASES), "no non-square window"
    assert any(c.stride < max(c.ph, c.pw) for c in POOL_CASES), "no overlapping windows"
    assert any(c.stride > max(c.ph, c.pw) for c in POOL_CASES), "no stride larger than the window"
    assert any(c.N == 1 for c in POOL_CASES) and any(c.C == 1 for c in POOL_CASES)


def _pool_input(case, seed):
    return np.random.default_rng(seed).standard_normal((case.N, case.C, case.H, case.W))


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool_matches_torch(case):
    x = _pool_input(case, seed=10)
    out, cache = layers.max_pool_forward(x, case.param())
    assert out.shape == (case.N, case.C, *case.out_hw())
    dout = np.random.default_rng(11).standard_normal(out.shape)
    dx = layers.max_pool_backward(dout, cache)
    expected_out, (expected_dx,) = torch_forward_backward(
        lambda t: F.max_pool2d(t, **case.torch_kwargs()), (x,), dout)
    assert_matches_torch(out, expected_out, f"max_pool_forward out for {case}")
    assert_matches_torch(dx, expected_dx, f"max_pool_backward dx for {case}")


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_avg_pool_matches_torch(case):
    x = _pool_input(case, seed=12)
    out, cache = layers.avg_pool_forward(x, case.param())
    assert out.shape == (case.N, case.C, *case.out_hw())
    dout = np.random.default_rng(13).standard_normal(out.shape)
    dx = layers.avg_pool_backward(dout, cache)
    expected_out, (expected_dx,) = torch_forward_backward(
        lambda t: F.avg_pool2d(t, **case.torch_kwargs()), (x,), dout)
    assert_matches_torch(out, expected_out, f"avg_pool_forward out for {case}")
    assert_matches_torch(dx, expected_dx, f"avg_pool_backward dx for {case}")


TIE_CASES = [PoolCase(2, 2, 6, 6, 2, 2, 2), PoolCase(1, 2, 7, 6, 3, 2, 1),
             PoolCase(2, 1, 8, 9, 2, 3, 3)]


@pytest.mark.parametrize("values", ["constant", "zeros-and-ones"])
@pytest.mark.parametrize("case", TIE_CASES, ids=str)
def test_max_pool_tie_routes_each_window_gradient_to_one_maximum(case, values):
    if values == "constant":
        x = np.full((case.N, case.C, case.H, case.W), 0.5)
    else:
        x = np.random.default_rng(14).integers(0, 2, (case.N, case.C, case.H, case.W)).astype(np.float64)
    out, cache = layers.max_pool_forward(x, case.param())
    H_out, W_out = case.out_hw()
    # The backward pass is linear in dout: a one-hot dout isolates one window.
    for n, c, i, j in np.ndindex(case.N, case.C, H_out, W_out):
        dout = np.zeros(out.shape)
        dout[n, c, i, j] = 1.0
        dx = layers.max_pool_backward(dout, cache)
        receivers = np.argwhere(dx != 0)
        where = f"{case}, {values}, window (n={n}, c={c}, i={i}, j={j})"
        assert len(receivers) == 1, f"{where}: gradient went to {len(receivers)} positions, expected 1"
        rn, rc, rh, rw = receivers[0]
        assert dx[rn, rc, rh, rw] == 1.0, f"{where}: gradient {dx[rn, rc, rh, rw]} instead of 1"
        top, left = i * case.stride, j * case.stride
        assert (rn, rc) == (n, c) and top <= rh < top + case.ph and left <= rw < left + case.pw, \
            f"{where}: gradient went to {(rn, rc, rh, rw)}, outside the window"
        assert x[rn, rc, rh, rw] == out[n, c, i, j], f"{where}: gradient went to a non-maximum"


def _distinct_values(shape, seed):
    """Values 0.01 apart, so a +-1e-6 shift never changes which one is a max."""
    count = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(count).reshape(shape) * 0.01 - 0.5


@pytest.mark.parametrize("case", POOL_CASES[:5], ids=str)
def test_pool_backward_numeric_gradient(case):
    x = _distinct_values((case.N, case.C, case.H, case.W), seed=15)
    param = case.param()
    for name in ("max", "avg"):
        forward = getattr(layers, f"{name}_pool_forward")
        backward = getattr(layers, f"{name}_pool_backward")
        out, cache = forward(x, param)
        dout = np.random.default_rng(16).standard_normal(out.shape)
        assert_numeric_gradient(backward(dout, cache), lambda v: forward(v, param)[0], x, dout,
                                f"{name}_pool_backward dx for {case}")


# ----------------------------------------------------------------------------
# Batch normalization
# ----------------------------------------------------------------------------

BN_SHAPES = [(2, 3), (5, 1), (16, 7), (64, 4)]
SPATIAL_BN_SHAPES = [(1, 3, 4, 5), (2, 1, 3, 3), (4, 5, 2, 6), (3, 2, 7, 1)]


def _bn_arrays(shape, seed):
    """x with per-feature offsets and scales far from (0, 1), and random gamma, beta."""
    rng = np.random.default_rng(seed)
    features = shape[1]
    layout = (1, features) + (1,) * (len(shape) - 2)
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3, features).reshape(layout) \
        + rng.uniform(-4, 4, features).reshape(layout)
    return x, rng.standard_normal(features), rng.standard_normal(features)


def _bn_functions(shape):
    if len(shape) == 2:
        return layers.batchnorm_forward, layers.batchnorm_backward
    return layers.spatial_batchnorm_forward, layers.spatial_batchnorm_backward


def _batch_statistics(x):
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    return x.mean(axis=axes), x.var(axis=axes)  # numpy's var is the biased one


@pytest.mark.parametrize("eps", [1e-5, 0.3])
@pytest.mark.parametrize("shape", BN_SHAPES + SPATIAL_BN_SHAPES, ids=str)
def test_batchnorm_train_mode_matches_torch(shape, eps):
    forward, backward = _bn_functions(shape)
    x, gamma, beta = _bn_arrays(shape, seed=20)
    bn_param = {"mode": "train"} if eps == 1e-5 else {"mode": "train", "eps": eps}
    out, cache = forward(x, gamma, beta, bn_param)
    dout = np.random.default_rng(21).standard_normal(out.shape)
    dx, dgamma, dbeta = backward(dout, cache)
    expected_out, (tdx, tdgamma, tdbeta) = torch_forward_backward(
        lambda tx, tg, tb: F.batch_norm(tx, None, None, tg, tb, training=True, eps=eps),
        (x, gamma, beta), dout)
    name = forward.__name__
    assert_matches_torch(out, expected_out, f"{name} out, shape {shape}, eps {eps}")
    assert_matches_torch(dx, tdx, f"{name} backward dx, shape {shape}, eps {eps}")
    assert_matches_torch(dgamma, tdgamma, f"{name} backward dgamma, shape {shape}, eps {eps}")
    assert_matches_torch(dbeta, tdbeta, f"{name} backward dbeta, shape {shape}, eps {eps}")


@pytest.mark.parametrize("shape", BN_SHAPES + SPATIAL_BN_SHAPES, ids=str)
def test_batchnorm_missing_running_stats_start_at_zero_with_default_momentum(shape):
    forward, _ = _bn_functions(shape)
    x, gamma, beta = _bn_arrays(shape, seed=22)
    bn_param = {"mode": "train"}
    forward(x, gamma, beta, bn_param)
    mean, var = _batch_statistics(x)
    np.testing.assert_allclose(bn_param["running_mean"], 0.1 * mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(bn_param["running_var"], 0.1 * var, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)], ids=str)
def test_batchnorm_running_stats_follow_the_momentum_rule_with_biased_variance(shape):
    # N*H*W is tiny here, so biased and unbiased variance differ by 25-50%.
    forward, _ = _bn_functions(shape)
    features = shape[1]
    momentum = 0.7
    running_mean = np.linspace(-1, 1, features)
    running_var = np.linspace(0.5, 2, features)
    bn_param = {"mode": "train", "momentum": momentum,
                "running_mean": running_mean.copy(), "running_var": running_var.copy()}
    for step in range(3):
        x, gamma, beta = _bn_arrays(shape, seed=30 + step)
        forward(x, gamma, beta, bn_param)
        mean, var = _batch_statistics(x)
        running_mean = momentum * running_mean + (1 - momentum) * mean
        running_var = momentum * running_var + (1 - momentum) * var
        np.testing.assert_allclose(bn_param["running_mean"], running_mean, rtol=1e-12,
                                   err_msg=f"running_mean after step {step + 1}")
        np.testing.assert_allclose(bn_param["running_var"], running_var, rtol=1e-12,
                                   err_msg=f"running_var after step {step + 1}")


@pytest.mark.parametrize("eps", [1e-5, 0.5])
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3)], ids=str)
def test_batchnorm_test_mode_uses_running_stats_and_changes_nothing(shape, eps):
    forward, _ = _bn_functions(shape)
    x, gamma, beta = _bn_arrays(shape, seed=40)
    features = shape[1]
    running_mean = np.linspace(-2, 2, features)
    running_var = np.linspace(0.25, 3, features)
    bn_param = {"mode": "test", "running_mean": running_mean.copy(),
                "running_var": running_var.copy(), "momentum": 0.9}
    if eps != 1e-5:
        bn_param["eps"] = eps
    before = copy.deepcopy(bn_param)
    out, _ = forward(x, gamma, beta, bn_param)
    expected = F.batch_norm(torch.from_numpy(x), torch.from_numpy(running_mean),
                            torch.from_numpy(running_var), torch.from_numpy(gamma),
                            torch.from_numpy(beta), training=False, eps=eps).numpy()
    assert_matches_torch(out, expected, f"{forward.__name__} test-mode out, shape {shape}, eps {eps}")
    assert bn_param.keys() == before.keys(), "test mode added or removed bn_param entries"
    for key in ("running_mean", "running_var"):
        np.testing.assert_array_equal(bn_param[key], before[key], err_msg=f"test mode changed {key}")
    # Each sample is normalized on its own: one sample alone gives the same row.
    alone, _ = forward(x[:1], gamma, beta, copy.deepcopy(before))
    assert_matches_torch(alone, out[:1], "test-mode output of a batch of one")


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 2, 2)], ids=str)
def test_batchnorm_test_mode_without_running_stats_uses_zeros(shape):
    forward, _ = _bn_functions(shape)
    x, gamma, beta = _bn_arrays(shape, seed=41)
    out, _ = forward(x, gamma, beta, {"mode": "test", "eps": 0.25})
    layout = (1, shape[1]) + (1,) * (len(shape) - 2)
    expected = gamma.reshape(layout) * x / np.sqrt(0.25) + beta.reshape(layout)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3), (6, 1), (2, 2, 3, 2), (1, 3, 2, 2)], ids=str)
def test_batchnorm_backward_numeric_gradient(shape):
    forward, backward = _bn_functions(shape)
    x, gamma, beta = _bn_arrays(shape, seed=50)
    out, cache = forward(x, gamma, beta, {"mode": "train"})
    dout = np.random.default_rng(51).standard_normal(out.shape)
    dx, dgamma, dbeta = backward(dout, cache)

    def out_of(x_, gamma_, beta_):
        return forward(x_, gamma_, beta_, {"mode": "train"})[0]

    name = backward.__name__
    assert_numeric_gradient(dx, lambda v: out_of(v, gamma, beta), x, dout, f"{name} dx, shape {shape}")
    assert_numeric_gradient(dgamma, lambda v: out_of(x, v, beta), gamma, dout,
                            f"{name} dgamma, shape {shape}")
    assert_numeric_gradient(dbeta, lambda v: out_of(x, gamma, v), beta, dout,
                            f"{name} dbeta, shape {shape}")


# ----------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------

def _dropout_input(shape, seed):
    """Values in [1, 2): none is 0, so a zero output always means dropped."""
    return np.random.default_rng(seed).uniform(1, 2, shape)


@pytest.mark.parametrize("seed", [0, 1, None])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_keeps_a_share_p_of_units_scaled_by_1_over_p(p, seed):
    shape = (200, 500)
    x = _dropout_input(shape, seed=60)
    param = {"p": p, "mode": "train"}
    if seed is not None:
        param["seed"] = seed
    out, _ = layers.dropout_forward(x, param)
    kept = out != 0
    n = kept.size
    # Binomial(n, p): five standard deviations, a false failure about once in 1.7 million runs.
    bound = 5 * np.sqrt(p * (1 - p) / n)
    assert abs(kept.mean() - p) <= bound, f"kept {kept.mean():.4f} of the units with p={p} (+-{bound:.4f})"
    np.testing.assert_allclose(out[kept], x[kept] / p, rtol=1e-15, err_msg="kept units not scaled by 1/p")


def test_dropout_with_p_1_keeps_everything():
    x = _dropout_input((30, 40), seed=61)
    out, _ = layers.dropout_forward(x, {"p": 1.0, "mode": "train", "seed": 3})
    np.testing.assert_array_equal(out, x)


def test_dropout_same_seed_same_mask_other_seed_or_no_seed_another():
    x = _dropout_input((50, 60), seed=62)
    first, _ = layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 7})
    again, _ = layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 7})
    other, _ = layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 8})
    np.testing.assert_array_equal(first, again, err_msg="the same seed gave another mask")
    # 3000 units at p=0.5: two independent masks are equal with probability 2**-3000.
    assert not np.array_equal(first, other), "seeds 7 and 8 gave the same mask"
    unseeded = [layers.dropout_forward(x, {"p": 0.5, "mode": "train"})[0] for _ in range(2)]
    assert not np.array_equal(*unseeded), "two unseeded calls gave the same mask"


def test_dropout_test_mode_is_identity_forward_and_backward():
    x = _dropout_input((4, 3, 5), seed=63)
    out, cache = layers.dropout_forward(x, {"p": 0.3, "mode": "test", "seed": 1})
    np.testing.assert_array_equal(out, x)
    dout = np.random.default_rng(64).standard_normal(x.shape)
    np.testing.assert_array_equal(layers.dropout_backward(dout, cache), dout)


@pytest.mark.parametrize("p", [0.25, 0.8])
def test_dropout_backward_uses_the_forward_mask(p):
    x = _dropout_input((20, 30), seed=65)
    out, cache = layers.dropout_forward(x, {"p": p, "mode": "train"})
    dout = np.random.default_rng(66).standard_normal(x.shape)
    dx = layers.dropout_backward(dout, cache)
    kept = out != 0
    np.testing.assert_array_equal(dx[~kept], 0.0, err_msg="gradient reached a dropped unit")
    np.testing.assert_allclose(dx[kept], dout[kept] / p, rtol=1e-15,
                               err_msg="gradient of a kept unit not scaled by 1/p")
    # A second forward pass draws a new mask; the first cache must still hold the first.
    layers.dropout_forward(x, {"p": p, "mode": "train"})
    np.testing.assert_array_equal(layers.dropout_backward(dout, cache), dx)


def test_dropout_backward_numeric_gradient():
    x = _dropout_input((6, 7), seed=67)
    param = {"p": 0.6, "mode": "train", "seed": 11}
    out, cache = layers.dropout_forward(x, param)
    dout = np.random.default_rng(68).standard_normal(out.shape)
    assert_numeric_gradient(layers.dropout_backward(dout, cache),
                            lambda v: layers.dropout_forward(v, dict(param))[0], x, dout,
                            "dropout_backward dx")


# ----------------------------------------------------------------------------
# Provided layers
# ----------------------------------------------------------------------------

def test_provided_affine_relu_softmax_match_torch():
    rng = np.random.default_rng(70)
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    out, cache = layers.affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    expected, (tdx, tdw, tdb) = torch_forward_backward(
        lambda tx, tw, tb: tx.reshape(4, -1) @ tw + tb, (x, w, b), dout)
    assert_matches_torch(out, expected, "affine_forward out")
    for got, want, name in zip(layers.affine_backward(dout, cache), (tdx, tdw, tdb), ("dx", "dw", "db")):
        assert_matches_torch(got, want, f"affine_backward {name}")

    out, cache = layers.relu_forward(x)
    dout = rng.standard_normal(x.shape)
    expected, (tdx,) = torch_forward_backward(torch.relu, (x,), dout)
    assert_matches_torch(out, expected, "relu_forward out")
    assert_matches_torch(layers.relu_backward(dout, cache), tdx, "relu_backward dx")

    scores, labels = rng.standard_normal((8, 10)) * 5, rng.integers(0, 10, 8)
    loss, dscores = layers.softmax_loss(scores, labels)
    expected, (tdscores,) = torch_forward_backward(
        lambda t: F.cross_entropy(t, torch.from_numpy(labels)), (scores,), np.array(1.0))
    assert_matches_torch(loss, expected, "softmax_loss loss")
    assert_matches_torch(dscores, tdscores, "softmax_loss dx")


# ----------------------------------------------------------------------------
# Contracts shared by every layer
# ----------------------------------------------------------------------------

def _layer_calls():
    """name -> (forward, forward arguments, backward, indices of the arguments
    a backward result corresponds to)."""
    rng = np.random.default_rng(80)
    x4 = rng.standard_normal((2, 3, 7, 6))
    pool = {"pool_height": 3, "pool_width": 2, "stride": 2}
    return {
        "conv": (layers.conv_forward,
                 (x4, rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4), {"stride": 2, "pad": 1}),
                 layers.conv_backward, (0, 1, 2)),
        "max_pool": (layers.max_pool_forward, (x4, pool), layers.max_pool_backward, (0,)),
        "avg_pool": (layers.avg_pool_forward, (x4, pool), layers.avg_pool_backward, (0,)),
        "batchnorm": (layers.batchnorm_forward,
                      (rng.standard_normal((5, 4)), rng.standard_normal(4), rng.standard_normal(4),
                       {"mode": "train"}),
                      layers.batchnorm_backward, (0, 1, 2)),
        "spatial_batchnorm": (layers.spatial_batchnorm_forward,
                              (x4, rng.standard_normal(3), rng.standard_normal(3), {"mode": "train"}),
                              layers.spatial_batchnorm_backward, (0, 1, 2)),
        "dropout": (layers.dropout_forward, (x4, {"p": 0.5, "mode": "train", "seed": 0}),
                    layers.dropout_backward, (0,)),
    }


@pytest.mark.parametrize("name", list(_layer_calls()))
def test_layer_leaves_inputs_unchanged_and_returns_float64(name):
    forward, args, backward, grad_of = _layer_calls()[name]
    originals = copy.deepcopy(args)
    out, cache = forward(*args)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64, f"{name} forward out is not float64"
    dout = np.random.default_rng(81).standard_normal(out.shape)
    dout_original = dout.copy()
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert len(grads) == len(grad_of), f"{name} backward returned {len(grads)} gradients"
    for grad, index in zip(grads, grad_of):
        assert grad.dtype == np.float64, f"{name} backward gradient {index} is {grad.dtype}"
        assert grad.shape == args[index].shape, f"{name} backward gradient {index} has the wrong shape"
    np.testing.assert_array_equal(dout, dout_original, err_msg=f"{name} backward modified dout")
    for index, (arg, original) in enumerate(zip(args, originals)):
        if isinstance(arg, np.ndarray):
            np.testing.assert_array_equal(arg, original, err_msg=f"{name} modified argument {index}")
        else:  # a parameter dict: only batch norm's running statistics may be added or replaced
            for key, value in original.items():
                if key not in ("running_mean", "running_var"):
                    assert arg.get(key) == value, f"{name} changed {key!r} of argument {index}"
