"""Thresholds of the CNN part: the ``cnn:`` mapping of rubric.yaml, over
these defaults. Keys: convnet_accuracy_tiers (one accuracy per check
convnet_accuracy_1, _2, ...), fcnet_accuracy, convnet_weight_layers ([low,
high]), convnet_max_parameters, fcnet_max_parameters, convnet_max_multiply_adds,
fcnet_max_multiply_adds, convnet_max_activations, fcnet_max_activations (the
compute rule: per image, one forward pass), curve_fall (how much
held-out losses must drop), curve_margin (ConvNet's final held-out loss below FCNet's
by at least this), max_norm_statistics (values a model may hold in the running
statistics of its normalization layers, its only tensors beyond its layers'
parameters), and the integrity report's flags (integrity.py): integrity_max_drop,
integrity_max_excess, integrity_max_accuracy, integrity_max_fresh_drop,
integrity_max_test_over_train (accuracies as fractions), integrity_withhold (a model raising one of the flags honest
networks never raise earns no accuracy points until reviewed) and integrity_test
(also report it as a hidden 0-point test)."""
from pathlib import Path

import yaml

DEFAULTS = {
    "convnet_accuracy_tiers": [0.65, 0.70, 0.75],
    "fcnet_accuracy": 0.45,
    "convnet_weight_layers": [5, 8],
    "convnet_max_parameters": 1_000_000,
    "fcnet_max_parameters": 8_000_000,
    # The compute rule: what one image costs in a forward pass. Grading time
    # grows with both (multiply-adds for convolutions and linear layers,
    # activation elements for memory-bound layers and training memory), so
    # they bound what a legal submission costs on Gradescope's default machine.
    "convnet_max_multiply_adds": 200_000_000,
    "fcnet_max_multiply_adds": 10_000_000,
    "convnet_max_activations": 1_000_000,
    "fcnet_max_activations": 200_000,
    "curve_fall": 0.1,
    "curve_margin": 0.1,
    # State-dict hygiene: beyond its layers' parameters a model holds only the
    # running statistics of its normalization layers, at most this many values.
    "max_norm_statistics": 65_536,
    # The integrity report (instructors only, never a score): see integrity.py.
    "integrity_max_drop": 0.06,
    "integrity_max_excess": 0.015,
    "integrity_max_accuracy": 0.96,
    "integrity_max_fresh_drop": 0.20,
    "integrity_max_test_over_train": 0.06,
    "integrity_withhold": True,
    "integrity_test": False,
}


class SettingsError(ValueError):
    pass


def load_settings(rubric_path):
    """DEFAULTS updated with the ``cnn:`` mapping of the rubric file at
    rubric_path (when there is one), for the staff tools; a grade gets them
    from its one reading of the rubric (rubric.read_rubric, read_settings)."""
    data = yaml.safe_load(Path(rubric_path).read_text()) if rubric_path else {}
    return read_settings((data or {}).get("cnn"), rubric_path)


def read_settings(given, where):
    """DEFAULTS updated with `given`, the rubric's ``cnn:`` mapping (None:
    none); where names the rubric file in the SettingsError."""
    where = f"{where}: cnn settings (read by autograder/parts/cnn/settings.py)"
    given = given or {}
    if not isinstance(given, dict):
        raise SettingsError(f"{where}: expected a mapping with keys {', '.join(DEFAULTS)}")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise SettingsError(f"{where}: unknown keys {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    settings = dict(DEFAULTS, **given)
    tiers = settings["convnet_accuracy_tiers"]
    if not (isinstance(tiers, list) and tiers and all(_fraction(t) for t in tiers)):
        raise SettingsError(f"{where}: convnet_accuracy_tiers must be a list of accuracies in "
                            f"(0, 1], got {tiers!r}")
    if not _fraction(settings["fcnet_accuracy"]):
        raise SettingsError(f"{where}: fcnet_accuracy must be in (0, 1], got {settings['fcnet_accuracy']!r}")
    layers = settings["convnet_weight_layers"]
    if not (isinstance(layers, list) and len(layers) == 2 and all(isinstance(n, int) for n in layers)
            and 1 <= layers[0] <= layers[1]):
        raise SettingsError(f"{where}: convnet_weight_layers must be [low, high], got {layers!r}")
    for key in ("convnet_max_parameters", "fcnet_max_parameters", "convnet_max_multiply_adds",
                "fcnet_max_multiply_adds", "convnet_max_activations", "fcnet_max_activations",
                "max_norm_statistics"):
        if not isinstance(settings[key], int) or settings[key] <= 0:
            raise SettingsError(f"{where}: {key} must be a positive integer, got {settings[key]!r}")
    for key in ("curve_fall", "curve_margin"):
        if isinstance(settings[key], bool) or not isinstance(settings[key], (int, float)) or settings[key] < 0:
            raise SettingsError(f"{where}: {key} must be a number >= 0, got {settings[key]!r}")
    for key in ("integrity_max_drop", "integrity_max_excess", "integrity_max_accuracy",
                "integrity_max_fresh_drop", "integrity_max_test_over_train"):
        if not _fraction(settings[key]):
            raise SettingsError(f"{where}: {key} must be an accuracy in (0, 1], got {settings[key]!r}")
    for key in ("integrity_withhold", "integrity_test"):
        if not isinstance(settings[key], bool):
            raise SettingsError(f"{where}: {key} must be true or false, got {settings[key]!r}")
    return settings


def _fraction(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
