"""Helpers for checking gradients numerically (provided code, nothing to implement).

Typical use in a notebook, for a layer out = f(x) and an upstream gradient dout:

    dx_numeric = numeric_gradient(lambda x: layers.relu_forward(x)[0], x, dout)
    dx, = ... your backward pass ...
    print(rel_error(dx, dx_numeric))   # around 1e-8 or less when dx is right
"""
import numpy as np


def numeric_gradient(f, x, dout, h=1e-5):
    """Central-difference estimate of the gradient of sum(f(x) * dout) with respect to x.

    This is the gradient a backward pass returns when dout is the upstream
    gradient of f's output: entry i is
        sum((f(x + h e_i) - f(x - h e_i)) * dout) / (2h).

    Inputs:
    - f: function taking an array shaped like x and returning an array shaped
      like dout.
    - x: float64 numpy array, the point of evaluation. Each entry is shifted
      by +-h in place while f runs and put back afterwards, so f may read x
      either through its argument or from an enclosing scope.
    - dout: numpy array, the upstream gradient.
    - h: step of the finite difference.

    Returns an array shaped like x.
    """
    where = "gradient_check.py: numeric_gradient"
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        found = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{where}: x must be a float64 numpy array (in lower precision a step "
                        f"of h={h} is lost to rounding), got {found}")
    dout = np.asarray(dout)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        try:
            x[index] = original + h
            plus = np.asarray(f(x), dtype=np.float64)
            x[index] = original - h
            minus = np.asarray(f(x), dtype=np.float64)
        finally:
            x[index] = original
        if plus.shape != dout.shape:
            raise ValueError(f"{where}: f returned shape {plus.shape} but dout has shape "
                             f"{dout.shape}; dout must be shaped like f's output")
        grad[index] = np.sum((plus - minus) * dout) / (2 * h)
    return grad


def rel_error(a, b):
    """Largest elementwise relative error max |a - b| / max(1e-8, |a| + |b|).

    a and b must have the same shape (no broadcasting, so that comparing a
    gradient with a wrongly shaped one is an error rather than a small number).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"gradient_check.py: rel_error: a and b must have the same shape, "
                         f"got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
