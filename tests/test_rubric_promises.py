"""Rubric edits are safe (issue #13): names follow the thresholds of the
rubric they are loaded from, and totals that part ways with what README.md
promises are warnings, never failures."""
import warnings

import pytest
import yaml

from autograder.authoring import handout
from autograder.authoring.promises import promise_warnings
from autograder.rubric import RUBRIC_PATH, RubricError, load_rubric

SHIPPED = yaml.safe_load(RUBRIC_PATH.read_text())


class RubricPromiseWarning(UserWarning):
    """README.md states a figure the rubric no longer gives."""


def edited_rubric(tmp_path, points=None, **cnn):
    """The shipped rubric with some points ({check: points}) and cnn settings changed."""
    data = yaml.safe_load(RUBRIC_PATH.read_text())
    for test in data["tests"]:
        test["points"] = (points or {}).get(test["check"], test["points"])
    data["cnn"].update(cnn)
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_readme_figures_are_compared_with_the_shipped_rubric_and_only_warn():
    # A TA may change the rubric before the README: each difference is a
    # warning in the test summary (and in `make handout`), not a failure.
    for line in promise_warnings():
        warnings.warn(line, RubricPromiseWarning)


def test_names_follow_the_thresholds_of_the_rubric_they_are_loaded_from(tmp_path):
    path = edited_rubric(tmp_path, convnet_accuracy_tiers=[0.6, 0.675, 0.8], fcnet_accuracy=0.5,
                         convnet_max_parameters=1_500_000, convnet_weight_layers=[4, 9])
    names = {entry.check: entry.name for entry in load_rubric(path)}
    assert names["convnet_accuracy_1"] == "ConvNet test accuracy >= 60%"
    assert names["convnet_accuracy_2"] == "ConvNet test accuracy >= 67.5%"
    assert names["convnet_accuracy_3"] == "ConvNet test accuracy >= 80%"
    assert names["fcnet_accuracy"] == "FCNet test accuracy >= 50%"
    assert names["convnet_architecture"].startswith("ConvNet architecture (4-9 weight layers, >= 2 conv, "
                                                    "<= 1.5M parameters")
    # The students' README table is rendered with the same names.
    table = handout.render_rubric(path)
    assert "| 6.2 | ConvNet test accuracy >= 67.5% | `ConvNet` |" in table
    assert "{" not in table


def test_the_shipped_names_render_the_shipped_thresholds():
    shipped = {test["check"]: test["name"] for test in SHIPPED["tests"]}
    assert "{convnet_accuracy_tiers[0]:pct}" in shipped["convnet_accuracy_1"]
    names = {entry.check: entry.name for entry in load_rubric()}
    tiers = SHIPPED["cnn"]["convnet_accuracy_tiers"]
    assert names["convnet_accuracy_1"] == f"ConvNet test accuracy >= {100 * tiers[0]:g}%"


@pytest.mark.parametrize("name, complaint", [
    ("accuracy >= {fcnet_acuracy:pct}", "KeyError: 'fcnet_acuracy'"),
    ("tier {convnet_accuracy_tiers[7]:pct}", "IndexError"),
    ("unclosed {fcnet_accuracy", "ValueError"),
])
def test_a_placeholder_that_fits_no_setting_names_the_test_and_the_settings(tmp_path, name, complaint):
    data = yaml.safe_load(RUBRIC_PATH.read_text())
    data["tests"][0]["name"] = name
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RubricError, match=complaint) as error:
        load_rubric(path)
    assert "test 1" in str(error.value) and "fcnet_accuracy" in str(error.value)


def faithful_readme(tmp_path):
    """A README whose rubric paragraph states the shipped rubric's figures."""
    def points(*checks):
        return f"{sum(t['points'] for t in SHIPPED['tests'] if t['check'] in checks):g}"
    layers = f"{sum(t['points'] for t in SHIPPED['tests'] if t['part'] == 'layers'):g}"
    cnn = f"{sum(t['points'] for t in SHIPPED['tests'] if t['part'] == 'cnn'):g}"
    tiers = "/".join(f"{100 * t:g}" for t in SHIPPED["cnn"]["convnet_accuracy_tiers"])
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Course\n\n**Rubric**: numpy layers {layers} points (convolution "
        f"{points('conv_forward', 'conv_backward')}, pooling {points('max_pool_forward', 'max_pool_backward', 'avg_pool_forward', 'avg_pool_backward')}, "
        f"batch norm {points('batchnorm_forward_train', 'batchnorm_running_stats', 'batchnorm_forward_test', 'batchnorm_backward', 'spatial_batchnorm_forward', 'spatial_batchnorm_backward')}, "
        f"dropout {points('dropout_forward', 'dropout_backward')}), CNN part {cnn} (architecture and compute rule "
        f"{points('convnet_architecture', 'fcnet_architecture')}, checkpoints {points('convnet_checkpoint', 'fcnet_checkpoint')}, "
        f"accuracy {points('convnet_accuracy_1', 'convnet_accuracy_2', 'convnet_accuracy_3', 'fcnet_accuracy')}: "
        f"ConvNet {tiers}% and FCNet {100 * SHIPPED['cnn']['fcnet_accuracy']:g}%, loss curves "
        f"{points('curves_fall', 'curve_convnet_below_fcnet', 'curve_convnet_area', 'curve_convnet_band')}).\n")
    return readme


def test_a_changed_weight_and_threshold_warn_about_each_figure_they_change(tmp_path):
    readme = faithful_readme(tmp_path)
    assert promise_warnings(readme=readme) == []
    conv = next(t["points"] for t in SHIPPED["tests"] if t["check"] == "conv_forward")
    path = edited_rubric(tmp_path, points={"conv_forward": conv + 2}, convnet_accuracy_tiers=[0.6, 0.675, 0.8])
    found = promise_warnings(readme=readme, rubric=path)
    layers = sum(t["points"] for t in SHIPPED["tests"] if t["part"] == "layers")
    convolution = sum(t["points"] for t in SHIPPED["tests"] if t["check"] in ("conv_forward", "conv_backward"))
    assert len(found) == 3, found
    assert any(f"numpy layers {layers:g} points; rubric.yaml now gives {layers + 2:g} points" in line
               for line in found)
    assert any(f"convolution {convolution:g} points; rubric.yaml now gives {convolution + 2:g}" in line
               for line in found)
    assert any("ConvNet accuracy tiers" in line and "now gives 60/67.5/80%" in line for line in found)


def test_ta_check_points_count_in_their_part_total(tmp_path):
    layers = sum(t["points"] for t in SHIPPED["tests"] if t["part"] == "layers")
    [line] = promise_warnings(readme=faithful_readme(tmp_path), ta_points={"layers": 3})
    assert f"numpy layers {layers:g} points; rubric.yaml now gives {layers + 3:g} points" in line


def test_a_readme_without_the_rubric_paragraph_is_a_warning_too(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Course\n\nNo rubric here.\n")
    [line] = promise_warnings(readme=readme)
    assert "no paragraph starting with **Rubric**" in line
    readme.write_text("**Rubric**: numpy layers 60 points.\n")
    found = promise_warnings(readme=readme)
    assert any("no longer states convolution" in line for line in found)
