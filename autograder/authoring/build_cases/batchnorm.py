"""The batch-normalization cases (plain and spatial): their tables, the
inputs, the known-mistake outputs and running statistics, build_batchnorm
and build_spatial_batchnorm."""
import numpy as np

from autograder.authoring.build_cases.builder import rng_for

# Batch norm. bn_param entries other than mode are only written when given;
# "running" says whether running statistics are passed in (else they start at zero);
# "scale"/"shift" set the spread and offset of x.
BN_TRAIN_CASES = [
    dict(name="p1", shape=(4, 5)),
    dict(name="p2", shape=(10, 3), eps=1e-3, momentum=0.8, running=True),
    dict(name="h1", shape=(2, 4)),
    dict(name="h2", shape=(50, 20), momentum=0.95, running=True),
    dict(name="h3", shape=(8, 1)),
    dict(name="h4", shape=(16, 6), eps=1e-5, momentum=0.9, scale=5.0, shift=3.0),
    dict(name="h5", shape=(5, 7), eps=1e-2, momentum=0.5, scale=0.1, running=True),
    dict(name="h6", shape=(32, 10), running=True),
    dict(name="h11", shape=(2, 5), scale=0.02),        # two values per feature, eps matters
]
BN_SEQUENCE_CASES = [
    dict(name="p4", shape=(6, 4), batches=3, momentum=0.7),
    dict(name="h7", shape=(10, 3), batches=4),
    dict(name="h8", shape=(20, 5), batches=3, momentum=0.5, eps=1e-4, running=True),
]
BN_TEST_CASES = [
    dict(name="p3", shape=(5, 4)),
    dict(name="h9", shape=(8, 6), eps=1e-3),
    dict(name="h10", shape=(1, 3)),
]
SPATIAL_TRAIN_CASES = [
    dict(name="p1", shape=(2, 3, 4, 4)),
    dict(name="h1", shape=(4, 2, 5, 3), eps=1e-3, momentum=0.8, running=True),
    dict(name="h2", shape=(1, 3, 6, 6)),
    dict(name="h3", shape=(3, 5, 2, 2)),
    dict(name="h4", shape=(8, 4, 8, 8), scale=3.0, shift=-2.0),
    dict(name="h5", shape=(2, 1, 3, 7), momentum=0.6, running=True),
    dict(name="h7", shape=(2, 3, 1, 1), scale=0.02),   # two values per channel, eps matters
    dict(name="h8", shape=(1, 2, 1, 2), eps=1e-3, scale=0.05, running=True),
]
SPATIAL_TEST_CASES = [
    dict(name="p2", shape=(2, 3, 4, 4)),
    dict(name="h6", shape=(3, 4, 5, 5), eps=1e-3),
]


def bn_param_of(spec, mode):
    param = {"mode": mode}
    for key in ("eps", "momentum"):
        if key in spec:
            param[key] = spec[key]
    return param


def bn_inputs(rng, spec, features):
    x = rng.randn(*spec["shape"]) * spec.get("scale", 1.0) + spec.get("shift", 0.0)
    gamma = 1.0 + 0.5 * rng.randn(features)
    beta = rng.randn(features)
    running = {}
    if spec.get("running"):
        running = {"running_mean": rng.randn(features) * 0.5, "running_var": rng.rand(features) + 0.5}
    return x, gamma, beta, running


def fresh_bn_param(param, running):
    """A bn_param of its own: param with copies of the running statistics."""
    return dict(param, **{k: v.copy() for k, v in running.items()})


def bn_test_inputs(group, spec):
    """A test-mode case's x, gamma, beta, running statistics and bn_param
    (features on axis 1: the columns, or the channels)."""
    rng = rng_for(group, spec["name"])
    features = spec["shape"][1]
    x, gamma, beta, _ = bn_inputs(rng, spec, features)
    running = {"running_mean": rng.randn(features), "running_var": rng.rand(features) + 0.5}
    return x, gamma, beta, running, bn_param_of(spec, "test")


def bn_formula_variants(x2d, gamma, beta, param, running):
    """Train-mode mistakes on 2-d data (rows are samples): output and running statistics."""
    eps = param.get("eps", 1e-5)
    momentum = param.get("momentum", 0.9)
    n = x2d.shape[0]
    mean, var = x2d.mean(axis=0), x2d.var(axis=0)
    zeros = np.zeros_like(mean)
    old_var = running.get("running_var", zeros)
    out = {"eps_outside_sqrt": gamma * (x2d - mean) / (np.sqrt(var) + eps) + beta,
           "eps_missing": gamma * (x2d - mean) / np.sqrt(var) + beta}
    running_var = {}
    if n > 1:
        unbiased = var * n / (n - 1)
        out["unbiased_variance"] = gamma * (x2d - mean) / np.sqrt(unbiased + eps) + beta
        running_var["unbiased_running_var"] = momentum * old_var + (1 - momentum) * unbiased
    running_var["running_std"] = momentum * old_var + (1 - momentum) * np.sqrt(var)
    return out, running_var


