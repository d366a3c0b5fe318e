"""The convolution cases: their table and build_conv, the expected outputs
and gradients of the reference and what known mistakes return."""
import numpy as np

from autograder.authoring.build_cases.builder import pad_sides, rng_for

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
