"""Mistakes that real student layers.py files still got only a shape, a count
of wrong values or a bare error for (issue #23), found on 111 public
CS231n-style files (tests/real_code/sources.jsonl), each reproduced here in
our own student-style code (none of it is copied). Same format as
real_patterns.py: one submission per pattern, the reference layers.py plus
the code below; `function` is the function the pattern is about, `verdict`
"fail" (it must lose points there, and only there, in its callers or in
`also`), `message` a phrase the feedback on that function should contain
once the grader names the mistake, `absent` one it must not contain.

`rule` says how a grader can recognise the mistake from the outputs alone
(documentation: autograder/parts/layers/sizes.py implements the size rules,
the batch-norm names are stored variants, dropout's a keep-rate check; no
test reads it)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    name: str
    function: str
    verdict: str
    message: str
    code: str
    absent: str = ""
    also: frozenset = frozenset()
    rule: str = ""


SIZE_FIX = "H' = 1 + (H + 2 * pad - HH) // stride"

PATTERNS = [
    # -- output sizes (convolution and pooling) -----------------------------------------
    Pattern("conv_forward_size_rounded", "conv_forward", "fail", "one row or column too many", """
        def conv_forward(x, w, b, conv_param):
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            stride, pad = conv_param['stride'], conv_param['pad']
            # round() of the float division: 1 + 11/2 = 6.5 -> 6 (ok), 1 + 13/2 = 7.5 -> 8 (too many)
            H_out = round(1 + (H + 2 * pad - HH) / stride)
            W_out = round(1 + (W + 2 * pad - WW) / stride)
            xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode='constant')
            out = np.zeros((N, F, H_out, W_out))
            for i in range(H_out):
                for j in range(W_out):
                    top, left = i * stride, j * stride
                    window = xp[:, :, top:top + HH, left:left + WW]
                    for f in range(F):
                        out[:, f, i, j] = np.sum(window * w[f], axis=(1, 2, 3)) + b[f]
            return out, (x, w, b, conv_param)
    """, also=frozenset({"conv_backward"}), rule=(
        "on exactly the cases where round(1 + (H + 2p - HH) / s) or ceil(...) differs from "
        "1 + (H + 2p - HH) // s (same for W), out has one more row/column than expected "
        "(shape (N, F, H'+1, W') or (N, F, H', W'+1)) and out[..., :H', :W'] equals the expected "
        "out, or the call raises (a broadcast error: the last window is cut short by the "
        "image's edge); every other case is right. Backward: skip (do not charge) the cases "
        "whose forward returned the wrong shape, as for a forward that raised.")),
    Pattern("max_pool_forward_size_rounded", "max_pool_forward", "fail", "one row or column too many", """
        def max_pool_forward(x, pool_param):
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H, W = x.shape
            H_out = round(1 + (H - ph) / s)               # 1 + 29/2 = 15.5 -> 16; floor gives 15
            W_out = round(1 + (W - pw) / s)
            out = np.zeros((N, C, H_out, W_out))
            for i in range(H_out):
                for j in range(W_out):
                    window = x[:, :, i * s:i * s + ph, j * s:j * s + pw]
                    out[:, :, i, j] = window.max(axis=(2, 3))
            return out, (x, pool_param)
    """, also=frozenset({"max_pool_backward"}), rule=(
        "as conv_forward_size_rounded, with (H - pool_height) / stride: a shape one larger on "
        "the cases where round() (half to even) or ceil goes up (here only the 32x32 case, "
        "3x3 windows, stride 2: 16x16 for 15x15), the expected values in out[..., :H', :W'] "
        "(the extra row holds the max of a clipped window); the backward on such a case "
        "must be skipped, not charged (it indexes dout out of range)")),
    Pattern("conv_forward_width_from_kernel_height", "conv_forward", "fail", "the width uses HH", """
        def conv_forward(x, w, b, conv_param):
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            stride, pad = conv_param['stride'], conv_param['pad']
            H_out = 1 + (H + 2 * pad - HH) // stride
            W_out = 1 + (W + 2 * pad - HH) // stride      # the kernel's height used for the width
            xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode='constant')
            out = np.zeros((N, F, H_out, W_out))
            for n in range(N):
                for f in range(F):
                    for i in range(H_out):
                        for j in range(W_out):
                            patch = xp[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                            out[n, f, i, j] = np.sum(patch * w[f]) + b[f]
            return out, (x, w, b, conv_param)
    """, also=frozenset({"conv_backward"}), rule=(
        "the wrong-size cases are exactly the non-square kernels where 1 + (W + 2p - HH) // s "
        "!= W'; out's width is 1 + (W + 2p - HH) // s and out[..., :min] equals the expected "
        "out where both exist (or the call raises on those cases only)")),
    Pattern("max_pool_forward_width_from_pool_height", "max_pool_forward", "fail", "the width uses pool_height", """
        def max_pool_forward(x, pool_param):
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H, W = x.shape
            H_out, W_out = 1 + (H - ph) // s, 1 + (W - ph) // s
            out = np.zeros((N, C, H_out, W_out))
            for i in range(H_out):
                for j in range(W_out):
                    out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
            return out, (x, pool_param)
    """, also=frozenset({"max_pool_backward"}), rule=(
        "on the non-square windows where 1 + (W - pool_height) // s != W', out's width is "
        "1 + (W - pool_height) // s and the common columns equal the expected out")),
    Pattern("max_pool_forward_size_without_stride", "max_pool_forward", "fail", "only when the stride equals the window", """
        def max_pool_forward(x, pool_param):
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H, W = x.shape
            H_out, W_out = H // ph, W // pw              # only right when stride == pool size
            out = np.zeros((N, C, H_out, W_out))
            for i in range(H_out):
                for j in range(W_out):
                    out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
            return out, (x, pool_param)
    """, also=frozenset({"max_pool_backward"}), rule=(
        "out has shape (N, C, H // pool_height, W // pool_width) on the cases where that "
        "differs from (H', W') (stride != pool size), and the common part equals the expected out")),
    Pattern("conv_forward_square_output_assumed", "conv_forward", "fail", "a height is used for a width", """
        def conv_forward(x, w, b, conv_param):
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            stride, pad = conv_param['stride'], conv_param['pad']
            side = 1 + (H + 2 * pad - HH) // stride        # one size for both axes
            xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode='constant')
            out = np.zeros((N, F, side, side))
            for i in range(side):
                for j in range(side):
                    patch = xp[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
            return out, (x, w, b, conv_param)
    """, also=frozenset({"conv_backward"}), rule=(
        "case signature: right on every case whose output is square (H' == W') and wrong "
        "(a wrong shape, wrong values or an IndexError/broadcast error) on every case where "
        "H' != W'. The same rule names the other height-for-width mix-ups: W' from HH or "
        "pool_height (conv_forward_width_from_kernel_height, "
        "max_pool_forward_width_from_pool_height: wrong only where HH != WW), a row-major "
        "index i * H' + j (max_pool_forward_flat_index_with_out_h), reshape(H', H')")),
    Pattern("max_pool_forward_flat_index_with_out_h", "max_pool_forward", "fail", "a height is used for a width", """
        def max_pool_forward(x, pool_param):
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H, W = x.shape
            H_out, W_out = 1 + (H - ph) // s, 1 + (W - pw) // s
            flat = np.zeros((N, C, H_out * W_out))
            for i in range(H_out):
                for j in range(W_out):
                    k = i * H_out + j                          # the row length is W_out
                    if k < H_out * W_out:
                        flat[:, :, k] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
            return flat.reshape(N, C, H_out, W_out), (x, pool_param)
    """, also=frozenset({"max_pool_backward"}), rule=(
        "right on every case with H' == W', wrong values on every case with H' != W' "
        "(see conv_forward_square_output_assumed)")),
    # -- convolution backward -----------------------------------------------------------
    Pattern("conv_backward_crop_fixed_one", "conv_backward", "fail", "crop pad rows", """
        _reference_conv_backward = conv_backward

        def conv_backward(dout, cache):
            x, w, b, conv_param = cache
            stride, pad = conv_param['stride'], conv_param['pad']
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode='constant')
            dxp = np.zeros_like(xp)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    rows = slice(i * stride, i * stride + HH)
                    cols = slice(j * stride, j * stride + WW)
                    dxp[:, :, rows, cols] += np.einsum('nf,fchw->nchw', dout[:, :, i, j], w)
            dx = dxp[:, :, 1:-1, 1:-1]                    # the padding taken to be 1
            _, dw, db = _reference_conv_backward(dout, cache)
            return dx, dw, db
    """, rule=(
        "on every case with pad != 1 (and only there), dx has shape (N, C, H + 2p - 2, W + 2p - 2) "
        "and equals the gradient with respect to the padded input, cropped by one on each side: "
        "pad 0 -> dx_true[:, :, 1:-1, 1:-1]; pad 2 -> dx_true padded by one zero on each side "
        "(dx[:, :, 1:-1, 1:-1] == dx_true); dw and db right")),
    Pattern("conv_backward_crop_minus_zero_raises", "conv_backward", "fail", "-0 is 0", """
        _reference_conv_backward = conv_backward

        def conv_backward(dout, cache):
            x, w, b, conv_param = cache
            stride, pad = conv_param['stride'], conv_param['pad']
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode='constant')
            dx = np.zeros_like(x)
            for n in range(N):
                dxp = np.zeros_like(xp[n])
                for i in range(dout.shape[2]):
                    for j in range(dout.shape[3]):
                        for f in range(F):
                            dxp[:, i * stride:i * stride + HH, j * stride:j * stride + WW] += w[f] * dout[n, f, i, j]
                dx[n] = dxp[:, pad:-pad, pad:-pad]        # empty when pad == 0: raises
            _, dw, db = _reference_conv_backward(dout, cache)
            return dx, dw, db
    """, rule=(
        "raises ValueError 'could not broadcast input array from shape (C, 0, 0) into shape "
        "(C, H, W)' (a 0 in the last two axes of the source shape) on exactly the cases with "
        "pad == 0; right on all others: the empty pad:-pad crop, assigned instead of returned")),
    # -- batch norm ---------------------------------------------------------------------
    Pattern("bn_running_var_eps_folded", "batchnorm_forward", "fail", "eps is folded into", """
        def batchnorm_forward(x, gamma, beta, bn_param):
            mode = bn_param['mode']
            eps, momentum = bn_param.get('eps', 1e-5), bn_param.get('momentum', 0.9)
            D = x.shape[1]
            running_mean = bn_param.get('running_mean', np.zeros(D))
            running_var = bn_param.get('running_var', np.zeros(D))
            cache = None
            if mode == 'train':
                mu = x.mean(axis=0)
                var = x.var(axis=0) + eps                 # eps added once, used twice
                inv_std = 1.0 / np.sqrt(var)
                x_hat = (x - mu) * inv_std
                out = gamma * x_hat + beta
                running_mean = momentum * running_mean + (1 - momentum) * mu
                running_var = momentum * running_var + (1 - momentum) * var
                cache = (x_hat, gamma, inv_std)
            else:
                out = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
            bn_param['running_mean'], bn_param['running_var'] = running_mean, running_var
            return out, cache
    """, also=frozenset({"spatial_batchnorm_forward"}), rule=(
        "out, cache and running_mean right; running_var - expected == (1 - momentum) * eps "
        "(to 1e-12 absolute, every feature) after one train call; after k calls from the "
        "same start the excess is (1 - momentum**k) * eps")),
    Pattern("bn_test_without_eps", "batchnorm_forward", "fail", "test mode leaves eps out", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            if bn_param['mode'] == 'train':
                return _reference_batchnorm_forward(x, gamma, beta, bn_param)
            mu, var = bn_param['running_mean'], bn_param['running_var']
            return gamma * (x - mu) / np.sqrt(var) + beta, None
    """, also=frozenset({"spatial_batchnorm_forward"}), rule=(
        "train mode right; in test mode out == gamma * (x - running_mean) / "
        "sqrt(running_var) + beta (the 'eps_missing' variant computed from the running "
        "statistics; the error is tiny with eps 1e-5, so compare with the variant, not a "
        "tolerance)")),
    Pattern("bn_test_without_gamma_beta", "batchnorm_forward", "fail", "gamma and beta are not applied in test mode", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            if bn_param['mode'] == 'train':
                return _reference_batchnorm_forward(x, gamma, beta, bn_param)
            eps = bn_param.get('eps', 1e-5)
            return (x - bn_param['running_mean']) / np.sqrt(bn_param['running_var'] + eps), None
    """, also=frozenset({"spatial_batchnorm_forward"}), rule=(
        "train mode right; in test mode out == (x - running_mean) / sqrt(running_var + eps)")),
    Pattern("spatial_bn_backward_count_n", "spatial_batchnorm_backward", "fail", "N * H * W", """
        def spatial_batchnorm_backward(dout, cache):
            x_hat, gamma, inv_std = cache
            N, C, H, W = dout.shape
            g = dout.transpose(0, 2, 3, 1).reshape(-1, C)
            dbeta = g.sum(axis=0)
            dgamma = (g * x_hat).sum(axis=0)
            dx_hat = g * gamma
            # the means over a channel divided by N, the batch size, not N*H*W
            dx = inv_std * (dx_hat - dx_hat.sum(axis=0) / N - x_hat * (dx_hat * x_hat).sum(axis=0) / N)
            return dx.reshape(N, H, W, C).transpose(0, 3, 1, 2), dgamma, dbeta
    """, rule=(
        "dgamma, dbeta right; dx == gamma * inv_std * (dout - sum(dout) / N - x_hat * "
        "sum(dout * x_hat) / N) per channel (the batch norm backward with the count N "
        "instead of M = N*H*W); right only when H = W = 1")),
    # -- dropout ------------------------------------------------------------------------
    Pattern("dropout_forward_normal_mask", "dropout_forward", "fail", "np.random.randn", """
        def dropout_forward(x, dropout_param):
            p, mode = dropout_param['p'], dropout_param['mode']
            if 'seed' in dropout_param:
                np.random.seed(dropout_param['seed'])
            mask = None
            if mode == 'train':
                mask = (np.random.randn(*x.shape) < p) / p    # normal draws, not uniform
                out = x * mask
            else:
                out = x
            return out, (mode, mask)
    """, rule=(
        "the share kept is Phi(p) (the standard normal CDF: 61.8% for p = 0.3, 72.6% for "
        "0.6, 81.6% for 0.9), not p; exactly, with the case's seed: the kept positions are "
        "those where np.random.RandomState(seed).randn(*x.shape) < p (after np.random.seed(seed), "
        "the same stream), kept values x / p")),
]
