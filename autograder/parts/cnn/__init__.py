"""The CNN part: grades the PyTorch half of a submission (models.py,
convnet.pt, fcnet.pt) without importing it.

Three worker jobs (autograder/worker/torch_steps.py runs their steps): the first
inspects both classes, loads each checkpoint strictly and predicts the
fixed half of the test set (protocol.TEST_IMAGES), each image changed in a
way that keeps its class and drawn in secret per submission
(evaluation.py), in an order only the grader knows (it keeps the labels and
scores the logits itself), unless a model breaks the compute rule; the
second, in a process of its own, predicts unchanged images for the
integrity report (review.py, instructors only, no score); the third trains
fresh FCNet() and ConvNet() with the provided training loop on a fixed
subset for the curve checks, and returns their logits on held-out images
whose labels, again, only the grader has (the curve checks score the
held-out loss it computes). Accuracy and curve points need the architecture
rules met, so a rule-breaking model cannot buy points with size.
"""
import sys

import numpy as np

from autograder.parts import CheckResult
from autograder.parts.cnn import accuracy, architecture, curves, fresh_data
from autograder.parts.cnn.evaluation import FRESH_IMAGES, TRAIN_IMAGES, UNCHANGED_IMAGES, draw_views
from autograder.parts.cnn.jobs import (CHECKPOINTS, MODEL_NAMES, MODELS_FILE, curves_job, error_text,
                                       models_job, require_torch)
from autograder.parts.cnn.protocol import (CURVE_PROTOCOL, DataUnavailable, TestSet, evaluation_steps,
                                           load_curve_subset, load_test_set, load_train_batch)
from autograder.parts.cnn.review import review
from autograder.parts.cnn.secret import grading_key, submission_seed
from autograder.parts.cnn.settings import load_settings

TITLE = "PyTorch models"
FILES = (MODELS_FILE,) + tuple(CHECKPOINTS.values())
TIERS = 3

CHECKS = {
    "convnet_architecture": "ConvNet: 5-8 weight layers, >= 2 conv, parameter budget, compute rule, (N,3,32,32) -> (N,10)",
    "fcnet_architecture": "FCNet: Linear weight layers only, parameter budget, compute rule, (N,3,32,32) -> (N,10)",
    "convnet_checkpoint": "convnet.pt is a state_dict that loads strictly into ConvNet()",
    "fcnet_checkpoint": "fcnet.pt is a state_dict that loads strictly into FCNet()",
    **{f"convnet_accuracy_{tier}": f"ConvNet test accuracy reaches tier {tier}"
       for tier in range(1, TIERS + 1)},
    "fcnet_accuracy": "FCNet test accuracy reaches its threshold",
    "curves_fall": "both models lower their held-out loss below chance",
    "curve_convnet_below_fcnet": "ConvNet's final held-out loss below FCNet's by the margin",
    "curve_convnet_area": "ConvNet's area under the held-out loss curve below FCNet's",
    "curve_convnet_band": "ConvNet's curve inside the reference band",
}
ACCURACY_CHECKS = {**{f"convnet_accuracy_{tier}": ("ConvNet", tier - 1) for tier in range(1, TIERS + 1)},
                   "fcnet_accuracy": ("FCNet", None)}
CURVE_CHECKS = ("curves_fall", "curve_convnet_below_fcnet", "curve_convnet_area", "curve_convnet_band")
LEADERBOARD_NAME = "ConvNet test accuracy"
# What a model whose accuracy waits for the staff is told (review.py, integrity.WITHHOLDING): no figures.
WITHHELD = ("not scored yet: the course staff will look at this checkpoint's test accuracy before it counts "
            "(the autograder could not confirm it by itself). If the model and its training are your own "
            "work, there is nothing to change.")


