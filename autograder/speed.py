"""How slow this machine is, so that time limits mean the same work everywhere.

A call's time limit (autograder/sandbox/clock.py) is set for the reference machine
(the project's development machine: AVX-512, an unthrottled core) and scaled
by `slowness()`: the wall time of a fixed single-threaded workload here,
divided by its time on the reference machine, never below 1. On Gradescope's
default machine (half a CPU, often an older core) the factor is about 2-4
(measured: 1.9 in a 0.5-CPU cgroup of the reference machine), so a
loop-based conv_forward that fits its limit on a laptop also fits it there,
and a grade does not depend on where it ran.

The workload is what student code spends its time on: a Python loop over
small numpy operations (a naive convolution). It runs for about 0.22 s there,
longer than a CFS period (100 ms), so that a CPU quota throttles it as it
throttles the workers.
"""
import functools
import time

import numpy as np

REFERENCE_SECONDS = 0.22        # the workload's wall time on the reference machine (AMD EPYC Zen 4, idle)
REPEATS = 2                     # the workload runs this many times; the fastest counts
ROUNDS = 18                     # convolutions per run: about 0.22 s on the reference machine


def _workload():
    """A naive 3x3 convolution of a (8, 16, 16) image with 8 filters, in loops."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((8, 18, 18)), rng.standard_normal((8, 8, 3, 3))
    out = np.empty((8, 16, 16))
    for _ in range(ROUNDS):
        for f in range(8):
            for i in range(16):
                for j in range(16):
                    out[f, i, j] = np.sum(x[:, i:i + 3, j:j + 3] * w[f])
    return out


def best_time(function, repeats):
    """Fastest wall time of function() over `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def workload_seconds(repeats=REPEATS):
    """Fastest wall time of the workload over `repeats` runs."""
    return best_time(_workload, repeats)


@functools.lru_cache(maxsize=None)
def slowness():
    """(factor >= 1 to scale time limits by, seconds the workload took here);
    measured once per process."""
    seconds = workload_seconds()
    return max(1.0, seconds / REFERENCE_SECONDS), seconds
