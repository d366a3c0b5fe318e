"""Test-set accuracy of the checkpoints, scored in the grader from the
logits the worker returns (the labels never leave the grader), on test
images each changed in a way that keeps its class (evaluation.py)."""
import numpy as np

from autograder.parts import CheckResult


def predictions(logits):
    """argmax per row; -1 where the row is not finite (never right, never agreeing)."""
    finite = np.all(np.isfinite(logits), axis=1)
    answers = np.argmax(np.where(np.isfinite(logits), logits, -np.inf), axis=1)
    return np.where(finite, answers, -1)


def score_logits(logits, labels):
    """(accuracy, problem text or None). Rows with NaN/inf logits count as wrong."""
    if not isinstance(logits, np.ndarray) or logits.shape != (len(labels), 10):
        shape = getattr(logits, "shape", type(logits).__name__)
        return 0.0, f"the predictions have shape {shape}, expected ({len(labels)}, 10)"
    said = predictions(logits)
    problem = None
    if (said < 0).any():
        problem = (f"{int((said < 0).sum())} of {len(labels)} images got NaN or infinite logits "
                   f"(counted as wrong)")
    return float((said == labels).mean()), problem


def judge_tier(name, accuracy, threshold, images, extra_lines=()):
    """The tier check of one model: accuracy measured on `images` changed test images."""
    passed = accuracy >= threshold
    verdict = "reaches" if passed else "is below"
    return CheckResult(1.0 if passed else 0.0,
                       f"{name} test accuracy {accuracy:.2%} {verdict} {threshold:.0%} "
                       f"({images:,} fixed CIFAR-10 test images, each with a small change that keeps "
                       f"its class)", list(extra_lines))
