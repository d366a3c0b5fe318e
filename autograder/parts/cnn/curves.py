"""The FCNet-vs-ConvNet loss curves: judging them against each other and
against the reference band, and drawing them."""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autograder.layout import PACKAGE
from autograder.parts import CheckResult
from autograder.parts.cnn.data_protocol import CHANCE_LOSS, CURVE_PROTOCOL, SMOOTHING_WINDOW, smoothed

BAND_PATH = PACKAGE / "reference" / "curve_band.json"
BAND_FORMAT = 2
PLOT_NAME = "cnn_curves.png"


class BandError(Exception):
    """The shipped reference band is missing or does not match the protocol."""


def held_out_scores(logits, labels):
    """(mean cross-entropy, accuracy) of each evaluation's logits (E, N, 10)
    against the labels (N,), in float64; NaN where a logit is not finite."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    with np.errstate(invalid="ignore", over="ignore"):
        peak = logits.max(axis=2, keepdims=True)
        log_norm = np.log(np.exp(logits - peak).sum(axis=2)) + peak[..., 0]
        chosen = np.take_along_axis(logits, labels[None, :, None], axis=2)[..., 0]
        losses = (log_norm - chosen).mean(axis=1)
    finite = np.isfinite(logits).all(axis=(1, 2))
    losses[~finite] = np.nan
    accuracy = (logits.argmax(axis=2) == labels[None, :]).mean(axis=1)
    return losses, accuracy


@dataclass
class Curve:
    """One training run: the training loss as the worker's loop reported it
    (shown, never scored: student code ran in that process and could have
    changed it) and the held-out loss the grader computed itself from the
    returned logits and labels the worker never saw."""
    name: str
    train_loss: np.ndarray
    val_step: np.ndarray
    val_loss: np.ndarray
    diverged_at_step: int
    val_accuracy: np.ndarray = None

    @classmethod
    def from_value(cls, name, value, labels, eval_steps):
        """A Curve from worker_torch.train_curve's result scored against the
        held-out labels, or None when the result is malformed: wrong shapes,
        or other evaluation steps than eval_steps (the protocol's) for a run
        that did not diverge."""
        try:
            train_loss = np.asarray(value["train_loss"], dtype=np.float64)
            val_step = np.asarray(value["val_step"], dtype=np.int64)
            logits = value["val_logits"]
            diverged = int(value["diverged_at_step"])
        except (KeyError, TypeError, ValueError):
            return None
        if (train_loss.ndim != 1 or val_step.ndim != 1 or not isinstance(logits, np.ndarray)
                or logits.shape != (len(val_step), len(labels), 10)):
            return None
        if not diverged and val_step.tolist() != list(eval_steps):
            return None
        val_loss, val_accuracy = held_out_scores(logits, labels)
        return cls(name, train_loss, val_step, val_loss, diverged, val_accuracy)

    @property
    def final_val(self):
        return float(self.val_loss[-1]) if len(self.val_loss) else float("nan")

    def problem(self, expected_steps):
        """Why this run cannot be compared (diverged, NaN, incomplete), or None."""
        if self.diverged_at_step:
            return (f"{self.name}'s training loss became NaN or infinite at step "
                    f"{self.diverged_at_step} of {expected_steps}: the model diverges with the "
                    f"provided training loop (check the forward pass, initialisation, and any "
                    f"scaling of the logits)")
        if len(self.train_loss) != expected_steps or not len(self.val_step) or self.val_step[-1] != expected_steps:
            return f"{self.name}'s run stopped after {len(self.train_loss)} of {expected_steps} steps"
        if not np.all(np.isfinite(self.val_loss)):
            return f"{self.name}'s held-out logits are NaN or infinite"
        return None

    def describe(self):
        points = ", ".join(f"{step}: {loss:.3f}" for step, loss in zip(self.val_step, self.val_loss))
        text = f"{self.name}: held-out loss by step {{{points}}}"
        if self.val_accuracy is not None and len(self.val_accuracy):
            text += f", final held-out accuracy {self.val_accuracy[-1]:.1%}"
        if len(self.train_loss) >= SMOOTHING_WINDOW:
            start, end = smoothed(self.train_loss, [SMOOTHING_WINDOW, len(self.train_loss)])
            text += f"; training loss as your run reported it (not scored) {start:.3f} -> {end:.3f}"
        return text


def load_band(path=BAND_PATH, protocol=CURVE_PROTOCOL):
    """The reference band document; BandError when it is missing or was
    calibrated with another protocol."""
    try:
        band = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise BandError(f"{path}: cannot read the reference band ({exc}); run "
                        f"`python -m autograder calibrate-curves`") from None
    if band.get("format") != BAND_FORMAT or band.get("protocol") != protocol:
        raise BandError(f"{path}: calibrated with another protocol than autograder/parts/cnn/"
                        f"data_protocol.py CURVE_PROTOCOL; run `python -m autograder calibrate-curves`")
    return band


def judge_fall(curves, settings, steps):
    """Both models learn: the held-out loss drops by curve_fall from its value
    before training and ends curve_fall below chance. Half the points each."""
    fall = settings["curve_fall"]
    lines, passed = [], 0
    for curve in curves:
        problem = curve.problem(steps)
        if problem:
            lines.append(problem)
            continue
        first, last = float(curve.val_loss[0]), curve.final_val
        wrong = []
        if not last <= first - fall:
            wrong.append(f"held-out loss went from {first:.3f} before training to {last:.3f} "
                         f"(needs a drop of at least {fall:g})")
        if not last <= CHANCE_LOSS - fall:
            wrong.append(f"final held-out loss {last:.3f} is not below {CHANCE_LOSS - fall:.3f} "
                         f"(chance level ln 10 = {CHANCE_LOSS:.3f})")
        if wrong:
            lines.append(f"{curve.name} does not learn: " + "; ".join(wrong))
        else:
            passed += 1
            lines.append(f"{curve.name} learns: held-out loss {first:.3f} before training, "
                         f"{last:.3f} after {steps} steps")
    summary = ("both models learn" if passed == len(curves)
               else next(line for line in lines if "learns:" not in line))
    return CheckResult(passed / len(curves), summary, [l for l in lines if l != summary])


def _problems(fcnet, convnet, steps):
    return [p for p in (fcnet.problem(steps), convnet.problem(steps)) if p]


def judge_margin(fcnet, convnet, settings, steps):
    problems = _problems(fcnet, convnet, steps)
    if problems:
        return CheckResult(0.0, "not comparable: " + problems[0], problems[1:])
    margin = settings["curve_margin"]
    gap = fcnet.final_val - convnet.final_val
    text = (f"final held-out loss: ConvNet {convnet.final_val:.3f}, FCNet {fcnet.final_val:.3f} "
            f"(ConvNet lower by {gap:.3f}; needed: {margin:g})")
    return CheckResult(1.0 if gap >= margin else 0.0, text)


def area(curve):
    """Area under the held-out loss curve (trapezoids over the evaluation steps)."""
    losses, steps = curve.val_loss, curve.val_step.astype(np.float64)
    return float(np.sum((losses[1:] + losses[:-1]) / 2 * np.diff(steps)))


def judge_area(fcnet, convnet, steps):
    problems = _problems(fcnet, convnet, steps)
    if problems:
        return CheckResult(0.0, "not comparable: " + problems[0], problems[1:])
    if list(fcnet.val_step) != list(convnet.val_step):
        return CheckResult(0.0, "the two runs were evaluated at different steps")
    conv_area, fc_area = area(convnet), area(fcnet)
    steps = f"steps {fcnet.val_step[0]}-{fcnet.val_step[-1]}"
    text = (f"area under the held-out loss curve ({steps}): ConvNet {conv_area:.1f}, "
            f"FCNet {fc_area:.1f}")
    return CheckResult(1.0 if conv_area < fc_area else 0.0, text)


def judge_band(convnet, band, steps):
    """Share of the ConvNet's held-out points (after training began) that lie
    inside the reference band."""
    problem = convnet.problem(steps)
    if problem:
        return CheckResult(0.0, problem)
    held = band["held_out"]
    actual = dict(zip(convnet.val_step.tolist(), convnet.val_loss.tolist()))
    rows = [(step, actual.get(step, float("nan")), low, high)
            for step, low, high in zip(held["steps"], held["low"], held["high"]) if step > 0]
    inside, lines = 0, []
    for step, value, low, high in rows:
        ok = low <= value <= high
        inside += ok
        if not ok:
            side = "above" if value > high else "below" if value < low else "missing from"
            lines.append(f"  step {step}: held-out loss {value:.3f} is {side} the band "
                         f"[{low:.3f}, {high:.3f}]")
    summary = (f"ConvNet's held-out loss inside the reference band at {inside} of {len(rows)} "
               f"evaluations (reference ConvNet over {len(band['seeds'])} seeds, wide slack)")
    lines.append("  band of the held-out loss by step: {" + ", ".join(
        f"{step}: [{low:.3f}, {high:.3f}]" for step, _, low, high in rows) + "}")
    return CheckResult(inside / len(rows), summary, lines)


def figure(fcnet, convnet, band, size=(8, 5)):
    """A matplotlib figure of both runs (smoothed training loss, held-out
    points) with the reference band."""
    from autograder.pictures.draw import pyplot
    plt = pyplot()
    drawn, axis = plt.subplots(figsize=size, dpi=100)
    if band is not None:
        held = band["held_out"]
        axis.fill_between(held["steps"], held["low"], held["high"], color="tab:blue", alpha=0.15,
                          label="reference ConvNet band (held-out)")
    for curve, color in ((fcnet, "tab:orange"), (convnet, "tab:blue")):
        if curve is None:
            continue
        steps = np.arange(1, len(curve.train_loss) + 1)
        axis.plot(steps, smoothed(curve.train_loss, steps), color=color, linewidth=1, alpha=0.6,
                  label=f"{curve.name} training loss as reported (mean of {SMOOTHING_WINDOW} steps)")
        axis.plot(curve.val_step, curve.val_loss, "o--", color=color, label=f"{curve.name} held-out loss")
    axis.set_xlabel("training step")
    axis.set_ylabel("cross-entropy loss")
    axis.set_title("Your FCNet vs ConvNet on the grader's fixed subset")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    drawn.tight_layout()
    return drawn


def plot(path, fcnet, convnet, band):
    """PNG file of figure(); returns path."""
    from autograder.pictures.draw import pyplot
    drawn = figure(fcnet, convnet, band)
    drawn.savefig(path)
    pyplot().close(drawn)
    return path


def picture(fcnet, convnet, band):
    """The curves as a small inline picture (autograder/pictures), its text
    line the held-out losses of both runs."""
    from autograder.pictures import Picture
    from autograder.pictures.draw import png
    text = "; ".join(curve.describe().split(";")[0] for curve in (fcnet, convnet) if curve is not None)
    shown = "held-out loss of your FCNet (orange) and ConvNet (blue) over the reference band"
    return Picture(title="Loss curves: " + shown, png=png(figure(fcnet, convnet, band, size=(7, 4))),
                   text=text or shown)