def bn_reference_variants(forward, x, gamma, beta, param, running):
    """Mistakes obtained from the reference itself: another momentum or eps,
    gamma and beta left out. Returns (output variants, running-stat variants)."""
    def run(changes):
        bn_param = dict(param, **{k: v.copy() for k, v in running.items()})
        for key, value in changes.items():
            if value is None:
                del bn_param[key]
            else:
                bn_param[key] = value
        out, _ = forward(x, gamma, beta, bn_param)
        return out, bn_param

    momentum = param.get("momentum", 0.9)
    out = {"gamma_beta_ignored": forward(x, np.ones_like(gamma), np.zeros_like(beta),
                                         dict(param, **{k: v.copy() for k, v in running.items()}))[0]}
    running_variants = {"running_mean": {}, "running_var": {}}
    _, swapped = run({"momentum": 1 - momentum})
    for key in running_variants:
        running_variants[key]["momentum_swapped"] = swapped[key]
    if param.get("momentum", 0.9) != 0.9:
        _, default_momentum = run({"momentum": None})
        for key in running_variants:
            running_variants[key]["momentum_ignored"] = default_momentum[key]
    if param.get("eps", 1e-5) != 1e-5:
        out["eps_ignored"], _ = run({"eps": None})
    return out, running_variants


def eps_folded(running_var, param):
    """Mistake: eps added to the batch variance once and used for both the
    normalization and the running variance: after k calls from the same
    start, running_var is (1 - momentum**k) * eps too large. running_var:
    the expected values after one call, or stacked after each call."""
    eps, momentum = param.get("eps", 1e-5), param.get("momentum", 0.9)
    if running_var.ndim == 1:
        return running_var + (1 - momentum) * eps
    calls = np.arange(1, running_var.shape[0] + 1)[:, None]
    return running_var + (1 - momentum ** calls) * eps


def test_mode_variants(x, gamma, beta, running, eps, shape):
    """Test-mode mistakes: eps left out, gamma and beta not applied (shape:
    how the per-feature vectors broadcast against x, e.g. (1, -1, 1, 1))."""
    mean, var = (running[key].reshape(shape) for key in ("running_mean", "running_var"))
    gamma, beta = gamma.reshape(shape), beta.reshape(shape)
    return {"eps_missing": gamma * (x - mean) / np.sqrt(var) + beta,
            "gamma_beta_ignored": (x - mean) / np.sqrt(var + eps)}


def spatial_count_n_dx(x, gamma, dout, eps):
    """Mistake: the spatial backward's channel sums divided by N, the batch
    size, instead of N*H*W."""
    axes = (0, 2, 3)
    N = x.shape[0]
    inv_std = 1.0 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    x_hat = (x - x.mean(axis=axes, keepdims=True)) * inv_std
    dx_hat = dout * gamma[None, :, None, None]
    return inv_std * (dx_hat - dx_hat.sum(axis=axes, keepdims=True) / N
                      - x_hat * (dx_hat * x_hat).sum(axis=axes, keepdims=True) / N)


