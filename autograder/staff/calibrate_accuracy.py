"""``python -m autograder calibrate-accuracy CLASS=CHECKPOINT ... [--models FILE] [--draws N]``:
what the accuracy protocol costs given checkpoints, and where they stand
against the integrity flags. Each checkpoint predicts the fixed test subset
unchanged and then under N independent draws of the grader's changes
(evaluation.TRANSFORMS of its class), in the grader's own worker; the command prints,
per checkpoint, the unchanged accuracy (and on 1,000 images of each training
batch), the changed accuracy over the draws
(mean, spread, range), the drop, the clean-vs-changed agreement and the
integrity flags it would raise, and then the unchanged accuracy each
accuracy tier then asks of such a model.

Rerun it whenever the reference models, the protocol or the flags change,
with honest checkpoints trained with and without augmentation (README, "The
accuracy protocol"), e.g.::

    python -m autograder calibrate-accuracy ConvNet=solutions/cnn/convnet.pt FCNet=solutions/cnn/fcnet.pt
"""
import os
import sys
from pathlib import Path

import numpy as np

from autograder.layout import MODELS_FILE, REFERENCE_DIR
from autograder.parts.cnn import integrity
from autograder.parts.cnn.evaluation import TEST, TRAIN, TRANSFORMS, View
from autograder.parts.cnn.jobs import MODEL_NAMES, cost_limits, error_text, new_job
from autograder.parts.cnn.data_protocol import STARTUP_SECONDS, load_test_set, load_train_batch
from autograder.provided import load_data_module
from autograder.parts.cnn.settings import load_settings
from autograder.parts.cnn.transforms import transform
from autograder.rubric import RUBRIC_PATH
from autograder.sandbox import Sandbox

REFERENCE_MODELS = REFERENCE_DIR / MODELS_FILE
DRAWS = 5
TRAINING_PER_BATCH = 1000         # training images per batch file, predicted unchanged


def add_arguments(parser):
    parser.add_argument("checkpoints", nargs="+", metavar="CLASS=CHECKPOINT",
                        help="a state_dict file and the class of --models it loads into (ConvNet or FCNet)")
    parser.add_argument("--models", default=str(REFERENCE_MODELS),
                        help="the models.py the checkpoints load into (default: the reference)")
    parser.add_argument("--draws", type=int, default=DRAWS, help=f"independent draws of the changes (default {DRAWS})")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default: $CIFAR10_DIR)")
    parser.add_argument("--rubric", default=str(RUBRIC_PATH), help="where the integrity flags' limits are read")


def parse_spec(spec):
    name, _, path = spec.partition("=")
    if name not in MODEL_NAMES or not path:
        raise ValueError(f"{spec!r}: expected CLASS=CHECKPOINT with CLASS one of {', '.join(MODEL_NAMES)}")
    if not os.path.isfile(path):
        raise ValueError(f"{spec!r}: no file {path}")
    return name, path


