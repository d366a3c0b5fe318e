"""Plausible student bugs, one per submission: the reference layers.py plus
the code below, which redefines one function. `function` is the student
function with the bug, `message` a phrase the grader's feedback on that
function must contain (the recognised mistake)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Bug:
    name: str
    function: str
    message: str
    code: str


BUGS = [
    # -- conv_forward ---------------------------------------------------------------
    Bug("conv_flipped_kernel", "conv_forward", "the kernel is flipped", """
        def conv_forward(x, w, b, conv_param):
            stride, pad = conv_param['stride'], conv_param['pad']
            F, C, HH, WW = w.shape
            x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
            windows = sliding_window_view(x_pad, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]
            out = np.einsum('ncijak,fcak->nfij', windows, w[:, :, ::-1, ::-1]) + b[None, :, None, None]
            return out, (x, w, b, conv_param)
    """),
    Bug("conv_stride_ignored", "conv_forward", "instead of i*stride", """
        def conv_forward(x, w, b, conv_param):
            stride, pad = conv_param['stride'], conv_param['pad']
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            H_out, W_out = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
            x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
            out = np.zeros((N, F, H_out, W_out))
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[:, :, i:i + HH, j:j + WW]          # should be i*stride
                    out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
            return out, (x, w, b, conv_param)
    """),
    Bug("conv_pad_one_side", "conv_forward", "only above and left", """
        def conv_forward(x, w, b, conv_param):
            stride, pad = conv_param['stride'], conv_param['pad']
            F, C, HH, WW = w.shape
            x_pad = np.pad(x, ((0, 0), (0, 0), (pad, 0), (pad, 0)))
            windows = sliding_window_view(x_pad, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]
            out = np.einsum('ncijak,fcak->nfij', windows, w) + b[None, :, None, None]
            return out, (x, w, b, conv_param)
    """),
    Bug("conv_bias_missing", "conv_forward", "the bias is not added", """
        def conv_forward(x, w, b, conv_param):
            stride, pad = conv_param['stride'], conv_param['pad']
            F, C, HH, WW = w.shape
            x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
            windows = sliding_window_view(x_pad, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]
            out = np.einsum('ncijak,fcak->nfij', windows, w)
            return out, (x, w, b, conv_param)
    """),
    Bug("conv_bias_in_window_sum", "conv_forward", "once per kernel element", """
        def conv_forward(x, w, b, conv_param):
            S, P = conv_param['stride'], conv_param['pad']
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
            out = np.zeros((N, F, 1 + (H + 2 * P - HH) // S, 1 + (W + 2 * P - WW) // S))
            for n in range(N):
                for f in range(F):
                    for i in range(out.shape[2]):
                        for j in range(out.shape[3]):
                            window = x_pad[n, :, i * S:i * S + HH, j * S:j * S + WW]
                            out[n, f, i, j] = np.sum(window * w[f] + b[f])
            return out, (x, w, b, conv_param)
    """),
    Bug("conv_float32", "conv_forward", "float64", """
        _reference_conv_forward = conv_forward

        def conv_forward(x, w, b, conv_param):
            out, cache = _reference_conv_forward(x, w, b, conv_param)
            return out.astype(np.float32), cache
    """),
    # -- conv_backward --------------------------------------------------------------
    Bug("conv_db_batch_mean", "conv_backward", "db is averaged over the batch", """
        _reference_conv_backward = conv_backward

        def conv_backward(dout, cache):
            dx, dw, db = _reference_conv_backward(dout, cache)
            return dx, dw, dout.sum(axis=(2, 3)).mean(axis=0)
    """),
    Bug("conv_dw_flipped", "conv_backward", "dw is flipped", """
        _reference_conv_backward = conv_backward

        def conv_backward(dout, cache):
            dx, dw, db = _reference_conv_backward(dout, cache)
            return dx, dw[:, :, ::-1, ::-1], db
    """),
    Bug("conv_dx_kernel_not_flipped", "conv_backward", "unflipped", """
        _reference_conv_backward = conv_backward

        def conv_backward(dout, cache):
            x, w, b, conv_param = cache
            _, dw, db = _reference_conv_backward(dout, cache)
            dx, _, _ = _reference_conv_backward(dout, (x, w[:, :, ::-1, ::-1], b, conv_param))
            return dx, dw, db
    """),
    Bug("conv_dx_padding_kept", "conv_backward", "crop the pad rows", """
        _reference_conv_backward = conv_backward

        def conv_backward(dout, cache):
            x, w, b, conv_param = cache
            pad = conv_param['pad']
            x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
            return _reference_conv_backward(dout, (x_pad, w, b, {'stride': conv_param['stride'], 'pad': 0}))
    """),
    # -- pooling ----------------------------------------------------------------------
    Bug("max_pool_mean", "max_pool_forward", "mean is taken instead of its maximum", """
        def max_pool_forward(x, pool_param):
            return _pool_windows(x, pool_param).mean(axis=(4, 5)), (x, pool_param)
    """),
    Bug("max_pool_window_swapped", "max_pool_forward", "pool_height and pool_width are swapped", """
        def max_pool_forward(x, pool_param):
            swapped = {'pool_height': pool_param['pool_width'], 'pool_width': pool_param['pool_height'],
                       'stride': pool_param['stride']}
            return _pool_windows(x, swapped).max(axis=(4, 5)), (x, pool_param)
    """),
    Bug("max_pool_grad_all_ties", "max_pool_backward", "tie for the maximum, each gets", """
        def max_pool_backward(dout, cache):
            x, pool_param = cache
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            dx = np.zeros_like(x)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[:, :, i * s:i * s + ph, j * s:j * s + pw]
                    is_max = window == window.max(axis=(2, 3), keepdims=True)
                    dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += is_max * dout[:, :, i:i + 1, j:j + 1]
            return dx
    """),
    Bug("max_pool_grad_whole_window", "max_pool_backward", "every position of the window", """
        def max_pool_backward(dout, cache):
            x, pool_param = cache
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            dx = np.zeros_like(x)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += dout[:, :, i:i + 1, j:j + 1]
            return dx
    """),
    Bug("max_pool_grad_overwritten", "max_pool_backward", "overwrite each other", """
        def max_pool_backward(dout, cache):
            x, pool_param = cache
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C = x.shape[:2]
            dx = np.zeros_like(x)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[:, :, i * s:i * s + ph, j * s:j * s + pw].reshape(N, C, -1)
                    one_hot = np.arange(ph * pw) == window.argmax(axis=2)[:, :, None]
                    dx[:, :, i * s:i * s + ph, j * s:j * s + pw] = (
                        one_hot.reshape(N, C, ph, pw) * dout[:, :, i:i + 1, j:j + 1])
            return dx
    """),
    Bug("avg_pool_not_divided", "avg_pool_forward", "not divided by pool_height * pool_width", """
        def avg_pool_forward(x, pool_param):
            return _pool_windows(x, pool_param).sum(axis=(4, 5)), (x.shape, pool_param)
    """),
    Bug("avg_pool_grad_not_divided", "avg_pool_backward", "gets the whole window gradient", """
        _reference_avg_pool_backward = avg_pool_backward

        def avg_pool_backward(dout, cache):
            x_shape, pool_param = cache
            return _reference_avg_pool_backward(dout, cache) * pool_param['pool_height'] * pool_param['pool_width']
    """),
    # -- batchnorm_forward ------------------------------------------------------------
    Bug("bn_momentum_swapped", "batchnorm_forward", "momentum weighs the batch statistic", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            momentum = bn_param.get('momentum', 0.9)
            swapped = dict(bn_param, momentum=1 - momentum)
            out, cache = _reference_batchnorm_forward(x, gamma, beta, swapped)
            bn_param['running_mean'], bn_param['running_var'] = swapped['running_mean'], swapped['running_var']
            return out, cache
    """),
    Bug("bn_running_not_updated", "batchnorm_forward", "running statistics are not updated", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            return _reference_batchnorm_forward(x, gamma, beta, dict(bn_param))   # updates a copy
    """),
    Bug("bn_running_var_unbiased", "batchnorm_forward", "unbiased (N - 1) batch variance", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            old_var = bn_param.get('running_var', np.zeros(x.shape[1]))
            out, cache = _reference_batchnorm_forward(x, gamma, beta, bn_param)
            if bn_param['mode'] == 'train':
                momentum = bn_param.get('momentum', 0.9)
                bn_param['running_var'] = momentum * old_var + (1 - momentum) * x.var(axis=0, ddof=1)
            return out, cache
    """),
    Bug("bn_test_uses_batch_stats", "batchnorm_forward", "test mode normalizes with the batch's own", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            if bn_param['mode'] == 'test':
                return _reference_batchnorm_forward(x, gamma, beta, dict(bn_param, mode='train'))
            return _reference_batchnorm_forward(x, gamma, beta, bn_param)
    """),
    Bug("bn_test_updates_running", "batchnorm_forward", "test mode changed the running statistics", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            out, cache = _reference_batchnorm_forward(x, gamma, beta, bn_param)
            if bn_param['mode'] == 'test':
                momentum = bn_param.get('momentum', 0.9)
                bn_param['running_mean'] = momentum * bn_param['running_mean'] + (1 - momentum) * x.mean(axis=0)
            return out, cache
    """),
    Bug("bn_gamma_beta_ignored", "batchnorm_forward", "gamma and beta are not applied", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            _, cache = _reference_batchnorm_forward(x, gamma, beta, bn_param)
            x_hat = cache[0]
            return x_hat.copy(), cache
    """),
    Bug("bn_modifies_input", "batchnorm_forward", "modified its inputs in place", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            out, cache = _reference_batchnorm_forward(x, gamma, beta, bn_param)
            x -= x.mean(axis=0)      # "centering" the caller's array in place
            return out, cache
    """),
    # -- batchnorm_backward -----------------------------------------------------------
    Bug("bn_dx_statistics_constant", "batchnorm_backward", "treats the batch mean and variance as constants", """
        def batchnorm_backward(dout, cache):
            x_hat, gamma, inv_std = cache
            return dout * gamma * inv_std, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
    """),
    Bug("bn_dgamma_not_summed", "batchnorm_backward", "not summed over the batch", """
        _reference_batchnorm_backward = batchnorm_backward

        def batchnorm_backward(dout, cache):
            dx, dgamma, dbeta = _reference_batchnorm_backward(dout, cache)
            return dx, dout * cache[0], dbeta
    """),
    # -- spatial batch norm -----------------------------------------------------------
    Bug("spatial_not_transposed_back", "spatial_batchnorm_forward", "reshaped straight to (N, C, H, W)", """
        def spatial_batchnorm_forward(x, gamma, beta, bn_param):
            N, C, H, W = x.shape
            flat = x.transpose(0, 2, 3, 1).reshape(-1, C)
            out_flat, cache = batchnorm_forward(flat, gamma, beta, bn_param)
            return out_flat.reshape(N, C, H, W), cache
    """),
    Bug("spatial_dout_not_transposed", "spatial_batchnorm_backward", "dout is reshaped to (N*H*W, C)", """
        def spatial_batchnorm_backward(dout, cache):
            N, C, H, W = dout.shape
            dx_flat, dgamma, dbeta = batchnorm_backward(dout.reshape(-1, C), cache)
            return dx_flat.reshape(N, C, H, W), dgamma, dbeta
    """),
    # -- dropout -------------------------------------------------------------------------
    Bug("dropout_p_is_drop_probability", "dropout_forward", "probability of KEEPING", """
        def dropout_forward(x, dropout_param):
            p, mode = dropout_param['p'], dropout_param['mode']
            if mode == 'test':
                return x.copy(), (mode, None)
            rng = np.random.default_rng(dropout_param.get('seed'))
            mask = (rng.random(x.shape) >= p) / p
            return x * mask, (mode, mask)
    """),
    Bug("dropout_not_scaled", "dropout_forward", "kept units are not scaled", """
        def dropout_forward(x, dropout_param):
            p, mode = dropout_param['p'], dropout_param['mode']
            if mode == 'test':
                return x.copy(), (mode, None)
            rng = np.random.default_rng(dropout_param.get('seed'))
            mask = rng.random(x.shape) < p
            return x * mask, (mode, mask)
    """),
    Bug("dropout_seed_ignored", "dropout_forward", "the same seed gave different outputs", """
        def dropout_forward(x, dropout_param):
            p, mode = dropout_param['p'], dropout_param['mode']
            if mode == 'test':
                return x.copy(), (mode, None)
            mask = (np.random.rand(*x.shape) < p) / p
            return x * mask, (mode, mask)
    """),
    Bug("dropout_test_scaled", "dropout_forward", "test mode must return x unchanged", """
        _reference_dropout_forward = dropout_forward

        def dropout_forward(x, dropout_param):
            if dropout_param['mode'] == 'test':
                return x * dropout_param['p'], ('test', None)
            return _reference_dropout_forward(x, dropout_param)
    """),
    Bug("dropout_backward_ignores_mask", "dropout_backward", "ignores the mask", """
        def dropout_backward(dout, cache):
            return dout.copy()
    """),
]