def build_batchnorm(builder):
    ref = builder.ref
    for spec in BN_TRAIN_CASES:
        rng = rng_for("batchnorm", spec["name"])
        D = spec["shape"][1]
        x, gamma, beta, running = bn_inputs(rng, spec, D)
        param = bn_param_of(spec, "train")
        bn_param = dict(param, **{k: v.copy() for k, v in running.items()})
        out, cache = ref.batchnorm_forward(x, gamma, beta, bn_param)
        dout = rng.randn(*out.shape)
        dx, dgamma, dbeta = ref.batchnorm_backward(dout, cache)
        out_formula, running_var_formula = bn_formula_variants(x, gamma, beta, param, running)
        out_ref, running_variants = bn_reference_variants(ref.batchnorm_forward, x, gamma, beta,
                                                          param, running)
        running_variants["running_var"].update(running_var_formula)
        running_variants["running_var"]["eps_folded"] = eps_folded(bn_param["running_var"], param)
        inv_std = 1.0 / np.sqrt(x.var(axis=0) + param.get("eps", 1e-5))
        builder.add("batchnorm", spec["name"], kind="train", params={"bn_param": param},
                    inputs=dict(x=x, gamma=gamma, beta=beta, dout=dout, **running),
                    expected={"out": out, "running_mean": bn_param["running_mean"],
                              "running_var": bn_param["running_var"],
                              "dx": dx, "dgamma": dgamma, "dbeta": dbeta},
                    variants={"out": dict(out_formula, **out_ref),
                              "running_mean": running_variants["running_mean"],
                              "running_var": running_variants["running_var"],
                              "dx": {"batch_statistics_constant": dout * gamma * inv_std},
                              "dgamma": {"batch_mean": dgamma / x.shape[0],
                                         "eps_missing": np.sum(
                                             dout * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0)),
                                             axis=0)},
                              "dbeta": {"batch_mean": dbeta / x.shape[0]}})

    for spec in BN_SEQUENCE_CASES:
        rng = rng_for("batchnorm", spec["name"])
        N, D = spec["shape"]
        _, gamma, beta, running = bn_inputs(rng, spec, D)
        batches = rng.randn(spec["batches"], N, D) * 2.0 + rng.randn(D)
        param = bn_param_of(spec, "train")
        states = {"expected": dict(param, **{k: v.copy() for k, v in running.items()}),
                  "momentum_swapped": dict(param, momentum=1 - param.get("momentum", 0.9),
                                           **{k: v.copy() for k, v in running.items()})}
        history = {name: {"running_mean": [], "running_var": []} for name in states}
        for batch in batches:
            for name, state in states.items():
                ref.batchnorm_forward(batch, gamma, beta, state)
                history[name]["running_mean"].append(state["running_mean"].copy())
                history[name]["running_var"].append(state["running_var"].copy())
        expected = {key: np.stack(values) for key, values in history["expected"].items()}
        swapped = {key: np.stack(values) for key, values in history["momentum_swapped"].items()}
        variants = {key: {"momentum_swapped": swapped[key]} for key in swapped}
        variants["running_var"]["eps_folded"] = eps_folded(expected["running_var"], param)
        builder.add("batchnorm", spec["name"], kind="sequence", params={"bn_param": param},
                    inputs=dict(batches=batches, gamma=gamma, beta=beta, **running),
                    expected=expected, variants=variants)

    for spec in BN_TEST_CASES:
        x, gamma, beta, running, param = bn_test_inputs("batchnorm", spec)
        out, _ = ref.batchnorm_forward(x, gamma, beta, dict(param, **running))
        variants = {}
        if x.shape[0] > 1:
            variants["batch_statistics"] = ref.batchnorm_forward(
                x, gamma, beta, dict(param, mode="train", **{k: v.copy() for k, v in running.items()}))[0]
        if "eps" in param:
            variants["eps_ignored"] = ref.batchnorm_forward(
                x, gamma, beta, dict(running, mode="test"))[0]
        eps = param.get("eps", 1e-5)
        variants["eps_outside_sqrt"] = (gamma * (x - running["running_mean"])
                                        / (np.sqrt(running["running_var"]) + eps) + beta)
        variants.update(test_mode_variants(x, gamma, beta, running, eps, (1, -1)))
        builder.add("batchnorm", spec["name"], kind="test", params={"bn_param": param},
                    inputs=dict(x=x, gamma=gamma, beta=beta, **running),
                    expected={"out": out}, variants={"out": variants})


def build_spatial_batchnorm(builder):
    for spec in SPATIAL_TRAIN_CASES:
        add_spatial_train_case(builder, spec)
    for spec in SPATIAL_TEST_CASES:
        add_spatial_test_case(builder, spec)


def add_spatial_train_case(builder, spec):
    """One train-mode case: the reference's output, running statistics and
    gradients, with what the known mistakes return instead."""
    ref = builder.ref
    rng = rng_for("spatial_batchnorm", spec["name"])
    C = spec["shape"][1]
    x, gamma, beta, running = bn_inputs(rng, spec, C)
    param = bn_param_of(spec, "train")
    bn_param = fresh_bn_param(param, running)
    out, cache = ref.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    dout = rng.randn(*out.shape)
    dx, dgamma, dbeta = ref.spatial_batchnorm_backward(dout, cache)
    builder.add("spatial_batchnorm", spec["name"], kind="train", params={"bn_param": param},
                inputs=dict(x=x, gamma=gamma, beta=beta, dout=dout, **running),
                expected={"out": out, "running_mean": bn_param["running_mean"],
                          "running_var": bn_param["running_var"],
                          "dx": dx, "dgamma": dgamma, "dbeta": dbeta},
                variants=spatial_train_variants(ref, x, gamma, beta, dout, param, running,
                                                bn_param["running_var"]))


def spatial_reshape_mistake(ref, x, gamma, beta, dout, param, running):
    """Mistake: x.reshape(-1, C) without moving the channels last first."""
    C = x.shape[1]
    bn_param = fresh_bn_param(param, running)
    out, cache = ref.batchnorm_forward(x.reshape(-1, C), gamma, beta, bn_param)
    dx, dgamma, _ = ref.batchnorm_backward(dout.reshape(-1, C), cache)
    return {"out": out.reshape(x.shape), "running_mean": bn_param["running_mean"],
            "running_var": bn_param["running_var"], "dx": dx.reshape(x.shape), "dgamma": dgamma}