def grade(ctx, check_ids):
    settings = load_settings(ctx.rubric_path)
    require_torch(ctx.sandbox)
    submission = ctx.submission
    if MODELS_FILE not in submission.files:
        message = submission.missing_message(MODELS_FILE)
        return {check: CheckResult(0.0, message) for check in check_ids}
    tiers = [index for check, (_, index) in ACCURACY_CHECKS.items() if index is not None and check in check_ids]
    if tiers and max(tiers) >= len(settings["convnet_accuracy_tiers"]):
        raise ValueError(f"rubric check convnet_accuracy_{max(tiers) + 1} has no threshold: add one "
                         f"to cnn.convnet_accuracy_tiers in the rubric")
    graded = ModelsGrading(ctx, settings, check_ids)
    results = graded.run()
    if any(check in check_ids for check in CURVE_CHECKS):
        results.update(grade_curves(ctx, settings, graded.architecture_ok,
                                    unbuilt=graded.unbuilt))
    return {check: result for check, result in results.items() if check in check_ids}


class ModelsGrading:
    """Architecture, checkpoint and accuracy checks (the first worker job)."""

    def __init__(self, ctx, settings, check_ids):
        self.ctx = ctx
        self.settings = settings
        self.check_ids = check_ids
        self.architecture_ok = {}
        self.unbuilt = {}     # model -> why Model() could not be built and run (not a rule broken)
        self.test_images = 0
        self.protocol = {}

    def run(self):
        ctx, submission = self.ctx, self.ctx.submission
        present = [name for name in MODEL_NAMES if CHECKPOINTS[name] in submission.files]
        views, data_problem = None, None
        if any(check in self.check_ids for check in ACCURACY_CHECKS):
            try:
                views = self.draw(present)
            except DataUnavailable as exc:
                data_problem = str(exc)
        job, steps = models_job(ctx.sandbox, self.settings, present, views)
        outcome = ctx.run(job).results
        results, scored, measured, tensors = {}, {}, {}, {}
        for name in MODEL_NAMES:
            inspected = outcome[steps[("inspect", name)]]
            results[f"{name.lower()}_architecture"] = self.architecture(name, inspected)
            inspection = architecture.readable(inspected.value) if inspected.ok else None
            if inspection is not None:
                tensors[name] = (inspection["extra_tensors_text"], inspection["largest_extra_tensor"])
            checkpoint, loaded = self.checkpoint(name, outcome.get(steps.get(("load", name))))
            results[f"{name.lower()}_checkpoint"] = checkpoint
            score = None
            if loaded and views is not None:
                predicted = outcome[steps[("predict", name)]]
                score = self.accuracy(name, predicted, views[name].changed.labels)
                if self.architecture_ok.get(name) and _logits(predicted, self.test_images):
                    measured[name] = predicted.value
            scored[name] = (checkpoint, loaded, score)
        report = review(ctx, self.settings, views, measured, tensors, self.protocol) if views else None
        found, withheld = (report or {}).get("models", {}), set((report or {}).get("withheld", ()))
        for check, (name, tier) in ACCURACY_CHECKS.items():
            if check not in self.check_ids:      # a rubric may leave tiers out
                continue
            checkpoint, loaded, score = scored[name]
            results[check] = (CheckResult(0.0, WITHHELD) if name in withheld else
                              self.tier_result(name, tier, checkpoint, loaded, score, data_problem,
                                               found.get(name, {})))
        if "ConvNet" in measured and "ConvNet" not in withheld:
            ctx.leaderboard.append({"name": LEADERBOARD_NAME, "value": round(100 * scored["ConvNet"][2][0], 2),
                                    "order": "desc"})
        return results

    def draw(self, present):
        """{name: evaluation.Views} of the present checkpoints, drawn from the
        submission's secret seed; sets self.test_images and self.protocol."""
        test_set = load_test_set(self.ctx.data_dir)
        fresh, fresh_note = self.fresh_set()
        key, secret = grading_key(self.ctx.cases_dir)
        files = {name: path for name, path in self.ctx.submission.files.items() if name in FILES}
        seed = submission_seed(key, files)
        batch, train = load_train_batch(self.ctx.data_dir, seed)     # the seed picks the batch file
        views = draw_views(test_set, seed, present, fresh, train)
        self.test_images = len(test_set.labels)
        self.protocol = {"transformed_images": self.test_images,
                         "clean_images": min(len(test_set.labels), UNCHANGED_IMAGES),
                         "training_images": (f"{min(len(train.labels), TRAIN_IMAGES):,} of {batch}"
                                             if train is not None else "not available"),
                         "cifar10_1": fresh_note,
                         "key": "hidden cases" if secret else "public (no hidden cases: the draws are not secret)",
                         "draw": f"{seed:032x}"[:12]}
        return views

    def fresh_set(self):
        """(CIFAR-10.1 as a TestSet, or None; a note saying which)."""
        folder = fresh_data.find(self.ctx.data_dir)
        if folder is None:
            return None, "not available (setup.sh downloads it on Gradescope)"
        try:
            images, labels = fresh_data.load(folder)
        except fresh_data.FreshDataError as exc:
            print(f"cnn part: CIFAR-10.1 not used: {exc}", file=sys.stderr)
            return None, f"not used: {exc}"
        return TestSet(images=images, labels=labels), f"{min(len(labels), FRESH_IMAGES):,} of {len(labels):,} images"

    def architecture(self, name, result):
        if not result.ok:
            text = error_text(result)
            self.architecture_ok[name] = False
            self.unbuilt[name] = text.split("\n", 1)[0]
            return CheckResult(0.0, f"{name}() could not be built and run on a (2, 3, 32, 32) batch: "
                                    + text.split("\n", 1)[0], text.split("\n")[1:])
        verdict = architecture.judge(name, result.value, self.settings)
        self.architecture_ok[name] = verdict.fraction == 1.0
        return verdict

    def checkpoint(self, name, result):
        """(CheckResult, loaded?) of one checkpoint file."""
        file_name = CHECKPOINTS[name]
        if result is None:
            return CheckResult(0.0, self.ctx.submission.missing_message(file_name)), False
        if not result.ok:
            text = error_text(result)
            lines = text.split("\n")
            return CheckResult(0.0, lines[0], lines[1:]), False
        info = result.value[0] if isinstance(result.value, tuple) else {}
        note = info.get("note") if isinstance(info, dict) else ""
        tensors = info.get("tensors") if isinstance(info, dict) else None
        summary = f"{file_name} loads into {name}() with strict key and shape matching"
        if isinstance(tensors, float):
            summary += f" ({int(tensors)} tensors)"
        return CheckResult(1.0, summary, [note] if note else []), True

    def accuracy(self, name, result, labels):
        """(accuracy, problem text) or (None, why it was not measured)."""
        if not result.ok:
            return None, f"{name} could not predict the test images: {error_text(result)}"
        value, problem = accuracy.score_logits(result.value, labels)
        # For regrade's CSV and report: the scored accuracy, on the changed images.
        self.ctx.extra_data.setdefault("accuracy", {})[name] = round(value, 4)
        return value, problem

    def tier_result(self, name, tier, checkpoint, loaded, score, data_problem, figures):
        if data_problem:
            return CheckResult(0.0, "not run: no CIFAR-10 test set for the accuracy checks",
                               [data_problem])
        if not loaded:
            return CheckResult(0.0, f"not run: {checkpoint.summary}")
        value, problem = score
        if name in self.unbuilt:
            return CheckResult(0.0, f"not run: {name}() could not be built and run (see its "
                                    f"architecture test): {self.unbuilt[name]}")
        if not self.architecture_ok.get(name):
            measured = (f"its test accuracy is {value:.2%}" if value is not None
                        else "its test images were not run")
            return CheckResult(0.0, f"not scored: {name} breaks the architecture rules (see its "
                                    f"architecture test); {measured}")
        if value is None:
            lines = problem.split("\n")
            return CheckResult(0.0, lines[0], lines[1:])
        threshold = (self.settings["convnet_accuracy_tiers"][tier] if tier is not None
                     else self.settings["fcnet_accuracy"])
        lines = [problem] if problem else []
        if "clean_accuracy" in figures:
            lines.append(f"on {figures['clean_images']:,} of these images: {figures['clean_accuracy']:.2%} "
                         f"unchanged, {figures['paired_transformed_accuracy']:.2%} changed (for comparison, "
                         f"not scored)")
        return accuracy.judge_tier(name, value, threshold, self.test_images, lines)


