"""What README.md promises about the rubric, compared with the rubric itself
(a TA tool: not shipped to students or to Gradescope).

The README's **Rubric** paragraph states part totals, group subtotals and
thresholds in prose ("numpy layers 60 points (convolution 17, ...)"). A TA
who changes a weight or a threshold in rubric.yaml gets a warning for each
figure that no longer holds, never a failure: the rubric is theirs to change,
and the prose is theirs to update.
"""
import re
from pathlib import Path

from autograder.rubric import RUBRIC_PATH, load_rubric, load_settings_of

from autograder.layout import README
PARAGRAPH = "**Rubric**"
NUMBER = r"(\d+(?:\.\d+)?)"

# (what the README calls it, pattern with one group, what the rubric says):
# checks are rubric check ids; "part:NAME" is a whole part (TA checks included).
POINTS = [
    ("numpy layers", rf"numpy layers {NUMBER} points", ["part:layers"]),
    ("convolution", rf"convolution {NUMBER}", ["conv_forward", "conv_backward"]),
    ("pooling", rf"pooling {NUMBER}", ["max_pool_forward", "max_pool_backward", "avg_pool_forward",
                                       "avg_pool_backward"]),
    ("batch norm", rf"batch norm {NUMBER}", ["batchnorm_forward_train", "batchnorm_running_stats",
                                             "batchnorm_forward_test", "batchnorm_backward",
                                             "spatial_batchnorm_forward", "spatial_batchnorm_backward"]),
    ("dropout", rf"dropout {NUMBER}", ["dropout_forward", "dropout_backward"]),
    ("CNN part", rf"CNN part {NUMBER}", ["part:cnn"]),
    ("architecture and compute rule", rf"architecture and compute rule {NUMBER}",
     ["convnet_architecture", "fcnet_architecture"]),
    ("checkpoints", rf"checkpoints {NUMBER}", ["convnet_checkpoint", "fcnet_checkpoint"]),
    ("accuracy", rf"accuracy {NUMBER}:", ["convnet_accuracy_1", "convnet_accuracy_2", "convnet_accuracy_3",
                                          "fcnet_accuracy"]),
    ("loss curves", rf"loss curves {NUMBER}", ["curves_fall", "curve_convnet_below_fcnet",
                                               "curve_convnet_area", "curve_convnet_band"]),
]
THRESHOLDS = [
    ("the ConvNet accuracy tiers", r"ConvNet (\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)*)%",
     lambda settings: "/".join(f"{100 * t:g}" for t in settings["convnet_accuracy_tiers"])),
    ("the FCNet accuracy threshold", rf"FCNet {NUMBER}%",
     lambda settings: f"{100 * settings['fcnet_accuracy']:g}"),
]


def rubric_paragraph(text):
    """The README's paragraph that starts with PARAGRAPH, on one line, or None."""
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.lstrip().startswith(PARAGRAPH):
            return " ".join(paragraph.split())
    return None


def promise_warnings(readme=README, rubric=RUBRIC_PATH, ta_points=None):
    """One line per figure of the README's rubric paragraph that the rubric
    no longer gives (or that the paragraph no longer states). ta_points:
    {part: points of the TA checks of that part}, counted in part totals."""
    readme = Path(readme)
    entries = load_rubric(rubric)
    settings = load_settings_of(rubric)
    where = f"{readme.name} ({PARAGRAPH} paragraph)"
    try:
        paragraph = rubric_paragraph(readme.read_text(encoding="utf-8"))
    except OSError as exc:
        return [f"{readme}: cannot read it ({exc}); the rubric's totals were not compared with it"]
    if paragraph is None:
        return [f"{readme}: no paragraph starting with {PARAGRAPH}; the rubric's totals were not "
                "compared with it"]
    warnings = []

    def compare(label, pattern, actual, unit=""):
        found = re.search(pattern, paragraph)
        if found is None:
            warnings.append(f"{where} no longer states {label}; it is {actual}{unit} in {Path(rubric).name}")
        elif _differs(found.group(1), actual):
            warnings.append(f"{where} says {label} {found.group(1)}{unit}; {Path(rubric).name} now "
                            f"gives {actual}{unit}: update {readme.name}, or ignore this if it is meant")

    for label, pattern, members in POINTS:
        total = 0.0
        for member in members:
            if member.startswith("part:"):
                part = member.split(":", 1)[1]
                total += sum(e.points for e in entries if e.part == part) + (ta_points or {}).get(part, 0)
            else:
                total += sum(e.points for e in entries if e.check == member)
        compare(label, pattern, f"{total:g}", " points")
    for label, pattern, value in THRESHOLDS:
        compare(label, pattern, value(settings), "%")
    return warnings


def _differs(stated, actual):
    try:
        return [float(v) for v in stated.split("/")] != [float(v) for v in actual.split("/")]
    except ValueError:
        return stated != actual
