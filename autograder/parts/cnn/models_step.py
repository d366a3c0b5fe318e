"""The first worker job of the CNN part and its checks: architecture,
checkpoint and accuracy (ModelsGrading). It draws what each model is shown
(evaluation.py, from the submission's secret seed), inspects both classes,
loads each checkpoint and predicts the drawn test images, scores the logits
in the grader, hands the measured models to the integrity review
(review.py) and puts the ConvNet's accuracy on the leaderboard.
"""
import sys

import numpy as np

from autograder.parts import CheckResult
from autograder.parts.cnn import accuracy, architecture, fresh_data, pictures
from autograder.parts.cnn.data_protocol import DataUnavailable, TestSet, load_test_set, load_train_batch
from autograder.parts.cnn.evaluation import FRESH_IMAGES, TRAIN_IMAGES, UNCHANGED_IMAGES, draw_views
from autograder.parts.cnn.jobs import CHECKPOINTS, MODEL_FILES, MODEL_NAMES, error_text, models_job
from autograder.parts.cnn.review import review
from autograder.parts.cnn.secret import grading_key, submission_seed
from autograder.pictures import drawn

TIERS = 3
ACCURACY_CHECKS = {**{f"convnet_accuracy_{tier}": ("ConvNet", tier - 1) for tier in range(1, TIERS + 1)},
                   "fcnet_accuracy": ("FCNet", None)}
LEADERBOARD_NAME = "ConvNet test accuracy"
# What a model whose accuracy waits for the staff is told (review.py, integrity.WITHHOLDING): no figures.
WITHHELD = ("not scored yet: the course staff will look at this checkpoint's test accuracy before it counts "
            "(the autograder could not confirm it by itself). If the model and its training are your own "
            "work, there is nothing to change.")


def check_tiers(settings, check_ids):
    """Raise when the rubric asks for an accuracy tier its settings give no threshold."""
    tiers = [index for check, (_, index) in ACCURACY_CHECKS.items() if index is not None and check in check_ids]
    if tiers and max(tiers) >= len(settings["convnet_accuracy_tiers"]):
        raise ValueError(f"rubric check convnet_accuracy_{max(tiers) + 1} has no threshold: add one "
                         f"to cnn.convnet_accuracy_tiers in the rubric")


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
        self.by_class = {}    # model -> (text line, Picture) of its accuracy per class
        self.pictured = set() # models whose accuracy picture is shown (once; its text line in each tier)

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
            ctx.results.add_leaderboard(LEADERBOARD_NAME, round(100 * scored["ConvNet"][2][0], 2), "desc")
        return results

    def draw(self, present):
        """{name: evaluation.Views} of the present checkpoints, drawn from the
        submission's secret seed; sets self.test_images and self.protocol."""
        test_set = load_test_set(self.ctx.data_dir)
        fresh, fresh_note = self.fresh_set()
        key, secret = grading_key(self.ctx.cases_dir)
        files = {name: path for name, path in self.ctx.submission.files.items() if name in MODEL_FILES}
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
        report = architecture.readable(result.value)
        if report is not None:
            table = drawn(pictures.layer_table, name, report)
            shown = drawn(pictures.cost, name, report, self.settings)
            verdict.pictures.extend(item for item in (table, shown and shown[1]) if item)
            if shown:
                verdict.details.insert(0, "  " + shown[0])
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
        shown = drawn(pictures.filters, info)
        return CheckResult(1.0, summary, ([note] if note else []) + ([shown[0]] if shown else []),
                           [shown[1]] if shown else []), True

    def accuracy(self, name, result, labels):
        """(accuracy, problem text) or (None, why it was not measured)."""
        if not result.ok:
            return None, f"{name} could not predict the test images: {error_text(result)}"
        value, problem = accuracy.score_logits(result.value, labels)
        if value is not None:
            self.by_class[name] = drawn(pictures.by_class, name, result.value, labels)
        # For regrade's CSV and report: the scored accuracy, on the changed images.
        self.ctx.results.extra_data.setdefault("accuracy", {})[name] = round(value, 4)
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
        verdict = accuracy.judge_tier(name, value, threshold, self.test_images, lines)
        shown = self.by_class.get(name)
        if shown:
            verdict.details.append(shown[0])
            if name not in self.pictured:
                verdict.pictures.append(shown[1])
                self.pictured.add(name)
        return verdict


def _logits(result, count):
    """Whether a predict step returned logits for all count images."""
    return result.ok and isinstance(result.value, np.ndarray) and result.value.shape == (count, 10)
