"""The numpy layers part: grades layers.py function by function.

Each forward/backward pair runs in its own worker process, forward calls
first, and every case is a separate unit of the job: a crash, hang or
sys.exit costs the cases of that function only (the worker is restarted for
the next case). A backward's cases also need its forward, which makes the
cache, so a forward that fails on a case costs that backward case too.
"""
from autograder.cases import load_cases
from autograder.parts.layers import batchnorm, conv, dropout, pool
from autograder.parts.layers.env import FILE, LayerEnv

TITLE = "numpy layers"
FILES = (FILE,)

CHECKS = {
    "conv_forward": "conv_forward values, shapes, dtype, inputs unchanged",
    "conv_backward": "conv_backward dx, dw, db",
    "max_pool_forward": "max_pool_forward values",
    "max_pool_backward": "max_pool_backward dx, ties to one position",
    "avg_pool_forward": "avg_pool_forward values",
    "avg_pool_backward": "avg_pool_backward dx",
    "batchnorm_forward_train": "batchnorm_forward train-mode output",
    "batchnorm_running_stats": "batchnorm_forward running mean and variance",
    "batchnorm_forward_test": "batchnorm_forward test mode",
    "batchnorm_backward": "batchnorm_backward dx, dgamma, dbeta",
    "spatial_batchnorm_forward": "spatial_batchnorm_forward train and test mode",
    "spatial_batchnorm_backward": "spatial_batchnorm_backward dx, dgamma, dbeta",
    "dropout_forward": "dropout_forward properties",
    "dropout_backward": "dropout_backward uses the forward's mask",
}

MODULES = (conv, pool, batchnorm, dropout)


def grade(ctx, check_ids):
    env = LayerEnv(ctx=ctx, cases=load_cases(ctx.cases_dir))
    if env.cases.public_only:
        ctx.results.note("Public mode: no hidden cases are installed, so the layers were checked on "
                         "the public cases, gradient checks and invariants only. The official grade "
                         "uses more cases.")
    results = {}
    for module in MODULES:
        results.update(module.grade(env, check_ids))
    return results