def _logits(result, count):
    """Whether a predict step returned logits for all count images."""
    return result.ok and isinstance(result.value, np.ndarray) and result.value.shape == (count, 10)


def grade_curves(ctx, settings, architecture_ok, protocol=CURVE_PROTOCOL, band_path=curves.BAND_PATH,
                 unbuilt=None):
    """The four curve checks: train fresh FCNet() and ConvNet() with the
    protocol (one worker job), compare the runs and draw them. unbuilt:
    {model: first line of its error} for models that could not even be built
    (an import error, a crash, a GPU call): the message names that cause, not
    the architecture rules."""
    unbuilt = unbuilt or {}
    broken = [name for name in MODEL_NAMES if not architecture_ok.get(name)]
    if broken:
        crashed = [name for name in broken if name in unbuilt]
        ruled = [name for name in broken if name not in unbuilt]
        rules = (f"the curves are compared only for models that follow the architecture rules; fix "
                 f"{' and '.join(ruled)} first (see the architecture tests)")
        if not crashed:
            message = f"not run: {rules}"
        else:
            errors = {unbuilt[name] for name in crashed}
            cause = (f": {unbuilt[crashed[0]]}" if len(errors) == 1
                     else "; " + "; ".join(f"{name}: {unbuilt[name]}" for name in crashed))
            message = (f"not run: {' and '.join(f'{name}()' for name in crashed)} could not be built "
                       f"and run{cause}. Fix this first (see the architecture tests)"
                       + (f"; also, {rules}" if ruled else ""))
        return {check: CheckResult(0.0, message) for check in CURVE_CHECKS}
    try:
        subset = load_curve_subset(ctx.data_dir, protocol)
    except DataUnavailable as exc:
        return {check: CheckResult(0.0, "not run: no CIFAR-10 training images for the curve checks",
                                   [str(exc)]) for check in CURVE_CHECKS}
    job, steps = curves_job(ctx.sandbox, subset, protocol)
    held_out_labels = subset["y_val"]
    del subset
    outcome = ctx.run(job).results
    runs, failures = {}, {}
    eval_steps = evaluation_steps(protocol)
    for (name, _), step_id in steps.items():
        result = outcome[step_id]
        curve = (curves.Curve.from_value(name, result.value, held_out_labels, eval_steps)
                 if result.ok else None)
        if curve is None:
            failures[name] = (f"training {name}() with the provided loop failed: "
                              + (error_text(result) if not result.ok else "it returned no usable history"))
        else:
            runs[name] = curve
    try:
        band, band_problem = curves.load_band(band_path, protocol), None
    except curves.BandError as exc:
        band, band_problem = None, str(exc)
    plot_note = _plot(ctx, runs, band)
    numbers = [curve.describe() for curve in runs.values()] + ([plot_note] if plot_note else [])
    if failures:
        first = next(iter(failures.values()))
        details = [text for text in failures.values() if text != first] + numbers
        return {check: CheckResult(0.0, first, details) for check in CURVE_CHECKS}
    fcnet, convnet = runs["FCNet"], runs["ConvNet"]
    total_steps = protocol["config"]["max_steps"]
    if band is not None or convnet.problem(total_steps):
        band_result = curves.judge_band(convnet, band, total_steps)
    else:
        band_result = CheckResult(0.0, "The autograder's reference band is unusable; please tell "
                                       "the course staff.", [band_problem])
    results = {
        "curves_fall": curves.judge_fall([fcnet, convnet], settings, total_steps),
        "curve_convnet_below_fcnet": curves.judge_margin(fcnet, convnet, settings, total_steps),
        "curve_convnet_area": curves.judge_area(fcnet, convnet, total_steps),
        "curve_convnet_band": band_result,
    }
    for result in results.values():
        result.details.extend(numbers)
    return results


def _plot(ctx, runs, band):
    """Draw the curves next to results.json; a note naming the file, or '' when nothing was drawn."""
    if not runs or ctx.output_dir is None:
        return ""
    try:
        path = curves.plot(ctx.output_file(curves.PLOT_NAME), runs.get("FCNet"), runs.get("ConvNet"), band)
    except Exception as exc:  # a plot is a convenience: its failure must not cost the checks
        print(f"cnn part: could not draw {curves.PLOT_NAME} in {ctx.output_dir}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return ""
    ctx.notes.append(f"CNN part: loss curves of your FCNet and ConvNet plotted in {path}")
    return f"plot: {path.name} (next to results.json)"
