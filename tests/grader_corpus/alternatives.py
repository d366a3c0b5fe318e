"""Correct implementations that differ from the reference (loops, im2col,
as_strided, einsum with np.add.at, other random generators, dict and object
caches, staged batch-norm backward, ties routed to the last maximum). Each
is appended to the reference layers.py and must earn full marks."""

ALTERNATIVES = {
    "loops": """
        def conv_forward(x, w, b, conv_param):
            S, P = conv_param['stride'], conv_param['pad']
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            H_out, W_out = 1 + (H + 2 * P - HH) // S, 1 + (W + 2 * P - WW) // S
            x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)), mode='constant')
            out = np.zeros((N, F, H_out, W_out))
            for n in range(N):
                for f in range(F):
                    for i in range(H_out):
                        for j in range(W_out):
                            window = x_pad[n, :, i * S:i * S + HH, j * S:j * S + WW]
                            out[n, f, i, j] = np.sum(window * w[f]) + b[f]
            return out, (x, w, b, conv_param)

        def conv_backward(dout, cache):
            x, w, b, conv_param = cache
            S, P = conv_param['stride'], conv_param['pad']
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)), mode='constant')
            dx_pad, dw, db = np.zeros_like(x_pad), np.zeros_like(w), np.zeros_like(b)
            for n in range(N):
                for f in range(F):
                    for i in range(dout.shape[2]):
                        for j in range(dout.shape[3]):
                            g = dout[n, f, i, j]
                            dw[f] += x_pad[n, :, i * S:i * S + HH, j * S:j * S + WW] * g
                            dx_pad[n, :, i * S:i * S + HH, j * S:j * S + WW] += w[f] * g
                            db[f] += g
            return dx_pad[:, :, P:P + H, P:P + W], dw, db

        def max_pool_forward(x, pool_param):
            ph, pw, S = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H, W = x.shape
            out = np.zeros((N, C, 1 + (H - ph) // S, 1 + (W - pw) // S))
            for i in range(out.shape[2]):
                for j in range(out.shape[3]):
                    out[:, :, i, j] = x[:, :, i * S:i * S + ph, j * S:j * S + pw].max(axis=(2, 3))
            return out, (x, pool_param)

        def max_pool_backward(dout, cache):
            x, pool_param = cache
            ph, pw, S = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            dx = np.zeros_like(x)
            for n in range(x.shape[0]):
                for c in range(x.shape[1]):
                    for i in range(dout.shape[2]):
                        for j in range(dout.shape[3]):
                            window = x[n, c, i * S:i * S + ph, j * S:j * S + pw]
                            a, k = np.unravel_index(np.argmax(window), window.shape)
                            dx[n, c, i * S + a, j * S + k] += dout[n, c, i, j]
            return dx

        def avg_pool_forward(x, pool_param):
            ph, pw, S = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H, W = x.shape
            out = np.zeros((N, C, 1 + (H - ph) // S, 1 + (W - pw) // S))
            for i in range(out.shape[2]):
                for j in range(out.shape[3]):
                    out[:, :, i, j] = x[:, :, i * S:i * S + ph, j * S:j * S + pw].mean(axis=(2, 3))
            return out, (x, pool_param)

        def avg_pool_backward(dout, cache):
            x, pool_param = cache
            ph, pw, S = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            dx = np.zeros_like(x)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    dx[:, :, i * S:i * S + ph, j * S:j * S + pw] += dout[:, :, i:i + 1, j:j + 1] / (ph * pw)
            return dx
    """,

    "im2col_dict_cache": """
        def _im2col(x_pad, HH, WW, S, H_out, W_out):
            N, C = x_pad.shape[:2]
            cols = np.empty((N, C, HH, WW, H_out, W_out))
            for a in range(HH):
                for k in range(WW):
                    cols[:, :, a, k] = x_pad[:, :, a:a + S * H_out:S, k:k + S * W_out:S]
            return cols.reshape(N, C * HH * WW, H_out * W_out)

        def conv_forward(x, w, b, conv_param):
            S, P = conv_param['stride'], conv_param['pad']
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            H_out, W_out = 1 + (H + 2 * P - HH) // S, 1 + (W + 2 * P - WW) // S
            cols = _im2col(np.pad(x, ((0, 0), (0, 0), (P, P), (P, P))), HH, WW, S, H_out, W_out)
            out = (w.reshape(F, -1) @ cols).reshape(N, F, H_out, W_out) + b.reshape(F, 1, 1)
            return out, {'x_shape': x.shape, 'w': w, 'cols': cols, 'stride': S, 'pad': P}

        def conv_backward(dout, cache):
            N, C, H, W = cache['x_shape']
            w, cols, S, P = cache['w'], cache['cols'], cache['stride'], cache['pad']
            F, _, HH, WW = w.shape
            H_out, W_out = dout.shape[2:]
            dout_flat = dout.reshape(N, F, -1)
            db = dout_flat.sum(axis=(0, 2))
            dw = np.einsum('nfl,nkl->fk', dout_flat, cols).reshape(w.shape)
            dcols = np.einsum('fk,nfl->nkl', w.reshape(F, -1), dout_flat).reshape(N, C, HH, WW, H_out, W_out)
            dx_pad = np.zeros((N, C, H + 2 * P, W + 2 * P))
            for a in range(HH):
                for k in range(WW):
                    dx_pad[:, :, a:a + S * H_out:S, k:k + S * W_out:S] += dcols[:, :, a, k]
            return dx_pad[:, :, P:P + H, P:P + W], dw, db
    """,

    "as_strided": """
        from numpy.lib.stride_tricks import as_strided

        def _strided_windows(x, HH, WW, S):
            x = np.ascontiguousarray(x)
            N, C, H, W = x.shape
            sN, sC, sH, sW = x.strides
            shape = (N, C, (H - HH) // S + 1, (W - WW) // S + 1, HH, WW)
            return as_strided(x, shape, (sN, sC, sH * S, sW * S, sH, sW), writeable=False)

        def conv_forward(x, w, b, conv_param):
            S, P = conv_param['stride'], conv_param['pad']
            F, C, HH, WW = w.shape
            windows = _strided_windows(np.pad(x, ((0, 0), (0, 0), (P, P), (P, P))), HH, WW, S)
            out = np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
            return out + b[None, :, None, None], (x, w, b, conv_param)

        def max_pool_forward(x, pool_param):
            windows = _strided_windows(x, pool_param['pool_height'], pool_param['pool_width'], pool_param['stride'])
            return windows.max(axis=(4, 5)), (x, pool_param)

        def max_pool_backward(dout, cache):
            x, pool_param = cache
            ph, pw, S = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            N, C, H_out, W_out = dout.shape
            flat = _strided_windows(x, ph, pw, S).reshape(N, C, H_out, W_out, ph * pw)
            a, k = np.divmod(flat.argmax(axis=-1), pw)
            n, c, i, j = np.indices((N, C, H_out, W_out))
            dx = np.zeros_like(x)
            np.add.at(dx, (n, c, i * S + a, j * S + k), dout)
            return dx

        def avg_pool_forward(x, pool_param):
            windows = _strided_windows(x, pool_param['pool_height'], pool_param['pool_width'], pool_param['stride'])
            return windows.mean(axis=(4, 5)), (x.shape, pool_param)
    """,

    "einsum_add_at": """
        def _window_index(H, W, HH, WW, S, H_out, W_out):
            rows = (np.arange(H_out) * S)[:, None, None, None] + np.arange(HH)[None, None, :, None]
            cols = (np.arange(W_out) * S)[None, :, None, None] + np.arange(WW)[None, None, None, :]
            return rows, cols

        def conv_forward(x, w, b, conv_param):
            S, P = conv_param['stride'], conv_param['pad']
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            H_out, W_out = 1 + (H + 2 * P - HH) // S, 1 + (W + 2 * P - WW) // S
            x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
            rows, cols = _window_index(H + 2 * P, W + 2 * P, HH, WW, S, H_out, W_out)
            windows = x_pad[:, :, rows, cols]                       # (N, C, H_out, W_out, HH, WW)
            out = np.einsum('ncijak,fcak->nfij', windows, w) + b[None, :, None, None]
            return out, (x, w, b, conv_param)

        def conv_backward(dout, cache):
            x, w, b, conv_param = cache
            S, P = conv_param['stride'], conv_param['pad']
            N, C, H, W = x.shape
            F, _, HH, WW = w.shape
            H_out, W_out = dout.shape[2:]
            x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
            rows, cols = _window_index(H + 2 * P, W + 2 * P, HH, WW, S, H_out, W_out)
            dw = np.einsum('ncijak,nfij->fcak', x_pad[:, :, rows, cols], dout)
            dwindows = np.einsum('nfij,fcak->ncijak', dout, w)
            dx_pad = np.zeros_like(x_pad)
            rows_b, cols_b = np.broadcast_arrays(rows, cols)
            np.add.at(dx_pad, (slice(None), slice(None), rows_b, cols_b), dwindows)
            return dx_pad[:, :, P:P + H, P:P + W], dw, dout.sum(axis=(0, 2, 3))
    """,

    "binomial_dropout_global_seed": """
        def dropout_forward(x, dropout_param):
            p, mode = dropout_param['p'], dropout_param['mode']
            if 'seed' in dropout_param:
                np.random.seed(dropout_param['seed'])
            mask = None
            if mode == 'train':
                mask = np.random.binomial(1, p, size=x.shape) / p
                out = x * mask
            else:
                out = x
            return out, {'mode': mode, 'mask': mask}

        def dropout_backward(dout, cache):
            return dout * cache['mask'] if cache['mode'] == 'train' else dout
    """,

    "default_rng_object_cache": """
        class DropoutCache:
            def __init__(self, mode, keep, p):
                self.mode, self.keep, self.p = mode, keep, p

        def dropout_forward(x, dropout_param):
            p, mode = dropout_param['p'], dropout_param['mode']
            if mode == 'test':
                return x.copy(), DropoutCache(mode, None, p)
            keep = np.random.default_rng(dropout_param.get('seed')).uniform(size=x.shape) < p
            return np.where(keep, x / p, 0.0), DropoutCache(mode, keep, p)

        def dropout_backward(dout, cache):
            if cache.mode == 'test':
                return dout.copy()
            return np.where(cache.keep, dout / cache.p, 0.0)
    """,

    "randomstate_dropout_tuple_mask": """
        def dropout_forward(x, dropout_param):
            p, mode = dropout_param['p'], dropout_param['mode']
            if mode == 'test':
                return x.copy(), (None, p)
            rng = np.random.RandomState(dropout_param.get('seed'))
            keep = rng.rand(*x.shape) < p
            return x * keep / p, (keep, p)

        def dropout_backward(dout, cache):
            keep, p = cache
            return dout.copy() if keep is None else dout * keep / p
    """,

    "staged_batchnorm_axes_spatial": """
        def batchnorm_forward(x, gamma, beta, bn_param):
            mode = bn_param['mode']
            eps, momentum = bn_param.get('eps', 1e-5), bn_param.get('momentum', 0.9)
            D = x.shape[1]
            running_mean = bn_param.get('running_mean', np.zeros(D))
            running_var = bn_param.get('running_var', np.zeros(D))
            if mode == 'train':
                mu = x.mean(axis=0)
                xc = x - mu
                var = (xc ** 2).mean(axis=0)
                std = np.sqrt(var + eps)
                xn = xc / std
                bn_param['running_mean'] = momentum * running_mean + (1 - momentum) * mu
                bn_param['running_var'] = momentum * running_var + (1 - momentum) * var
                return gamma * xn + beta, {'xc': xc, 'std': std, 'xn': xn, 'gamma': gamma}
            return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta, None

        def batchnorm_backward(dout, cache):
            xc, std, xn, gamma = cache['xc'], cache['std'], cache['xn'], cache['gamma']
            N = dout.shape[0]
            dbeta = dout.sum(axis=0)
            dgamma = (dout * xn).sum(axis=0)
            dxn = dout * gamma
            dxc = dxn / std
            dstd = -(dxn * xc / std ** 2).sum(axis=0)
            dvar = 0.5 * dstd / std
            dxc = dxc + 2.0 / N * xc * dvar
            dx = dxc - dxc.sum(axis=0) / N
            return dx, dgamma, dbeta

        def spatial_batchnorm_forward(x, gamma, beta, bn_param):
            N, C, H, W = x.shape
            eps, momentum = bn_param.get('eps', 1e-5), bn_param.get('momentum', 0.9)
            axes, shape = (0, 2, 3), (1, C, 1, 1)
            if bn_param['mode'] == 'train':
                mean, var = x.mean(axis=axes), x.var(axis=axes)
                for key, value in (('running_mean', mean), ('running_var', var)):
                    bn_param[key] = momentum * bn_param.get(key, np.zeros(C)) + (1 - momentum) * value
            else:
                mean, var = bn_param['running_mean'], bn_param['running_var']
            inv_std = 1.0 / np.sqrt(var + eps)
            x_hat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
            return gamma.reshape(shape) * x_hat + beta.reshape(shape), (x_hat, gamma, inv_std)

        def spatial_batchnorm_backward(dout, cache):
            x_hat, gamma, inv_std = cache
            N, C, H, W = dout.shape
            m, axes, shape = N * H * W, (0, 2, 3), (1, C, 1, 1)
            dbeta = dout.sum(axis=axes)
            dgamma = (dout * x_hat).sum(axis=axes)
            dx_hat = dout * gamma.reshape(shape)
            dx = inv_std.reshape(shape) / m * (m * dx_hat - dx_hat.sum(axis=axes, keepdims=True)
                                                - x_hat * (dx_hat * x_hat).sum(axis=axes, keepdims=True))
            return dx, dgamma, dbeta
    """,

    "ties_to_last_maximum": """
        def max_pool_backward(dout, cache):
            x, pool_param = cache
            ph, pw, S = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
            dx = np.zeros_like(x)
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[:, :, i * S:i * S + ph, j * S:j * S + pw].reshape(x.shape[0], x.shape[1], -1)
                    last = ph * pw - 1 - window[:, :, ::-1].argmax(axis=2)
                    one_hot = (np.arange(ph * pw) == last[:, :, None]).reshape(x.shape[0], x.shape[1], ph, pw)
                    dx[:, :, i * S:i * S + ph, j * S:j * S + pw] += one_hot * dout[:, :, i:i + 1, j:j + 1]
            return dx
    """,
}