def measure(specs, models_file, draws, settings, data_dir=None, sandbox=None):
    """[(spec, figures)] per (class, checkpoint): unchanged accuracy over the
    whole subset and, per draw, the integrity figures of the changed images."""
    test_set = load_test_set(data_dir)
    labels, count = test_set.labels, len(test_set.labels)
    index = np.arange(count)
    # Unchanged: the test subset, then TRAINING_PER_BATCH images of each training batch.
    loaded = [load_train_batch(data_dir, choice)[1] for choice in range(len(load_data_module().TRAIN_FILES))]
    batches = [batch for batch in loaded if batch is not None]
    train_images = [batch.images[:TRAINING_PER_BATCH] for batch in batches]
    train_labels = [batch.labels[:TRAINING_PER_BATCH] for batch in batches]
    trained = sum(len(part) for part in train_labels)
    unchanged = View(np.concatenate([test_set.images] + train_images), np.concatenate([labels] + train_labels),
                     np.concatenate([np.full(count, TEST), np.full(trained, TRAIN)]),
                     np.concatenate([index, np.arange(trained)]))
    families = sorted({name for name, _ in specs})
    changed = {name: [View(transform(test_set.images, np.random.default_rng(np.random.SeedSequence(draw)),
                                     TRANSFORMS[name]), labels, np.full(count, TEST), index)
                      for draw in range(draws)] for name in families}
    sandbox = sandbox or Sandbox()
    job = new_job("calibrate accuracy", [])
    files, steps = {"models.py": models_file}, {}
    arrays = {name: [job.array(view.images) for view in [unchanged] + changed[name]] for name in families}
    for number, (name, path) in enumerate(specs):
        file_name = f"checkpoint_{number}.pt"
        files[file_name] = path
        job.files.append(file_name)
        job.new_unit()
        loaded = job.call("cnn.load_checkpoint", name, file_name, encode="out_cache",
                          timeout_scale=STARTUP_SECONDS["load"] / sandbox.call_timeout)
        steps[number] = [job.call("cnn.predict", job.ref(loaded, 1), images, cost_limits(settings, name), name,
                                  progress=True, timeout_scale=STARTUP_SECONDS["predict"] / sandbox.call_timeout)
                         for images in arrays[name]]
    outcome = sandbox.run(job, files).results
    measured = []
    for number, spec in enumerate(specs):
        results = [outcome[step] for step in steps[number]]
        failed = next((result for result in results if not result.ok), None)
        if failed is not None:
            raise RuntimeError(f"{spec[0]}={spec[1]}: {error_text(failed)}")
        clean = results[0].value
        measured.append((spec, [integrity.figures(result.value, view, clean, unchanged)
                                for result, view in zip(results[1:], changed[spec[0]])]))
    return measured


def summary(spec, draws, settings):
    """Lines describing one checkpoint's figures over the draws."""
    changed = np.array([found["transformed_accuracy"] for found in draws])
    first = draws[0]
    drops = np.array([found["drop"] for found in draws])
    agreement = np.array([found["agreement"] for found in draws])
    excess = np.array([found["excess"] for found in draws])
    raised = {kind: sum(kind in integrity.flags(found, settings) for found in draws)
              for kind in ("drop", "excess", "implausible", "seen")}
    flags = [f"{kind} in {count} of {len(draws)} draws" for kind, count in raised.items() if count]
    lines = [f"{spec[0]}={spec[1]}",
             f"  unchanged {first['clean_accuracy']:.2%} on {first['clean_images']:,} images",
             f"  changed   {changed.mean():.2%} mean over {len(draws)} draws "
             f"(sd {changed.std(ddof=1) if len(draws) > 1 else 0:.2%}, range {changed.min():.2%}-{changed.max():.2%})",
             f"  drop      {drops.mean():+.2%} (range {drops.min():+.2%} to {drops.max():+.2%})",
             f"  agreement {agreement.mean():.2%} unchanged vs changed; excess {excess.mean():+.2%} "
             f"(flag above {settings['integrity_max_excess']:+.1%})",
             f"  flags     {'; '.join(flags) if flags else 'none'}"]
    if "train_accuracy" in first:
        lines.insert(2, f"  training  {first['train_accuracy']:.2%} on {first['train_images']:,} training images: the "
                        f"test images {first['clean_accuracy'] - first['train_accuracy']:+.2%} above (flag above "
                        f"{settings['integrity_max_test_over_train']:+.0%})")
    return lines


def run(args):
    try:
        specs = [parse_spec(spec) for spec in args.checkpoints]
    except ValueError as exc:
        print(f"calibrate-accuracy: {exc}", file=sys.stderr)
        return 2
    if args.draws < 1:
        print("calibrate-accuracy: --draws must be at least 1", file=sys.stderr)
        return 2
    settings = load_settings(args.rubric)
    measured = measure(specs, args.models, args.draws, settings, args.data_dir or os.environ.get("CIFAR10_DIR"))
    for spec, draws in measured:
        print("\n".join(summary(spec, draws, settings)))
        drop = float(np.mean([found["drop"] for found in draws]))
        thresholds = (settings["convnet_accuracy_tiers"] if spec[0] == "ConvNet" else [settings["fcnet_accuracy"]])
        print("  tiers     " + ", ".join(f"{t:.0%} changed ~ {t + drop:.1%} unchanged" for t in thresholds))
    return 0
