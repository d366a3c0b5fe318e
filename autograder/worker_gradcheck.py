"""Trusted helper loaded by path into the worker (numpy only): numerical
derivatives of a student's forward function, for the grader to compare with
the gradients the student's backward function returns.

The loss is L = sum(forward(*args)[0] * dout). For each differentiated input
and each direction v the grader chose, the central difference
(L(a + h v) - L(a - h v)) / (2 h) estimates <dL/da, v>; the grader computes
<grad, v> from the student's gradient itself and compares the two with the
CS231n relative error. Random directions test every entry of a gradient at
the cost of two forward calls each, so large inputs stay cheap.
"""
import copy

import numpy as np


def directional_derivatives(forward, args, wrt, dout, directions, h=1e-6):
    """forward: the student's function; args: its arguments; wrt: indices of
    the arguments to differentiate; directions: one list of arrays (each of
    the shape of args[i]) per index in wrt. Returns a list of 1-d arrays of
    directional derivatives, one array per index in wrt."""
    dout = np.asarray(dout, dtype=np.float64)

    def loss(call_args):
        # A fresh copy per call: forward may change its dict parameters.
        out = forward(*copy.deepcopy(call_args))[0]
        out = np.asarray(out, dtype=np.float64)
        if out.shape != dout.shape:
            raise ValueError(f"{forward.__name__} returned out of shape {out.shape}, "
                             f"expected {dout.shape}: no numerical gradient without the right shape")
        return float(np.sum(out * dout))

    results = []
    for index, index_directions in zip(wrt, directions):
        base = np.asarray(args[index], dtype=np.float64)
        values = []
        for direction in index_directions:
            plus, minus = list(args), list(args)
            plus[index] = base + h * direction
            minus[index] = base - h * direction
            values.append((loss(plus) - loss(minus)) / (2 * h))
        results.append(np.array(values))
    return results
