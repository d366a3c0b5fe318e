"""The max- and average-pooling cases: their tables, the inputs (distinct
values or ties), the known-mistake backward passes and build_pool."""
import numpy as np

from autograder.authoring.build_cases.builder import rng_for

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
