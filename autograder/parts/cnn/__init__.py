"""The CNN part: grades the PyTorch half of a submission (models.py,
convnet.pt, fcnet.pt) without importing it.

Three worker jobs (autograder/worker/torch_steps.py runs their steps): the first
inspects both classes, loads each checkpoint strictly and predicts the
fixed half of the test set (data_protocol.TEST_IMAGES), each image changed in a
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

This module is the part's face (see autograder/parts/__init__.py); the steps
are models_step.py (the first job, its checks, the integrity review) and
curves_step.py (the training job and the curve checks); jobs.py builds the
jobs, data_protocol.py holds the fixed recipes, settings.py reads the part's
rubric settings.
"""
from autograder.parts import CheckResult
from autograder.parts.cnn.curves_step import CURVE_CHECKS, grade_curves
from autograder.parts.cnn.jobs import MODEL_FILES, MODELS_FILE, require_torch
from autograder.parts.cnn.models_step import ACCURACY_CHECKS, TIERS, WITHHELD, ModelsGrading, check_tiers
from autograder.parts.cnn.settings import load_settings, read_settings

TITLE = "PyTorch models"
FILES = MODEL_FILES

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


def grade(ctx, check_ids):
    """{check: CheckResult} of the CNN checks asked for, with ctx.settings
    (the rubric's cnn settings; None: the defaults)."""
    settings = ctx.settings if ctx.settings is not None else load_settings(None)
    require_torch(ctx.sandbox)
    if MODELS_FILE not in ctx.submission.files:
        message = ctx.submission.missing_message(MODELS_FILE)
        return {check: CheckResult(0.0, message) for check in check_ids}
    check_tiers(settings, check_ids)
    graded = ModelsGrading(ctx, settings, check_ids)
    results = graded.run()
    if any(check in check_ids for check in CURVE_CHECKS):
        results.update(grade_curves(ctx, settings, graded.architecture_ok, unbuilt=graded.unbuilt))
    return {check: result for check, result in results.items() if check in check_ids}


__all__ = ["TITLE", "FILES", "CHECKS", "grade", "read_settings", "ACCURACY_CHECKS", "CURVE_CHECKS",
           "TIERS", "WITHHELD", "grade_curves"]
