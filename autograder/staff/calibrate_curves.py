"""``python -m autograder calibrate-curves [--seeds N] [--data-dir DIR]``:
train the reference FCNet and ConvNet (solutions/cnn/models.py) with the
grader's curve protocol for several seeds, through the same worker job the
grader uses, and write the ConvNet band the curve check compares with
(autograder/reference/curve_band.json, shipped with the grader).

The band at each point is the mean over seeds widened by
SLACK_SPREADS * spread + SLACK_MINIMUM on both sides (spread: the standard
deviation over seeds): wide on purpose, since students' ConvNets differ from
the reference.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

from autograder.layout import MODELS_FILE, REFERENCE_DIR
from autograder.parts.cnn.curves import BAND_FORMAT, BAND_PATH, Curve
from autograder.parts.cnn.jobs import curves_job, error_text
from autograder.parts.cnn.data_protocol import (CURVE_PROTOCOL, GRADING_SEED, evaluation_steps,
                                           load_curve_subset)
from autograder.sandbox import Sandbox

REFERENCE_MODELS = REFERENCE_DIR / MODELS_FILE
SLACK_SPREADS = 3.0
SLACK_MINIMUM = 0.1
MIN_SEEDS = 5


def add_arguments(parser):
    parser.add_argument("--seeds", type=int, default=MIN_SEEDS,
                        help=f"seeds to train (>= {MIN_SEEDS}; the grading seed {GRADING_SEED} is one of them)")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default: $CIFAR10_DIR)")
    parser.add_argument("--out", default=str(BAND_PATH), help="band file to write")


def band_of(values):
    """{mean, spread, low, high} lists, one item per point, of a (seeds, points) array."""
    values = np.asarray(values, dtype=np.float64)
    mean, spread = values.mean(axis=0), values.std(axis=0, ddof=1)
    slack = SLACK_SPREADS * spread + SLACK_MINIMUM
    return {"mean": _rounded(mean), "spread": _rounded(spread),
            "low": _rounded(mean - slack), "high": _rounded(mean + slack)}


def _rounded(array):
    return [round(float(v), 4) for v in array]


def calibrate(seeds, data_dir=None, sandbox=None):
    """Train the reference models for each seed; returns the band document."""
    sandbox = sandbox or Sandbox()
    subset = load_curve_subset(data_dir)
    job, steps = curves_job(sandbox, subset, seeds=seeds)
    outcome = sandbox.run(job, {"models.py": REFERENCE_MODELS}).results
    total_steps = CURVE_PROTOCOL["config"]["max_steps"]
    runs = {}
    for (name, seed), step_id in steps.items():
        result = outcome[step_id]
        curve = (Curve.from_value(name, result.value, subset["y_val"], evaluation_steps())
                 if result.ok else None)
        why = (error_text(result) if not result.ok else "no usable history" if curve is None
               else curve.problem(total_steps))
        if why:
            raise RuntimeError(f"reference {name}, seed {seed}: {why}")
        runs[(name, seed)] = curve
    convnets = [runs[("ConvNet", seed)] for seed in seeds]
    return {
        "format": BAND_FORMAT,
        "protocol": CURVE_PROTOCOL,
        "seeds": list(seeds),
        "model": "reference ConvNet of solutions/cnn/models.py",
        "slack": {"spreads": SLACK_SPREADS, "minimum": SLACK_MINIMUM},
        "held_out": {"steps": convnets[0].val_step.tolist(), **band_of([c.val_loss for c in convnets])},
        "fcnet_held_out_mean": _rounded(np.mean([runs[("FCNet", s)].val_loss for s in seeds], axis=0)),
        "per_seed": {str(seed): {name: {"held_out": _rounded(runs[(name, seed)].val_loss),
                                        "held_out_accuracy": _rounded(runs[(name, seed)].val_accuracy)}
                                 for name in ("ConvNet", "FCNet")} for seed in seeds},
    }


def run(args):
    if args.seeds < MIN_SEEDS:
        print(f"calibrate-curves: --seeds must be at least {MIN_SEEDS}", file=sys.stderr)
        return 2
    seeds = [GRADING_SEED] + [s for s in range(1, args.seeds + 1) if s != GRADING_SEED][:args.seeds - 1]
    band = calibrate(seeds, args.data_dir or os.environ.get("CIFAR10_DIR"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(band, indent=1) + "\n")
    held = band["held_out"]
    for step, mean, low, high in zip(held["steps"], held["mean"], held["low"], held["high"]):
        print(f"step {step}: reference ConvNet held-out loss {mean:.3f}, band [{low:.3f}, {high:.3f}]")
    print(f"wrote {out}")
    return 0
