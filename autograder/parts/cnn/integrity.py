"""The integrity report, for the course staff only (results.json's top-level
``extra_data.integrity``, the grader's console, and optionally a hidden
0-point test): whether a checkpoint's accuracy looks bought with the public
test labels rather than learned. It never changes a score.

A network that learned CIFAR-10 answers a test image and its slightly
changed copy (evaluation.TRANSFORMS) alike, right or wrong, and loses a
point or two on the changed copies. A network that answers from a copy of
the test set (a table of images or of their features, beside its layers or
inside one) knows each original image exactly and its changed copies only
as far as its matching reaches: it is right on the originals far more often
than it agrees with itself across the change. The report flags, per model (the limits are rubric settings, cnn: integrity_*):

- drop: clean accuracy minus changed accuracy on the same images further
  from 0 than ``integrity_max_drop``, either way (a model far better on the
  changed copies than on the originals recognizes the originals too);
- unmeasured: the changed images were predicted but the unchanged ones, in
  the second worker process, were not (an error, or predictions of the wrong
  shape; not when the grade's time budget ran out): a network answers both
  alike, a table may refuse the images it knows;
- excess: clean accuracy minus the clean-vs-changed agreement above
  ``integrity_max_excess`` (honest networks agree with themselves more often
  than they are right, so theirs is negative);
- implausible: clean or changed accuracy at or above
  ``integrity_max_accuracy``, beyond what networks within the rules reach;
- fresh: clean accuracy minus accuracy on CIFAR-10.1 (new images no table of
  the public test set holds; when the grader has them) above
  ``integrity_max_fresh_drop``, where published models lose 3-15 points;
- seen: clean accuracy minus accuracy on training images above
  ``integrity_max_test_over_train``: a network that learned from the
  training set does at least as well on it as on the test set; one that
  learned from the test set (trained on it instead) does better there;
- tensors: a tensor the architecture rules do not allow, large enough to
  hold a table (TABLE_VALUES values or more).

drop, unmeasured, implausible and fresh are far from anything an honest network shows
(README, "The accuracy protocol", has the measured margins): with the rubric's
integrity_withhold, a model raising one of them earns no accuracy points and
no leaderboard entry until the staff have looked (its feedback says so, and
nothing more). excess, which a network that answers at random at test time
(a functional dropout left on) can raise too, only flags; so does seen, whose
sampling error (about 2 points on 1,000 training and 1,500 test images) is
not small enough beside the honest models that come closest to it (a
well-regularized FCNet: 0.7 points better on training images).
"""
import numpy as np

from autograder.parts.cnn.accuracy import predictions
from autograder.parts.cnn.evaluation import FRESH, TEST, TRAIN

TABLE_VALUES = 10_000
WITHHOLDING = ("drop", "unmeasured", "implausible", "fresh")


def figures(changed_logits, changed, unchanged_logits=None, unchanged=None):
    """The figures of one model: changed/clean/paired accuracy, agreement,
    fresh and training-image accuracy (each with its image count). Views:
    evaluation.View."""
    said = predictions(changed_logits)
    out = {"transformed_accuracy": _mean(said == changed.labels), "transformed_images": len(said)}
    if unchanged_logits is None:
        return out
    clean = predictions(unchanged_logits)
    test = unchanged.source == TEST
    if test.any():
        where = np.empty(int(changed.index.max()) + 1, dtype=np.int64)
        where[changed.index] = np.arange(len(changed.index))
        paired = said[where[unchanged.index[test]]]
        right = clean[test] == unchanged.labels[test]
        out.update({
            "clean_accuracy": _mean(right),
            "clean_images": int(test.sum()),
            "paired_transformed_accuracy": _mean(paired == unchanged.labels[test]),
            "agreement": _mean((clean[test] == paired) & (paired >= 0)),
        })
        out["drop"] = round(out["clean_accuracy"] - out["paired_transformed_accuracy"], 4)
        out["excess"] = round(out["clean_accuracy"] - out["agreement"], 4)
    for kind, key in ((FRESH, "fresh"), (TRAIN, "train")):
        rows = unchanged.source == kind
        if rows.any():
            out[f"{key}_accuracy"] = _mean(clean[rows] == unchanged.labels[rows])
            out[f"{key}_images"] = int(rows.sum())
    return out


def _mean(flags):
    return round(float(np.mean(flags)), 4) if len(flags) else 0.0


def flags(found, settings):
    """Which flags a model's figures raise: a subset of drop, unmeasured,
    excess, implausible, fresh, seen."""
    out = []
    clean = found.get("clean_accuracy")
    if clean is not None and abs(found["drop"]) > settings["integrity_max_drop"]:
        out.append("drop")
    if clean is None and "error" in found and not found.get("out_of_time"):
        out.append("unmeasured")
    if clean is not None and found["excess"] > settings["integrity_max_excess"]:
        out.append("excess")
    if max(found.get("clean_accuracy", 0.0), found["transformed_accuracy"]) >= settings["integrity_max_accuracy"]:
        out.append("implausible")
    fresh = found.get("fresh_accuracy")
    if clean is not None and fresh is not None and clean - fresh > settings["integrity_max_fresh_drop"]:
        out.append("fresh")
    train = found.get("train_accuracy")
    if clean is not None and train is not None and clean - train > settings["integrity_max_test_over_train"]:
        out.append("seen")
    return out


