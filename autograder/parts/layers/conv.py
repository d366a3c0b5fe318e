"""conv_forward and conv_backward."""
from autograder.parts.layers.compare import CONV_OUT_AXES, IMAGE_AXES, KERNEL_AXES
from autograder.parts.layers.env import new_job
from autograder.parts.layers.plans import Call, Plan, plan_backward, plan_forward, run_plans

FORWARD_MISTAKES = {
    "flipped_kernel": "the kernel is flipped (a true convolution); conv_forward must compute a "
                      "cross-correlation like torch's conv2d: multiply window position (a, k) by "
                      "w[f, c, a, k] without flipping",
    "bias_missing": "the bias is not added: out[n, f] needs + b[f]",
    "bias_summed": "every output gets the sum of all biases; filter f gets only b[f]",
    "bias_per_kernel_element": "b[f] is added once per kernel element (inside the sum over the "
                               "window); add it once per output value",
    "bias_last_axis": "the bias is broadcast along the width axis; b[f] belongs to filter f "
                      "(axis 1): add b[None, :, None, None]",
    "bias_per_sample": "the bias is indexed by sample (b[n]); it is indexed by filter (b[f])",
    "stride_ignored": "the stride is ignored: the filter moves one pixel at a time, so the output "
                      "is too large",
    "stride_ignored_cropped": "the output has the right size but window (i, j) starts at row i, "
                              "column j instead of i*stride, j*stride",
    "pad_ignored": "the padding is ignored: pad x with `pad` zeros on all four sides first",
    "pad_top_left_only": "zeros are added only above and left of the image; pad all four sides",
    "pad_bottom_right_only": "zeros are added only below and right of the image; pad all four sides",
    "pad_doubled_bottom_right": "2*pad zeros are added below and right and none above and left; "
                                "use ((pad, pad), (pad, pad)) for the spatial axes",
    "pad_doubled_top_left": "2*pad zeros are added above and left and none below and right; "
                            "use ((pad, pad), (pad, pad)) for the spatial axes",
}

BACKWARD_MISTAKES = {
    "dx": {
        "kernel_not_flipped": "dx correlates dout with the kernels unflipped; dx is the full "
                              "convolution of dout with the kernels: every window that covered "
                              "x[n, c, h, v] sends back w[f, c, a, k] * dout[n, f, i, j]",
        "padding_not_removed": "dx is the gradient of the padded input: crop the pad rows and "
                               "columns so dx has the shape of x",
    },
    "dw": {
        "dw_flipped": "dw is flipped in both spatial axes",
        "first_sample_only": "dw uses only the first sample; sum over the whole batch",
        "batch_mean": "dw is averaged over the batch; the gradient is the sum over samples",
    },
    "db": {
        "db_not_summed_spatially": "db keeps the spatial axes; sum dout over samples, rows and "
                                   "columns: dout.sum(axis=(0, 2, 3))",
        "db_per_sample": "db has one row per sample: also sum over the batch axis",
        "first_sample_only": "db uses only the first sample; sum over the whole batch",
        "batch_mean": "db is averaged over the batch; sum over samples instead",
    },
}

GRADIENTS = [("dx", 0, IMAGE_AXES), ("dw", 1, KERNEL_AXES), ("db", 2, ("filter",))]


def calls(env):
    return [Call(case, [("x", case.inputs["x"]), ("w", case.inputs["w"]), ("b", case.inputs["b"]),
                        ("conv_param", dict(case.params["conv_param"]))])
            for case in env.cases.group("conv")]


def grade(env, check_ids):
    """conv_forward and conv_backward checks, in one worker process."""
    job = new_job("conv")
    plans = {}
    if "conv_forward" in check_ids:
        plans["conv_forward"] = Plan([plan_forward(job, "conv_forward", calls(env), CONV_OUT_AXES,
                                                   FORWARD_MISTAKES)], "conv_forward")
    if "conv_backward" in check_ids:
        plans["conv_backward"] = Plan([plan_backward(job, "conv_forward", "conv_backward", calls(env),
                                                     GRADIENTS, BACKWARD_MISTAKES)], "conv_backward")
    return run_plans(env, job, plans)