def spatial_per_pixel_mistake(ref, x, gamma, beta, param):
    """Mistake: statistics per pixel (over N only) instead of per channel
    (the running statistics start from none given)."""
    N, _, H, W = x.shape
    bn_param = dict(param)
    out = ref.batchnorm_forward(x.reshape(N, -1), np.repeat(gamma, H * W),
                                np.repeat(beta, H * W), bn_param)[0]
    return {"out": out.reshape(x.shape), "running_mean": bn_param["running_mean"],
            "running_var": bn_param["running_var"]}


def spatial_not_transposed_back_mistake(ref, x2d, x_shape, gamma, beta, dout, param, running):
    """Mistakes in the way back from (N*H*W, C): reshaped without the transpose."""
    out, cache = ref.batchnorm_forward(x2d, gamma, beta, fresh_bn_param(param, running))
    dx, dgamma, _ = ref.batchnorm_backward(dout.reshape(-1, x_shape[1]), cache)
    return {"out": out.reshape(x_shape), "dx": dx.reshape(x_shape), "dgamma": dgamma}


def spatial_eps_missing_dgamma(x, dout):
    """Mistake: dgamma computed with the standard deviation without eps."""
    axes = (0, 2, 3)
    return np.sum(dout * (x - x.mean(axis=axes, keepdims=True))
                  / np.sqrt(x.var(axis=axes, keepdims=True)), axis=axes)


def spatial_train_variants(ref, x, gamma, beta, dout, param, running, expected_running_var):
    """{output: {mistake: what it returns}} for a train-mode case."""
    N, C, H, W = x.shape
    x2d = x.transpose(0, 2, 3, 1).reshape(-1, C)
    scrambled = spatial_reshape_mistake(ref, x, gamma, beta, dout, param, running)
    per_pixel = spatial_per_pixel_mistake(ref, x, gamma, beta, param)
    flat = spatial_not_transposed_back_mistake(ref, x2d, x.shape, gamma, beta, dout, param, running)
    out_formula, running_var_formula = bn_formula_variants(x2d, gamma, beta, param, running)
    _, momentum = bn_reference_variants(ref.batchnorm_forward, x2d, gamma, beta, param, running)
    out = {"reshape_without_transpose": scrambled["out"],
           "per_pixel_statistics": per_pixel["out"],
           "output_not_transposed_back": flat["out"]}
    out.update({key: value.reshape(N, H, W, C).transpose(0, 3, 1, 2)
                for key, value in out_formula.items()})
    return {"out": out,
            "running_mean": dict(momentum["running_mean"],
                                 reshape_without_transpose=scrambled["running_mean"],
                                 per_pixel_statistics=per_pixel["running_mean"]),
            "running_var": dict(momentum["running_var"], **running_var_formula,
                                reshape_without_transpose=scrambled["running_var"],
                                per_pixel_statistics=per_pixel["running_var"],
                                eps_folded=eps_folded(expected_running_var, param)),
            "dx": {"reshape_without_transpose": scrambled["dx"],
                   "dout_reshape_without_transpose": flat["dx"],
                   "count_n": spatial_count_n_dx(x, gamma, dout, param.get("eps", 1e-5))},
            "dgamma": {"reshape_without_transpose": scrambled["dgamma"],
                       "dout_reshape_without_transpose": flat["dgamma"],
                       "eps_missing": spatial_eps_missing_dgamma(x, dout)}}


def add_spatial_test_case(builder, spec):
    """One test-mode case: the output with the running statistics given."""
    ref = builder.ref
    x, gamma, beta, running, param = bn_test_inputs("spatial_batchnorm", spec)
    out, _ = ref.spatial_batchnorm_forward(x, gamma, beta, dict(param, **running))
    batch_statistics = ref.spatial_batchnorm_forward(
        x, gamma, beta, dict(fresh_bn_param(param, running), mode="train"))[0]
    eps = param.get("eps", 1e-5)
    mean = running["running_mean"][None, :, None, None]
    std = np.sqrt(running["running_var"])[None, :, None, None]
    eps_outside = gamma[None, :, None, None] * (x - mean) / (std + eps) + beta[None, :, None, None]
    builder.add("spatial_batchnorm", spec["name"], kind="test", params={"bn_param": param},
                inputs=dict(x=x, gamma=gamma, beta=beta, **running), expected={"out": out},
                variants={"out": dict(test_mode_variants(x, gamma, beta, running, eps, (1, -1, 1, 1)),
                                      batch_statistics=batch_statistics,
                                      eps_outside_sqrt=eps_outside)})