def withheld(found, settings):
    """Whether a model's accuracy waits for the staff (integrity_withhold and a WITHHOLDING flag)."""
    return settings["integrity_withhold"] and any(kind in WITHHOLDING for kind in flags(found, settings))


def reasons(name, found, settings):
    """Why model `name` is flagged, one sentence per flag (none: not flagged)."""
    texts = {
        "drop": lambda: (f"{found['clean_accuracy']:.1%} right on {found['clean_images']:,} unchanged test "
                         f"images but {found['paired_transformed_accuracy']:.1%} on their changed copies (a "
                         f"{'drop' if found['drop'] > 0 else 'gain'} of {abs(found['drop']):.1%}; honest "
                         f"networks lose 1-3 points, the limit is {settings['integrity_max_drop']:.0%} "
                         f"either way)"),
        "unmeasured": lambda: (f"predicted its {found['transformed_images']:,} changed test images but not the "
                               f"unchanged ones in a second process ({found['error']}); a network answers "
                               f"both alike"),
        "excess": lambda: (f"right on {found['clean_accuracy']:.1%} of the unchanged images but answers them "
                           f"and their changed copies alike on only {found['agreement']:.1%} (honest networks "
                           f"agree with themselves more often than they are right; the limit is "
                           f"{settings['integrity_max_excess']:.1%} the other way)"),
        "implausible": lambda: (f"{max(found.get('clean_accuracy', 0.0), found['transformed_accuracy']):.1%} "
                                f"right on the test images, at or above "
                                f"{settings['integrity_max_accuracy']:.0%}, beyond what networks within the "
                                f"rules reach"),
        "fresh": lambda: (f"{found['clean_accuracy']:.1%} on the CIFAR-10 test images but "
                          f"{found['fresh_accuracy']:.1%} on {found['fresh_images']:,} CIFAR-10.1 images "
                          f"(published models lose 3-15 points; the limit is "
                          f"{settings['integrity_max_fresh_drop']:.0%})"),
        "seen": lambda: (f"{found['clean_accuracy']:.1%} on the CIFAR-10 test images but "
                         f"{found['train_accuracy']:.1%} on {found['train_images']:,} training images (a network "
                         f"that learned from the training set does at least as well there; trained on the test "
                         f"set? the limit is {settings['integrity_max_test_over_train']:.0%} more on the test "
                         f"images)"),
    }
    return [f"{name}: {texts[kind]()}" for kind in flags(found, settings)]


def tensor_reasons(name, text, largest):
    """A flag reason when model `name` holds a tensor the rules do not allow
    that is large enough for a table (TABLE_VALUES values or more)."""
    if largest < TABLE_VALUES:
        return []
    return [f"{name} holds tensors beyond what the architecture rules allow, the largest with "
            f"{largest:,} values: {'; '.join(text.splitlines())}"]


def report(models, found_reasons, protocol, withheld_models=()):
    """extra_data['integrity']: {flagged, reasons, withheld (models whose
    accuracy points wait for the staff), models: {name: figures}, protocol}."""
    return {"flagged": bool(found_reasons), "reasons": list(found_reasons), "withheld": list(withheld_models),
            "models": models, "protocol": protocol}


def describe(integrity):
    """The report as text lines (console and the hidden test's output)."""
    lines = [f"FLAGGED for review: {len(integrity['reasons'])} reason(s)" if integrity["flagged"]
             else "not flagged"]
    lines += [f"  - {reason}" for reason in integrity["reasons"]]
    if integrity.get("withheld"):
        lines.append(f"  accuracy points and leaderboard entry withheld until reviewed: "
                     f"{', '.join(integrity['withheld'])} (rubric cnn.integrity_withhold)")
    for name, found in integrity["models"].items():
        parts = [f"changed {found['transformed_accuracy']:.2%} ({found['transformed_images']:,} images)"]
        if "clean_accuracy" in found:
            parts.append(f"unchanged {found['clean_accuracy']:.2%} ({found['clean_images']:,}), same images "
                         f"changed {found['paired_transformed_accuracy']:.2%}, agreement {found['agreement']:.2%}")
        if "train_accuracy" in found:
            parts.append(f"training images {found['train_accuracy']:.2%} ({found['train_images']:,})")
        if "fresh_accuracy" in found:
            parts.append(f"CIFAR-10.1 {found['fresh_accuracy']:.2%} ({found['fresh_images']:,})")
        if "error" in found:
            parts.append(found["error"])
        lines.append(f"  {name}: " + "; ".join(parts))
    protocol = integrity.get("protocol", {})
    if protocol:
        lines.append("  " + ", ".join(f"{key}: {value}" for key, value in protocol.items()))
    return lines
