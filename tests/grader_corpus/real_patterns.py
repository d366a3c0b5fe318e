"""Mistakes that real student implementations of this API make, as found in
public CS231n-style layers.py files (2016-2023), each reproduced here in our
own student-style code (none of it is copied). One submission per pattern:
the reference layers.py plus the code below. `function` is the function the
pattern is about; `verdict` is "fail" (it must lose points there, and only
there or in its callers) or "pass" (it must keep all its points there);
`message` is a phrase the feedback on that function must contain, `absent`
one it must not contain."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    name: str
    function: str
    verdict: str
    message: str
    code: str
    absent: str = ""


PATTERNS = [
    # -- convolution --------------------------------------------------------------------
    Pattern("conv_backward_crop_minus_zero", "conv_backward", "fail", "-0 is 0", """
        def conv_backward(dout, cache):
            x, w, b, conv_param = cache
            stride, pad = conv_param['stride'], conv_param['pad']
            F, C, HH, WW = w.shape
            N, _, H_out, W_out = dout.shape
            padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), 'constant')
            grad_padded = np.zeros_like(padded)
            dw = np.zeros_like(w)
            for i in range(H_out):
                for j in range(W_out):
                    rows = slice(i * stride, i * stride + HH)
                    cols = slice(j * stride, j * stride + WW)
                    for f in range(F):
                        dw[f] += np.sum(padded[:, :, rows, cols] * dout[:, f, i, j][:, None, None, None], axis=0)
                    grad_padded[:, :, rows, cols] += np.tensordot(dout[:, :, i, j], w, axes=(1, 0))
            db = dout.sum(axis=(0, 2, 3))
            dx = grad_padded[:, :, pad:-pad, pad:-pad]
            return dx, dw, db
    """),
    Pattern("conv_forward_true_division_sizes", "conv_forward", "fail", "use // for sizes", """
        def conv_forward(x, w, b, conv_param):
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            s, p = conv_param['stride'], conv_param['pad']
            out_h = 1 + (H + 2 * p - HH) / s
            out_w = 1 + (W + 2 * p - WW) / s
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode='constant')
            out = np.zeros((N, F, out_h, out_w))
            for r in range(out_h):
                for c in range(out_w):
                    patch = xp[:, :, r * s:r * s + HH, c * s:c * s + WW]
                    out[:, :, r, c] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
            return out, (x, w, b, conv_param)
    """),
    Pattern("conv_forward_np_int", "conv_forward", "fail", "np.int was removed", """
        def conv_forward(x, w, b, conv_param):
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            s, p = conv_param['stride'], conv_param['pad']
            out_h = np.int(1 + (H + 2 * p - HH) / s)
            out_w = np.int(1 + (W + 2 * p - WW) / s)
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode='constant')
            out = np.zeros((N, F, out_h, out_w))
            for r in range(out_h):
                for c in range(out_w):
                    patch = xp[:, :, r * s:r * s + HH, c * s:c * s + WW]
                    out[:, :, r, c] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
            return out, (x, w, b, conv_param)
    """),
    Pattern("conv_forward_np_lib_pad", "conv_forward", "fail", "use np.pad", """
        def conv_forward(x, w, b, conv_param):
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            s, p = conv_param['stride'], conv_param['pad']
            out_h, out_w = 1 + (H + 2 * p - HH) // s, 1 + (W + 2 * p - WW) // s
            xp = np.lib.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), 'constant')
            out = np.zeros((N, F, out_h, out_w))
            for r in range(out_h):
                for c in range(out_w):
                    patch = xp[:, :, r * s:r * s + HH, c * s:c * s + WW]
                    out[:, :, r, c] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
            return out, (x, w, b, conv_param)
    """),
    Pattern("conv_forward_scipy", "conv_forward", "fail", "'scipy' is not available", """
        def conv_forward(x, w, b, conv_param):
            from scipy.signal import correlate
            raise AssertionError("not reached without scipy")
    """),
    Pattern("conv_backward_np_float", "conv_backward", "fail", "np.float was removed", """
        _reference_conv_backward = conv_backward

        def conv_backward(dout, cache):
            dx = np.zeros(cache[0].shape, dtype=np.float)
            return _reference_conv_backward(dout, cache)
    """),
    # -- pooling ------------------------------------------------------------------------
    Pattern("max_pool_forward_argmax_rows_for_both", "max_pool_forward", "fail",
            "np.unravel_index(k, (pool_height, pool_width))", """
        def max_pool_forward(x, pool_param):
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H, W = x.shape
            out = np.zeros((N, C, 1 + (H - ph) // s, 1 + (W - pw) // s))
            for n in range(N):
                for c in range(C):
                    for i in range(out.shape[2]):
                        for j in range(out.shape[3]):
                            window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                            a, k = np.unravel_index(np.argmax(window), (ph, ph))
                            out[n, c, i, j] = x[n, c, i * s + a, j * s + k]
            return out, (x, pool_param)
    """),
    Pattern("max_pool_forward_xrange", "max_pool_forward", "fail", "use range", """
        def max_pool_forward(x, pool_param):
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H, W = x.shape
            out = np.zeros((N, C, 1 + (H - ph) // s, 1 + (W - pw) // s))
            for i in xrange(out.shape[2]):
                for j in xrange(out.shape[3]):
                    out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
            return out, (x, pool_param)
    """),
    Pattern("max_pool_backward_assigned", "max_pool_backward", "fail", "keeps only the last window", """
        def max_pool_backward(dout, cache):
            x, pool_param = cache
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H_out, W_out = dout.shape
            dx = np.zeros_like(x)
            for n in range(N):
                for c in range(C):
                    for i in range(H_out):
                        for j in range(W_out):
                            window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                            a, k = np.unravel_index(window.argmax(), window.shape)
                            dx[n, c, i * s + a, j * s + k] = dout[n, c, i, j]
            return dx
    """),
    Pattern("max_pool_backward_window_relative", "max_pool_backward", "fail",
            "without adding the window's start", """
        def max_pool_backward(dout, cache):
            x, pool_param = cache
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H_out, W_out = dout.shape
            dx = np.zeros_like(x)
            for n in range(N):
                for c in range(C):
                    for i in range(H_out):
                        for j in range(W_out):
                            window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                            a, k = np.unravel_index(window.argmax(), window.shape)
                            dx[n, c, a, k] += dout[n, c, i, j]
            return dx
    """),
    # -- batch norm ---------------------------------------------------------------------
    Pattern("bn_test_eps_outside_sqrt", "batchnorm_forward", "fail", "np.sqrt(running_var + eps)", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            if bn_param['mode'] == 'train':
                return _reference_batchnorm_forward(x, gamma, beta, bn_param)
            eps = bn_param.get('eps', 1e-5)
            mu, var = bn_param['running_mean'], bn_param['running_var']
            return gamma * (x - mu) / (np.sqrt(var) + eps) + beta, None
    """),
    Pattern("bn_running_mean_keepdims", "batchnorm_forward", "fail", "extra axes of length 1", """
        _reference_batchnorm_forward = batchnorm_forward

        def batchnorm_forward(x, gamma, beta, bn_param):
            out, cache = _reference_batchnorm_forward(x, gamma, beta, bn_param)
            if bn_param['mode'] == 'train':
                bn_param['running_mean'] = bn_param['running_mean'].reshape(1, -1)
            return out, cache
    """, absent="summed over the batch"),
    Pattern("bn_backward_dgamma_keepdims", "batchnorm_backward", "fail", "extra axes of length 1", """
        _reference_batchnorm_backward = batchnorm_backward

        def batchnorm_backward(dout, cache):
            dx, dgamma, dbeta = _reference_batchnorm_backward(dout, cache)
            x_hat = cache[0]
            return dx, np.sum(dout * x_hat, axis=0, keepdims=True), dbeta
    """, absent="summed over the batch"),
    Pattern("spatial_bn_without_eps", "spatial_batchnorm_forward", "fail", "eps is left out", """
        def spatial_batchnorm_forward(x, gamma, beta, bn_param):
            N, C, H, W = x.shape
            momentum = bn_param.get('momentum', 0.9)
            flat = x.transpose(0, 2, 3, 1).reshape(-1, C)
            if bn_param['mode'] == 'train':
                mu, var = flat.mean(axis=0), flat.var(axis=0)
                bn_param['running_mean'] = momentum * bn_param.get('running_mean', np.zeros(C)) + (1 - momentum) * mu
                bn_param['running_var'] = momentum * bn_param.get('running_var', np.zeros(C)) + (1 - momentum) * var
                normed = (flat - mu) / np.sqrt(var)
            else:
                normed = (flat - bn_param['running_mean']) / np.sqrt(bn_param['running_var'] + bn_param.get('eps', 1e-5))
            out = (gamma * normed + beta).reshape(N, H, W, C).transpose(0, 3, 1, 2)
            cache = None
            if bn_param['mode'] == 'train':
                inv_std = 1 / np.sqrt(var + bn_param.get('eps', 1e-5))
                cache = ((flat - mu) * inv_std, gamma, inv_std)
            return out, cache
    """),
    Pattern("bn_constant_forward_backward_not_blamed", "batchnorm_backward", "fail",
            "hardly depends on this input", """
        _reference_batchnorm_backward = batchnorm_backward

        def batchnorm_forward(x, gamma, beta, bn_param):
            out = np.tile(beta, (x.shape[0], 1))
            return out, (x, gamma)

        def batchnorm_backward(dout, cache):
            x, gamma = cache
            return dout * gamma / np.sqrt(x.var(axis=0) + 1e-5), np.zeros_like(gamma), dout.sum(axis=0)
    """, absent="the mistake is in the backward pass"),
    Pattern("bn_backward_dgamma_without_eps", "batchnorm_backward", "fail",
            "dgamma uses x_hat without eps", """
        def batchnorm_backward(dout, cache):
            x, mu, var, gamma, eps = cache
            m = x.shape[0]
            centred = x - mu
            dbeta = dout.sum(axis=0)
            dgamma = np.sum(dout * centred / np.sqrt(var), axis=0)
            inv = 1.0 / np.sqrt(var + eps)
            dxhat = dout * gamma
            dx = inv / m * (m * dxhat - dxhat.sum(axis=0) - centred * inv ** 2 * np.sum(dxhat * centred, axis=0))
            return dx, dgamma, dbeta

        def batchnorm_forward(x, gamma, beta, bn_param):
            mode = bn_param['mode']
            eps = bn_param.get('eps', 1e-5)
            momentum = bn_param.get('momentum', 0.9)
            D = x.shape[1]
            rm = bn_param.get('running_mean', np.zeros(D))
            rv = bn_param.get('running_var', np.zeros(D))
            cache = None
            if mode == 'train':
                mu, var = x.mean(axis=0), x.var(axis=0)
                out = gamma * (x - mu) / np.sqrt(var + eps) + beta
                bn_param['running_mean'] = momentum * rm + (1 - momentum) * mu
                bn_param['running_var'] = momentum * rv + (1 - momentum) * var
                cache = (x, mu, var, gamma, eps)
            else:
                out = gamma * (x - rm) / np.sqrt(rv + eps) + beta
            return out, cache
    """),
    Pattern("conv_backward_dx_left_none", "conv_backward", "fail", "dx is None: it is never computed", """
        def conv_backward(dout, cache):
            x, w, b, conv_param = cache
            dx = None
            s, p = conv_param['stride'], conv_param['pad']
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), 'constant')
            F, C, HH, WW = w.shape
            dw = np.zeros_like(w)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    patch = xp[:, :, i * s:i * s + HH, j * s:j * s + WW]
                    dw += np.tensordot(dout[:, :, i, j], patch, axes=(0, 0))
            db = dout.sum(axis=(0, 2, 3))
            return dx, dw, db
    """),
    Pattern("max_pool_backward_int_of_where", "max_pool_backward", "fail", "int() or float() of an array", """
        def max_pool_backward(dout, cache):
            x, pool_param = cache
            ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            dx = np.zeros_like(x)
            N, C, Ho, Wo = dout.shape
            for n in range(N):
                for c in range(C):
                    for i in range(Ho):
                        for j in range(Wo):
                            win = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                            r, q = np.where(win == win.max())
                            dx[n, c, i * s + int(r), j * s + int(q)] += dout[n, c, i, j]
            return dx
    """),
    # -- dropout ------------------------------------------------------------------------
    Pattern("dropout_forward_2d_mask", "dropout_forward", "fail", "np.random.rand(*x.shape)", """
        def dropout_forward(x, dropout_param):
            p, mode = dropout_param['p'], dropout_param['mode']
            if 'seed' in dropout_param:
                np.random.seed(dropout_param['seed'])
            mask = None
            if mode == 'train':
                mask = (np.random.rand(x.shape[0], x.shape[1]) < p) / p
                out = x * mask
            else:
                out = x.copy()
            return out, (mode, mask)
    """),
    Pattern("dropout_backward_follows_a_forward_that_keeps_all", "dropout_backward", "pass",
            "exact derivative of your dropout_forward", """
        def dropout_forward(x, dropout_param):
            p, mode = dropout_param['p'], dropout_param['mode']
            mask = None
            if mode == 'train':
                mask = np.ones_like(x) / p
                out = x * mask
            else:
                out = x.copy()
            return out, (dropout_param, mask)

        def dropout_backward(dout, cache):
            dropout_param, mask = cache
            return dout * mask if dropout_param['mode'] == 'train' else dout.copy()
    """),
    # A forward without eps, and the backward of exactly that forward, derived
    # step by step: on two samples per feature the forward is constant (every
    # value becomes +-1), so its derivative is ~0; the backward returns that
    # and is credited: the forward alone is charged for eps.
    Pattern("bn_no_eps_backward_of_its_own_forward", "batchnorm_backward", "pass", "credited here", """
        def batchnorm_forward(x, gamma, beta, bn_param):
            mode = bn_param['mode']
            momentum = bn_param.get('momentum', 0.9)
            running_mean = bn_param.get('running_mean', np.zeros(x.shape[1]))
            running_var = bn_param.get('running_var', np.zeros(x.shape[1]))
            cache = None
            if mode == 'train':
                mu = x.mean(axis=0)
                centered = x - mu
                var = (centered ** 2).mean(axis=0)
                std = np.sqrt(var)
                xhat = centered / std
                out = gamma * xhat + beta
                running_mean = momentum * running_mean + (1 - momentum) * mu
                running_var = momentum * running_var + (1 - momentum) * var
                cache = (centered, std, xhat, gamma)
            else:
                out = gamma * (x - running_mean) / np.sqrt(running_var) + beta
            bn_param['running_mean'] = running_mean
            bn_param['running_var'] = running_var
            return out, cache

        def batchnorm_backward(dout, cache):
            centered, std, xhat, gamma = cache
            n = dout.shape[0]
            dbeta = dout.sum(axis=0)
            dgamma = (dout * xhat).sum(axis=0)
            dxhat = dout * gamma
            dstd = -(dxhat * centered).sum(axis=0) / std ** 2
            dvar = dstd / (2 * std)
            dcentered = dxhat / std + dvar * 2 * centered / n
            dx = dcentered - dcentered.mean(axis=0)
            return dx, dgamma, dbeta
    """),
]
