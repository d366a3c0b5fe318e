"""Layers of a convolutional network, forward and backward, in numpy.

Conventions shared by every function in this file:

* This file is numpy and the Python standard library only: no torch (nor
  tensorflow, jax, autograd, cupy, numba, ...). The grader runs it without
  them; a function that uses one, however it is imported, scores 0 on its
  cases (an unused import costs nothing).
* Arrays are float64 and are never modified in place: a function that needs a
  changed copy of an input makes one.
* Images are laid out (N, C, H, W): batch, channels, height, width.
* Every ``*_forward`` returns ``(out, cache)``. ``cache`` is whatever the
  matching ``*_backward`` needs; it is private to your code (any Python object
  works), the grader only hands it back to your backward function.
* Every ``*_backward`` takes ``(dout, cache)`` where ``dout`` is the gradient of
  the loss with respect to ``out`` (same shape as ``out``) and returns the
  gradient with respect to each input, with the same shape as that input.

You implement: conv_forward/backward, max_pool_forward/backward,
avg_pool_forward/backward, batchnorm_forward/backward,
spatial_batchnorm_forward/backward, dropout_forward/backward.
affine, relu and softmax_loss are provided.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


# ----------------------------------------------------------------------------
# Provided layers
# ----------------------------------------------------------------------------

def affine_forward(x, w, b):
    """Fully-connected layer: out = x.reshape(N, D) @ w + b.

    x: (N, d_1, ..., d_k) with D = d_1 * ... * d_k; w: (D, M); b: (M,).
    Returns out (N, M) and cache (x, w, b).
    """
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    """Backward pass of affine_forward. Returns (dx, dw, db)."""
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    """out = max(0, x) elementwise. Returns out and cache x."""
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    """Backward pass of relu_forward. Returns dx."""
    return dout * (cache > 0)


def softmax_loss(x, y):
    """Mean cross-entropy of softmax(x) against integer labels y.

    x: (N, K) scores; y: (N,) labels in [0, K).
    Returns (loss, dx) with dx the gradient of the loss with respect to x.
    """
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -log_probs[np.arange(n), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n


# ----------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------

def conv_forward(x, w, b, conv_param):
    """Convolutional layer (cross-correlation, as torch.nn.functional.conv2d).

    Inputs:
    - x: (N, C, H, W) input images.
    - w: (F, C, HH, WW) filters; HH and WW may differ.
    - b: (F,) one bias per filter.
    - conv_param: {'stride': S, 'pad': P}. The input is padded with P zeros on
      all four sides; the filter then moves S pixels at a time, vertically
      and horizontally.

    Returns (out, cache):
    - out: (N, F, H_out, W_out) with H_out = 1 + (H + 2P - HH) // S and
      W_out = 1 + (W + 2P - WW) // S, where
      out[n, f, i, j] = b[f] + sum over c, a, k of
                        x_padded[n, c, i*S + a, j*S + k] * w[f, c, a, k].
    - cache: what conv_backward needs.
    """
    # BEGIN PROMPT
    # Pad x, then take every (HH, WW) window the filter visits (a loop over
    # output positions is fine) and multiply-accumulate it with each filter.
    # END PROMPT
    # BEGIN SOLUTION
    stride, pad = conv_param['stride'], conv_param['pad']
    F, C, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    # windows[n, c, i, j, a, k] = x_pad[n, c, i*S + a, j*S + k]
    windows = sliding_window_view(x_pad, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum('ncijak,fcak->nfij', windows, w, optimize=True)
    out = out + b[None, :, None, None]
    cache = (x, w, b, conv_param)
    # END SOLUTION
    return out, cache


def conv_backward(dout, cache):
    """Backward pass of conv_forward.

    Inputs:
    - dout: (N, F, H_out, W_out) upstream gradient.
    - cache: the cache conv_forward returned.

    Returns (dx, dw, db) with the shapes of x (N, C, H, W), w (F, C, HH, WW)
    and b (F,).
    """
    # BEGIN PROMPT
    # db sums dout over everything but the filter axis. dw correlates the
    # padded input with dout; dx is the full convolution of dout with the
    # filters (remember the stride and drop the padding at the end).
    # END PROMPT
    # BEGIN SOLUTION
    x, w, b, conv_param = cache
    stride, pad = conv_param['stride'], conv_param['pad']
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape

    db = dout.sum(axis=(0, 2, 3))

    # dw[f, c, a, k] = sum over n, i, j of x_pad[n, c, i*S + a, j*S + k] * dout[n, f, i, j]
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(x_pad, (HH, WW), axis=(2, 3))[:, :, ::stride, ::stride]
    dw = np.einsum('ncijak,nfij->fcak', windows, dout, optimize=True)

    # dx_pad is the full convolution of the stride-dilated dout with the
    # filters: correlate the dilated dout, padded by the kernel size minus
    # one, with the flipped filters.
    dilated = np.zeros((N, F, (H_out - 1) * stride + 1, (W_out - 1) * stride + 1))
    dilated[:, :, ::stride, ::stride] = dout
    dilated = np.pad(dilated, ((0, 0), (0, 0), (HH - 1, HH - 1), (WW - 1, WW - 1)))
    flipped = w[:, :, ::-1, ::-1]
    dout_windows = sliding_window_view(dilated, (HH, WW), axis=(2, 3))
    covered = np.einsum('nfijak,fcak->ncij', dout_windows, flipped, optimize=True)
    # Rows and columns of x_pad that no filter position reached get zero gradient.
    dx_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    dx_pad[:, :, :covered.shape[2], :covered.shape[3]] = covered
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    # END SOLUTION
    return dx, dw, db


# ----------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------

def _pool_windows(x, pool_param):
    """Every pooling window of x: (N, C, H_out, W_out, pool_height, pool_width)."""
    ph, pw, stride = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    return sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::stride, ::stride]


def max_pool_forward(x, pool_param):
    """Max pooling, no padding.

    Inputs:
    - x: (N, C, H, W).
    - pool_param: {'pool_height': PH, 'pool_width': PW, 'stride': S}.

    Returns (out, cache):
    - out: (N, C, H_out, W_out) with H_out = 1 + (H - PH) // S and
      W_out = 1 + (W - PW) // S; out[n, c, i, j] is the max of the window
      x[n, c, i*S : i*S + PH, j*S : j*S + PW].
    - cache: what max_pool_backward needs.
    """
    # BEGIN SOLUTION
    out = _pool_windows(x, pool_param).max(axis=(4, 5))
    cache = (x, pool_param)
    # END SOLUTION
    return out, cache


def max_pool_backward(dout, cache):
    """Backward pass of max_pool_forward.

    Each window's gradient goes to the one position that held its max; when
    several positions tie for the max, only one of them (any) gets it.
    Windows overlap when S < PH or S < PW: gradients from different windows
    add up. Returns dx with the shape of x.
    """
    # BEGIN SOLUTION
    x, pool_param = cache
    ph, pw, stride = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    N, C, H_out, W_out = dout.shape
    windows = _pool_windows(x, pool_param).reshape(N, C, H_out, W_out, ph * pw)
    winner = windows.argmax(axis=-1)  # first max: one position per window
    dx = np.zeros_like(x)
    for a in range(ph):
        for k in range(pw):
            rows = slice(a, a + stride * (H_out - 1) + 1, stride)
            cols = slice(k, k + stride * (W_out - 1) + 1, stride)
            dx[:, :, rows, cols] += dout * (winner == a * pw + k)
    # END SOLUTION
    return dx


def avg_pool_forward(x, pool_param):
    """Average pooling, no padding; parameters and output shape as in
    max_pool_forward, out[n, c, i, j] being the mean of the window.

    Returns (out, cache).
    """
    # BEGIN SOLUTION
    out = _pool_windows(x, pool_param).mean(axis=(4, 5))
    cache = (x.shape, pool_param)
    # END SOLUTION
    return out, cache


def avg_pool_backward(dout, cache):
    """Backward pass of avg_pool_forward: every position of a window gets an
    equal share of that window's gradient; overlapping windows add up.
    Returns dx with the shape of x.
    """
    # BEGIN SOLUTION
    x_shape, pool_param = cache
    ph, pw, stride = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    _, _, H_out, W_out = dout.shape
    share = dout / (ph * pw)
    dx = np.zeros(x_shape)
    for a in range(ph):
        for k in range(pw):
            rows = slice(a, a + stride * (H_out - 1) + 1, stride)
            cols = slice(k, k + stride * (W_out - 1) + 1, stride)
            dx[:, :, rows, cols] += share
    # END SOLUTION
    return dx


# ----------------------------------------------------------------------------
# Batch normalization
# ----------------------------------------------------------------------------

def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalization of features.

    Inputs:
    - x: (N, D) data.
    - gamma, beta: (D,) scale and shift.
    - bn_param: dict with
      - 'mode': 'train' or 'test' (required);
      - 'eps': added to the variance before the square root (default 1e-5);
      - 'momentum': weight of the old running value (default 0.9);
      - 'running_mean', 'running_var': (D,) running statistics; when missing
        they start as zeros.

    In train mode, x is normalized with the mean and the biased variance
    (divide by N) of the batch,
        out = gamma * (x - mean) / sqrt(var + eps) + beta,
    and the running statistics are updated and stored back into bn_param:
        running = momentum * running + (1 - momentum) * batch_statistic.
    In test mode, the running statistics are used instead of the batch's and
    nothing in bn_param changes.

    Returns (out, cache) with out (N, D).
    """
    # BEGIN SOLUTION
    mode = bn_param['mode']
    eps = bn_param.get('eps', 1e-5)
    momentum = bn_param.get('momentum', 0.9)
    D = x.shape[1]
    running_mean = bn_param.get('running_mean', np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get('running_var', np.zeros(D, dtype=x.dtype))

    if mode == 'train':
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        bn_param['running_mean'] = momentum * running_mean + (1 - momentum) * mean
        bn_param['running_var'] = momentum * running_var + (1 - momentum) * var
    elif mode == 'test':
        mean, var = running_mean, running_var
    else:
        raise ValueError(f"batchnorm_forward: bn_param['mode'] must be 'train' or 'test', got {mode!r}")

    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    out = gamma * x_hat + beta
    cache = (x_hat, gamma, inv_std)
    # END SOLUTION
    return out, cache


def batchnorm_backward(dout, cache):
    """Backward pass of batchnorm_forward in train mode (the batch statistics
    depend on x, so every sample's gradient involves the whole batch).

    Returns (dx, dgamma, dbeta) with shapes (N, D), (D,), (D,).
    """
    # BEGIN SOLUTION
    x_hat, gamma, inv_std = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    # d/dx of (x - mean) / std, with mean and std functions of the batch.
    dx = inv_std / N * (N * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    # END SOLUTION
    return dx, dgamma, dbeta


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalization of image channels.

    Inputs:
    - x: (N, C, H, W).
    - gamma, beta: (C,).
    - bn_param: as in batchnorm_forward, running statistics of shape (C,).

    Each channel is normalized with statistics over the N, H and W axes
    (N*H*W values per channel). Returns (out, cache) with out (N, C, H, W).
    """
    # BEGIN PROMPT
    # Reshape so that batchnorm_forward can do the work.
    # END PROMPT
    # BEGIN SOLUTION
    N, C, H, W = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, C)
    out_flat, cache = batchnorm_forward(flat, gamma, beta, bn_param)
    out = out_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    # END SOLUTION
    return out, cache


def spatial_batchnorm_backward(dout, cache):
    """Backward pass of spatial_batchnorm_forward.

    Returns (dx, dgamma, dbeta) with shapes (N, C, H, W), (C,), (C,).
    """
    # BEGIN SOLUTION
    N, C, H, W = dout.shape
    dout_flat = dout.transpose(0, 2, 3, 1).reshape(-1, C)
    dx_flat, dgamma, dbeta = batchnorm_backward(dout_flat, cache)
    dx = dx_flat.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    # END SOLUTION
    return dx, dgamma, dbeta


# ----------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------

def dropout_forward(x, dropout_param):
    """Inverted dropout.

    Inputs:
    - x: data of any shape.
    - dropout_param: dict with
      - 'p': the probability of KEEPING each unit;
      - 'mode': 'train' or 'test';
      - 'seed' (optional): when given, the same seed must give the same mask.

    In train mode each unit is kept with probability p and kept units are
    scaled by 1/p, so that the expected output equals x; dropped units are 0.
    In test mode the output equals x.

    Returns (out, cache) with out of x's shape.
    """
    # BEGIN SOLUTION
    p, mode = dropout_param['p'], dropout_param['mode']
    if mode == 'train':
        rng = np.random.default_rng(dropout_param.get('seed'))
        mask = (rng.random(x.shape) < p) / p
        out = x * mask
    elif mode == 'test':
        mask = None
        out = x.copy()
    else:
        raise ValueError(f"dropout_forward: dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    cache = (mode, mask)
    # END SOLUTION
    return out, cache


def dropout_backward(dout, cache):
    """Backward pass of dropout_forward: the gradient flows only through the
    units the forward pass kept, with the same 1/p scaling (train mode), and
    unchanged in test mode. Returns dx.
    """
    # BEGIN SOLUTION
    mode, mask = cache
    dx = dout * mask if mode == 'train' else dout.copy()
    # END SOLUTION
    return dx
