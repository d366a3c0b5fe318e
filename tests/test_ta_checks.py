"""TA checks written the gradescope-utils way (issue #13): unittest modules in
autograder/ta_checks/ call the submission through sandboxed handles, run with
gradescope-utils' runner, land in results.json with their numbers, weights,
visibility and output, and cost only their own points whatever they do."""
import json
import re
import shutil
import textwrap
import zipfile
from pathlib import Path

import pytest

from test_grader_cnn import restricted_rubric

from autograder import cli
from autograder.authoring import autograder_zip, handout
from autograder.ta import suite as ta_suite
from autograder.rubric import RUBRIC_PATH, load_rubric
from autograder.ta_checks import StudentCallError, student
from autograder.ta.student import NotGrading
from conftest import load_corpus

support = load_corpus("support")
REPO = support.REPO
REFERENCE_DIR = REPO / "solutions" / "cnn"
STUBS_DIR = REPO / "assignments" / "cnn"
HEADER = """\
import unittest

import numpy as np
from gradescope_utils.autograder_utils.decorators import (hide_errors, leaderboard, number,
                                                          partial_credit, tags, visibility, weight)

from autograder.ta_checks import student
"""


def readme_example():
    """The TA check of README.md's how-to, as written there."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("**TA checks.**"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def write_checks(folder, **modules):
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in modules.items():
        (folder / f"{name}.py").write_text(HEADER + textwrap.dedent(body))
    return folder


def grade(submission, checks, tmp_path, part="layers", expect=0, rubric=RUBRIC_PATH):
    results = tmp_path / f"results-{Path(submission).name}.json"
    status = cli.main(["grade", str(submission), "--results", str(results), "--part", part,
                       "--ta-checks", str(checks), "--slowness", "1", "--rubric", str(rubric)])
    assert status == expect
    return json.loads(results.read_text())


def by_number(results):
    return {test["number"]: test for test in results["tests"]}


def test_the_readme_example_is_full_on_the_reference_and_zero_on_the_stubs(tmp_path, capsys):
    checks = tmp_path / "ta_checks"
    checks.mkdir()
    (checks / "test_readme_example.py").write_text(readme_example())
    reference = grade(REFERENCE_DIR, checks, tmp_path)
    test = by_number(reference)["8.1"]
    assert test == {"name": "conv_forward of an all-zero image is its bias everywhere", "number": "8.1",
                    "score": 2.0, "max_score": 2.0, "status": "passed", "output": "",
                    "visibility": "visible", "tags": ["conv_forward"]}
    layers = support.points("layers")
    assert reference["score"] == layers + 2
    assert f"{layers + 2:.2f} / {layers + 2:g}" in capsys.readouterr().out      # the score table's total

    stubs = by_number(grade(STUBS_DIR, checks, tmp_path))["8.1"]
    assert stubs["score"] == 0 and stubs["max_score"] == 2
    assert stubs["output"].startswith("Test Failed: conv_forward(array (1, 2, 4, 4), array (3, 2, 3, 3), "
                                      "array (3,), {'stride': 1, 'pad': 1}) failed: raised "
                                      "NotImplementedError: conv_forward: not implemented yet")


def test_every_kind_of_check_and_of_failure_costs_only_itself(tmp_path):
    checks = write_checks(tmp_path / "ta_checks", test_kinds='''
        class Kinds(unittest.TestCase):
            @partial_credit(3)
            @number("9.1")
            @tags("conv_forward", "conv_backward")
            @visibility("after_due_date")
            def test_cache_goes_back_to_the_backward(self, set_score=None):
                """backward of a zero dout is zero"""
                rng = np.random.default_rng(1)
                x, w, b = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
                out, cache = student.layers.conv_forward(x, w, b, {"stride": 1, "pad": 1})
                grads = student.layers.conv_backward(np.zeros_like(out), cache)
                set_score(sum(float(not np.any(g)) for g in grads[:2]))

            @weight(1)
            @number("9.2")
            @tags("dropout_forward")
            def test_check_bug(self):
                {}["no such key"]

            @weight(1)
            @number("9.3")
            @tags("dropout_forward")
            def test_skipped(self):
                self.skipTest("not this term")

            @weight(1)
            @number("9.4")
            @tags("max_pool_forward")
            def test_subtests(self):
                for size in (2, 3):
                    with self.subTest(size=size):
                        self.assertEqual(size, 2, f"size {size} is not 2")

            @weight(2)
            @number("9.5")
            @tags("max_pool_forward")
            @hide_errors("max pooling is off")
            def test_hidden_error(self):
                self.fail("the expected value 42 must not be shown")

            @leaderboard("zero-image bias")
            @tags("conv_forward")
            def test_board(self, set_leaderboard_value=None):
                set_leaderboard_value(1.5)


        class BrokenFixture(unittest.TestCase):
            @classmethod
            def setUpClass(cls):
                raise RuntimeError("fixture broke")

            @weight(4)
            @number("9.6")
            @tags("conv_forward")
            def test_never_runs(self):
                pass
    ''', test_undeclared='''
        class Undeclared(unittest.TestCase):
            @weight(1)
            @number("9.7")
            def test_without_tags(self):
                pass

            @weight(1)
            @number("1.1")
            @tags("conv_forward")
            def test_number_of_the_rubric(self):
                pass
    ''')
    results = grade(REFERENCE_DIR, checks, tmp_path)
    tests = by_number(results)
    assert tests["9.1"]["score"] == 2 and tests["9.1"]["max_score"] == 3 and tests["9.1"]["status"] == "failed"
    assert tests["9.1"]["visibility"] == "after_due_date"
    assert tests["9.1"]["tags"] == ["conv_forward", "conv_backward"]
    assert tests["9.2"]["score"] == 0 and "could not run (KeyError: 'no such key')" in tests["9.2"]["output"]
    assert "not a problem with your submission" in tests["9.2"]["output"]
    assert tests["9.3"]["score"] == 0 and "skipped (not this term)" in tests["9.3"]["output"]
    assert tests["9.4"]["score"] == 0 and "size 3 is not 2" in tests["9.4"]["output"]
    assert tests["9.5"]["output"] == "max pooling is off" and "42" not in json.dumps(tests["9.5"])
    assert tests["9.6"]["score"] == 0 and tests["9.6"]["max_score"] == 4
    assert "setUpClass" in tests["9.6"]["output"] and "RuntimeError: fixture broke" in tests["9.6"]["output"]
    assert tests["9.7"]["score"] == 0 and "misdeclared" in tests["9.7"]["output"]
    assert "needs @tags" in tests["9.7"]["output"]
    assert [t["number"] for t in results["tests"]].count("1.1") == 1
    assert results["leaderboard"] == [{"name": "zero-image bias", "value": 1.5, "order": "desc"}]
    # The rubric's own checks are untouched by all this.
    assert sum(t["score"] for t in results["tests"] if t["number"] in {e.number for e in load_rubric()}) \
        == support.points("layers")
    modules = ta_suite.discover(checks, reserved=[e.number for e in load_rubric()])
    problems = ta_suite.problems(modules)
    assert any("test_without_tags needs @tags" in p for p in problems)
    assert any("@number('1.1') is already used by the rubric" in p for p in problems)


def test_a_misdeclared_check_with_a_number_and_weight_scores_zero_and_says_why(tmp_path):
    checks = write_checks(tmp_path / "ta_checks", test_bad='''
        class Bad(unittest.TestCase):
            @weight(2)
            @number("9.1")
            @tags("conv_forward")
            @visibility("students")
            def test_bad_visibility(self):
                pass
    ''')
    test = by_number(grade(REFERENCE_DIR, checks, tmp_path))["9.1"]
    assert test["score"] == 0 and test["max_score"] == 2 and "misdeclared" in test["output"]
    assert "@visibility one of" in test["output"]


def test_a_check_file_that_does_not_import_is_an_autograder_error_and_the_rest_grades(tmp_path):
    checks = tmp_path / "ta_checks"
    checks.mkdir()
    (checks / "test_broken.py").write_text("import nowhere_to_be_found\n")
    results = grade(REFERENCE_DIR, checks, tmp_path, expect=2)
    [error] = [t for t in results["tests"] if t["number"] == "0"]
    assert "test_broken.py could not be imported" in error["output"] and error["max_score"] == 0
    assert results["score"] == support.points("layers")


def test_checks_run_with_the_part_their_tags_belong_to(tmp_path):
    checks = write_checks(tmp_path / "ta_checks", test_parts='''
        class Parts(unittest.TestCase):
            @weight(1)
            @number("9.1")
            @tags("ConvNet")
            def test_model(self):
                pass

            @weight(1)
            @number("9.2")
            @tags("dropout_forward")
            def test_layer(self):
                pass
    ''')
    [model, layer] = sorted(ta_suite.discover(checks)[0].checks, key=lambda c: c.number)
    assert (model.part, layer.part) == ("cnn", "layers")
    graded = by_number(grade(REFERENCE_DIR, checks, tmp_path))      # the layers part only
    assert "9.2" in graded and "9.1" not in graded
    assert ta_suite.points_by_part(checks) == {"cnn": 1.0, "layers": 1.0}


def test_student_code_that_crashes_its_worker_fails_the_check_with_the_reason(tmp_path):
    submission = support.make_submission(tmp_path / "crash", """
        import os
        def dropout_forward(x, dropout_param):
            print("a student's own print")
            os._exit(3)
    """)
    checks = write_checks(tmp_path / "ta_checks", test_crash='''
        class Crash(unittest.TestCase):
            @weight(1)
            @number("9.1")
            @tags("dropout_forward")
            def test_dropout(self):
                student.layers.dropout_forward(np.ones((2, 2)), {"p": 0.5, "mode": "test"})
    ''')
    test = by_number(grade(submission, checks, tmp_path))["9.1"]
    assert test["score"] == 0 and "exited with code 3" in test["output"]
    assert "a student's own print" not in test["output"]


def test_the_handles_refuse_to_run_outside_a_grade():
    with pytest.raises(NotGrading, match="only while the grader runs the TA checks"):
        student.layers.conv_forward(1, 2, 3, {})
    assert issubclass(StudentCallError, Exception)


@pytest.mark.slow
def test_model_handles_return_logits_and_the_architecture_report(tmp_path):
    checks = write_checks(tmp_path / "ta_checks", test_models='''
        class Models(unittest.TestCase):
            @weight(1)
            @number("9.1")
            @tags("ConvNet")
            def test_calls(self):
                fresh = student.models.forward("ConvNet", np.zeros((2, 3, 32, 32)))
                trained = student.models.forward("ConvNet", np.zeros((2, 3, 32, 32)), checkpoint=True)
                images = np.zeros((3, 3, 32, 32), dtype=np.uint8)
                predicted = student.models.predict("FCNet", images)
                report = student.models.inspect("FCNet")
                self.assertEqual((fresh.shape, trained.shape, predicted.shape), ((2, 10), (2, 10), (3, 10)))
                self.assertFalse(np.allclose(fresh, trained), "the checkpoint was not loaded")
                self.assertEqual((report["linear"], report["conv"]), (3, 0))
    ''')
    # Only the TA check is of interest: the CNN part's own checks are cut down to the cheapest.
    rubric = restricted_rubric(tmp_path, {"convnet_architecture"})
    results = grade(REFERENCE_DIR, checks, tmp_path, part="cnn", rubric=rubric)
    test = by_number(results)["9.1"]
    assert test["score"] == 1, test["output"]
    folder = tmp_path / "no-checkpoint"
    folder.mkdir()
    shutil.copy(REFERENCE_DIR / "models.py", folder / "models.py")
    test = by_number(grade(folder, checks, tmp_path, part="cnn", rubric=rubric))["9.1"]
    assert test["score"] == 0 and "convnet.pt" in test["output"]


# -- the handout, the Gradescope zip, the installs --------------------------------------------

PUBLIC = '''
    class Public(unittest.TestCase):
        @weight(2)
        @number("8.1")
        @tags("conv_forward")
        def test_public(self):
            """a public check"""
'''
HIDDEN = '''
    class Hidden(unittest.TestCase):
        @weight(3)
        @number("8.2")
        @tags("FCNet")
        @visibility("hidden")
        def test_hidden(self):
            """a hidden check"""
'''


def grader_with_checks(tmp_path, **modules):
    grader = tmp_path / "autograder"
    grader.mkdir()
    shutil.copy(RUBRIC_PATH, grader / "rubric.yaml")
    write_checks(grader / "ta_checks", **modules)
    return grader


def test_only_files_of_visible_checks_ship_to_students_and_the_table_counts_all(tmp_path):
    grader = grader_with_checks(tmp_path, test_public=PUBLIC, test_hidden=HIDDEN)
    assert handout.ta_check_problems(grader) == []
    shipped = handout.grader_files(grader)
    assert "ta_checks/test_public.py" in shipped and "ta_checks/test_hidden.py" not in shipped
    table = handout.render_rubric(grader / "rubric.yaml", grader / "ta_checks")
    layers, cnn = support.points("layers"), support.points("cnn")
    assert "| 8.1 | a public check | `conv_forward` | 2 |" in table
    assert "a hidden check" not in table
    assert "|  | Further checks of the course staff (graded on Gradescope only) |  | 3 |" in table
    assert f"numpy layers (layers.py): {layers + 2:g} points" in table
    assert f"**Total: {layers + cnn + 5:g} points**" in table


def test_a_file_mixing_visible_and_hidden_checks_or_misdeclared_ones_stops_the_builds(tmp_path):
    grader = grader_with_checks(tmp_path, test_mixed=PUBLIC + HIDDEN.replace("class Hidden", "class Other"),
                                test_bad='''
        class Bad(unittest.TestCase):
            @weight(1)
            @tags("conv_forward")
            def test_no_number(self):
                pass
    ''')
    problems = handout.ta_check_problems(grader)
    assert any("test_mixed.py mixes visible checks" in p for p in problems)
    assert any("Bad.test_no_number needs @number" in p for p in problems)
    shutil.copytree(REPO / "autograder" / "cases", grader / "cases")
    assert any(r.startswith("TA checks: ") for r in autograder_zip.refusals(grader))


def test_the_gradescope_zip_holds_every_ta_check_and_what_runs_them(tmp_path):
    out = tmp_path / "autograder.zip"
    autograder_zip.build(out)
    names = zipfile.ZipFile(out).namelist()
    for name in ("ta_checks/__init__.py", "ta/suite.py", "ta/student.py", "worker/ta_steps.py"):
        assert f"autograder/{name}" in names
    assert "autograder/authoring/promises.py" not in names


def test_gradescope_utils_is_installed_wherever_the_grader_runs():
    pin = re.search(r'"gradescope-utils==([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    setup = (autograder_zip.TEMPLATES_DIR / "setup.sh").read_text()
    assert f"gradescope-utils=={pin}" in setup
    assert f"gradescope-utils=={pin}" in handout.STUDENT_REQUIREMENTS


def test_the_graders_own_zero_point_tests_keep_their_numbers(tmp_path):
    """10.1 (written answers) and 10.2 (the integrity report) belong to the grader."""
    checks = write_checks(tmp_path / "ta_checks", test_taken='''
        class Taken(unittest.TestCase):
            @weight(1)
            @number("10.1")
            @tags("conv_forward")
            @visibility("visible")
            def test_answers(self):
                pass

            @weight(1)
            @number("10.2")
            @tags("conv_forward")
            @visibility("visible")
            def test_integrity(self):
                pass
    ''')
    problems = ta_suite.problems(ta_suite.discover(checks, reserved=[e.number for e in load_rubric()]))
    assert any("@number('10.1') is already used by the" in p for p in problems), problems
    assert any("@number('10.2') is already used by the" in p for p in problems), problems
