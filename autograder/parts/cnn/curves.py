"""The FCNet-vs-ConvNet loss curves: judging them against each other and
against the reference band, and drawing them."""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autograder.parts import CheckResult
from autograder.parts.cnn.protocol import CHANCE_LOSS, CURVE_PROTOCOL, SMOOTHING_WINDOW, smoothed

BAND_PATH = Path(__file__).resolve().parents[2] / "reference" / "curve_band.json"
BAND_FORMAT = 1
PLOT_NAME = "cnn_curves.png"


class BandError(Exception):
    """The shipped reference band is missing or does not match the protocol."""


@dataclass
class Curve:
    """One training run as the worker reported it."""
    name: str
    train_loss: np.ndarray
    val_step: np.ndarray
    val_loss: np.ndarray
    diverged_at_step: int

    @classmethod
    def from_value(cls, name, value):
        """A Curve from worker_torch.train_curve's result, or None when it is malformed."""
        try:
            curve = cls(name, np.asarray(value["train_loss"], dtype=np.float64),
                        np.asarray(value["val_step"], dtype=np.int64),
                        np.asarray(value["val_loss"], dtype=np.float64),
                        int(value["diverged_at_step"]))
        except (KeyError, TypeError, ValueError):
            return None
        if curve.train_loss.ndim != 1 or curve.val_step.shape != curve.val_loss.shape:
            return None
        return curve

    @property
    def final_val(self):
        return float(self.val_loss[-1]) if len(self.val_loss) else float("nan")

    def problem(self, expected_steps):
        """Why this run cannot be compared (diverged, NaN, too short), or None."""
        if self.diverged_at_step:
            return (f"{self.name}'s training loss became NaN or infinite at step "
                    f"{self.diverged_at_step} of {expected_steps}: the model diverges with the "
                    f"provided training loop (check the forward pass, initialisation, and any "
                    f"scaling of the logits)")
        if len(self.train_loss) != expected_steps or not np.all(np.isfinite(self.train_loss)):
            return f"{self.name}'s run stopped after {len(self.train_loss)} of {expected_steps} steps"
        if not len(self.val_loss) or not np.all(np.isfinite(self.val_loss)):
            return f"{self.name}'s held-out loss is NaN or infinite"
        return None

    def describe(self):
        points = ", ".join(f"{step}: {loss:.3f}" for step, loss in zip(self.val_step, self.val_loss))
        start, end = smoothed(self.train_loss, [SMOOTHING_WINDOW, len(self.train_loss)])
        return (f"{self.name}: smoothed training loss {start:.3f} -> {end:.3f}; "
                f"held-out loss by step {{{points}}}")


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
                        f"protocol.py CURVE_PROTOCOL; run `python -m autograder calibrate-curves`")
    return band


def judge_fall(curves, settings, steps):
    """Both curves fall: smoothed training loss drops by curve_fall and the
    final held-out loss is curve_fall below chance. Half the points each."""
    fall = settings["curve_fall"]
    lines, passed = [], 0
    for curve in curves:
        problem = curve.problem(steps)
        if problem:
            lines.append(problem)
            continue
        start, end = smoothed(curve.train_loss, [SMOOTHING_WINDOW, len(curve.train_loss)])
        wrong = []
        if not end <= start - fall:
            wrong.append(f"smoothed training loss went from {start:.3f} to {end:.3f} (needs a drop "
                         f"of at least {fall:g})")
        if not curve.final_val <= CHANCE_LOSS - fall:
            wrong.append(f"final held-out loss {curve.final_val:.3f} is not below "
                         f"{CHANCE_LOSS - fall:.3f} (chance level ln 10 = {CHANCE_LOSS:.3f})")
        if wrong:
            lines.append(f"{curve.name} does not learn: " + "; ".join(wrong))
        else:
            passed += 1
            lines.append(f"{curve.name} learns: smoothed training loss {start:.3f} -> {end:.3f}, "
                         f"final held-out loss {curve.final_val:.3f}")
    summary = ("both loss curves fall" if passed == len(curves)
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
    """Share of the ConvNet's held-out points and smoothed training-loss
    points that lie inside the reference band."""
    problem = convnet.problem(steps)
    if problem:
        return CheckResult(0.0, problem)
    inside, lines = 0, []
    held = band["held_out"]
    actual = dict(zip(convnet.val_step.tolist(), convnet.val_loss.tolist()))
    train_band = band["train_smoothed"]
    train_actual = smoothed(convnet.train_loss, train_band["steps"])
    rows = [("held-out loss", step, actual.get(step, float("nan")), low, high)
            for step, low, high in zip(held["steps"], held["low"], held["high"])]
    rows += [("smoothed training loss", step, value, low, high)
             for step, value, low, high in zip(train_band["steps"], train_actual,
                                               train_band["low"], train_band["high"])]
    for what, step, value, low, high in rows:
        ok = low <= value <= high
        inside += ok
        if not ok:
            side = "above" if value > high else "below" if value < low else "missing from"
            lines.append(f"  step {step}: {what} {value:.3f} is {side} the band [{low:.3f}, {high:.3f}]")
    summary = (f"ConvNet curve inside the reference band at {inside} of {len(rows)} points "
               f"(reference ConvNet over {len(band['seeds'])} seeds, wide slack)")
    lines.append("  band of the held-out loss by step: {" + ", ".join(
        f"{step}: [{low:.3f}, {high:.3f}]" for step, low, high in zip(held["steps"], held["low"], held["high"]))
        + "}")
    return CheckResult(inside / len(rows), summary, lines)


def plot(path, fcnet, convnet, band):
    """PNG of both runs (smoothed training loss, held-out points) with the
    reference band; returns path."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5), dpi=100)
    if band is not None:
        held, train = band["held_out"], band["train_smoothed"]
        axis.fill_between(held["steps"], held["low"], held["high"], color="tab:blue", alpha=0.15,
                          label="reference ConvNet band (held-out)")
        axis.fill_between(train["steps"], train["low"], train["high"], color="tab:blue", alpha=0.07,
                          hatch="//", label="reference ConvNet band (training, smoothed)")
    for curve, color in ((fcnet, "tab:orange"), (convnet, "tab:blue")):
        if curve is None:
            continue
        steps = np.arange(1, len(curve.train_loss) + 1)
        axis.plot(steps, smoothed(curve.train_loss, steps), color=color, linewidth=1,
                  label=f"{curve.name} training loss (mean of {SMOOTHING_WINDOW} steps)")
        axis.plot(curve.val_step, curve.val_loss, "o--", color=color, label=f"{curve.name} held-out loss")
    axis.set_xlabel("training step")
    axis.set_ylabel("cross-entropy loss")
    axis.set_title("Your FCNet vs ConvNet on the grader's fixed subset")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
