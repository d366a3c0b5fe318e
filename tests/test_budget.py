"""The optional submission budget (issue #20, autograder/budget.py): past N
graded submissions per day or in all, the grader returns the previous graded
result with a line saying why and when the next one counts; off by default,
when it changes nothing. Metadata files are in Gradescope's format."""
import json
from datetime import datetime

import pytest
import yaml

from autograder import budget, cli, submission_metadata
from autograder.layout import ASSIGNMENTS_DIR, RUBRIC_PATH
from autograder.rubric import RubricError, read_rubric

STUB_SUBMISSION = ASSIGNMENTS_DIR / "cnn"


def previous_results(score, hidden_output="hidden feedback"):
    """A results.json as Gradescope records it in previous_submissions."""
    return {"score": score, "output": "SUBMISSION FILES: layers.py", "visibility": "visible",
            "stdout_visibility": "hidden", "execution_time": 12.5,
            "tests": [{"number": "1.1", "name": "conv_forward", "score": score, "max_score": 8.0,
                       "status": "failed", "output": "visible feedback", "visibility": "visible", "tags": []},
                      {"number": "9.1", "name": "a hidden check", "score": 0.0, "max_score": 2.0,
                       "status": "failed", "output": hidden_output, "visibility": "hidden", "tags": []}]}


def metadata_file(tmp_path, created_at, previous):
    """Gradescope's submission_metadata.json: previous = [(submission_time, results)]."""
    data = {"id": 123456, "created_at": created_at, "assignment": {"id": 1, "title": "CNN unit"},
            "submission_method": "upload", "users": [{"email": "s@example.edu", "id": 7, "name": "A Student"}],
            "previous_submissions": [{"submission_time": when, "score": results.get("score", 0.0),
                                      "results": results} for when, results in previous]}
    path = tmp_path / "submission_metadata.json"
    path.write_text(json.dumps(data))
    return path


def rubric_with(tmp_path, course):
    data = yaml.safe_load(RUBRIC_PATH.read_text())
    data["course"] = course
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def refusal_of(tmp_path, setting, created_at, previous):
    metadata = submission_metadata.load(metadata_file(tmp_path, created_at, previous))
    settings = budget.read_course_settings({"submission_budget": setting}, "rubric.yaml")
    return budget.refusal(settings["submission_budget"], metadata, metadata.created_at)


def test_past_the_daily_budget_the_previous_graded_result_comes_back_with_why_and_when(tmp_path):
    previous = [("2026-12-06T08:00:00-08:00", previous_results(1.0)),
                ("2026-12-07T07:00:00-08:00", previous_results(2.0)),
                ("2026-12-07T09:00:00-08:00", previous_results(3.0, hidden_output="secret case 17"))]
    result = refusal_of(tmp_path, {"max_graded": 2, "per": "day"}, "2026-12-07T10:00:00-08:00", previous)
    first, rest = result["output"].split("\n\n", 1)
    assert first == ("Submission budget: this course grades at most 2 submissions in any 24 hours, and 2 of "
                     "yours were graded in the last 24 hours. This submission was not graded: below is the "
                     "result of your graded submission of 2026-12-07 17:00 UTC (2026-12-07 09:00 -08:00, your "
                     "time). Your next submission counts from 2026-12-08 15:00 UTC (2026-12-08 07:00 -08:00, "
                     "your time).")
    assert rest == "SUBMISSION FILES: layers.py"
    # The previous result as it was: its score, and its hidden test still hidden.
    assert result["score"] == 3.0 and result["tests"] == previous_results(3.0, "secret case 17")["tests"]
    assert [t["visibility"] for t in result["tests"]] == ["visible", "hidden"]
    assert result["extra_data"]["submission_budget"]["graded"] is False


def test_within_the_budget_or_off_every_submission_is_graded(tmp_path):
    previous = [("2026-12-06T08:00:00-08:00", previous_results(1.0)),
                ("2026-12-07T09:00:00-08:00", previous_results(3.0))]
    now = "2026-12-07T10:00:00-08:00"
    assert refusal_of(tmp_path, {"max_graded": 2, "per": "day"}, "2026-12-07T08:30:00-08:00",
                      previous[:1]) is None
    assert refusal_of(tmp_path, {"max_graded": 2, "per": "day"}, now, previous) is None  # one is a day old
    assert refusal_of(tmp_path, None, now, previous) is None
    assert refusal_of(tmp_path, {"max_graded": 2, "per": "all"}, now, []) is None


def test_a_budget_in_all_says_no_further_submission_counts_and_refusals_never_count(tmp_path):
    graded = [("2026-12-01T10:00:00+00:00", previous_results(4.0)),
              ("2026-12-02T10:00:00+00:00", previous_results(5.0))]
    refused = refusal_of(tmp_path, {"max_graded": 2, "per": "all"}, "2026-12-03T10:00:00+00:00", graded)
    assert refused["output"].startswith("Submission budget: this course grades at most 2 submissions in all")
    assert "of 2026-12-02 10:00 UTC. No further submission will be graded." in refused["output"]
    assert "your time" not in refused["output"]                 # a student on UTC gets UTC only
    # A later submission still returns the last *graded* result, once (the refusal is not counted
    # as graded, and its line is not repeated).
    again = refusal_of(tmp_path, {"max_graded": 3, "per": "all"}, "2026-12-04T10:00:00+00:00",
                       graded + [("2026-12-03T10:00:00+00:00", refused)])
    assert again is None                                         # 2 graded < 3
    again = refusal_of(tmp_path, {"max_graded": 2, "per": "all"}, "2026-12-04T10:00:00+00:00",
                       graded + [("2026-12-03T10:00:00+00:00", refused)])
    assert again["output"].count("Submission budget:") == 1 and again["score"] == 5.0


def test_the_rubric_reads_the_budget_off_by_default_and_names_a_wrong_setting(tmp_path):
    assert read_rubric().course == {"submission_budget": None}
    on = read_rubric(rubric_with(tmp_path, {"submission_budget": {"max_graded": 3, "per": "day"}}))
    assert on.course["submission_budget"] == budget.Budget(3, "day")
    for wrong, complaint in [({"submission_budget": {"max_graded": 0, "per": "day"}}, "max_graded: N"),
                             ({"submission_budget": {"max_graded": 3, "per": "week"}}, "per: day|all"),
                             ({"submission_budget": 3}, "submission_budget must be null"),
                             ({"budget": 3}, "unknown keys budget"), ([1], "expected a mapping")]:
        with pytest.raises(RubricError, match=complaint) as raised:
            read_rubric(rubric_with(tmp_path, wrong))
        assert "rubric.yaml: course settings (read by autograder/budget.py)" in str(raised.value)


def grade(tmp_path, name, rubric=RUBRIC_PATH, metadata=None):
    results = tmp_path / f"{name}.json"
    command = ["grade", str(STUB_SUBMISSION), "--part", "layers", "--results", str(results),
               "--slowness", "1", "--rubric", str(rubric)]
    assert cli.main(command + (["--submission-metadata", str(metadata)] if metadata else [])) == 0
    data = json.loads(results.read_text())
    data.pop("execution_time")
    return data


def test_the_grade_command_returns_the_previous_result_past_the_budget_without_grading(tmp_path, capsys):
    rubric = rubric_with(tmp_path, {"submission_budget": {"max_graded": 1, "per": "day"}})
    earlier = previous_results(6.0)
    metadata = metadata_file(tmp_path, "2026-12-07T10:00:00-08:00", [("2026-12-07T09:00:00-08:00", earlier)])
    results = grade(tmp_path, "refused", rubric, metadata)
    assert results["output"].startswith("Submission budget: this course grades at most 1 submission in any 24 hours")
    assert results["tests"] == earlier["tests"] and results["score"] == 6.0
    assert "machine speed" not in capsys.readouterr().err      # nothing of the submission ran


def test_with_the_budget_off_metadata_changes_nothing(tmp_path):
    metadata = metadata_file(tmp_path, "2026-12-07T10:00:00-08:00",
                             [(f"2026-12-07T0{hour}:00:00-08:00", previous_results(6.0)) for hour in range(1, 9)])
    without = grade(tmp_path, "without")
    with_metadata = grade(tmp_path, "with", metadata=metadata)
    assert same_grade(with_metadata, without)
    assert "Submission budget" not in without["output"] + with_metadata["output"]
    # Under the budget the grade is the usual one too.
    rubric = rubric_with(tmp_path, {"submission_budget": {"max_graded": 20, "per": "all"}})
    assert same_grade(grade(tmp_path, "under", rubric, metadata), without)


def same_grade(with_metadata, without):
    """The same grade: every field equal, but for the top of the output, which
    says first what changed since the previous submission (autograder/pictures/changes.py)."""
    rest = {key: value for key, value in with_metadata.items() if key != "output"}
    assert rest == {key: value for key, value in without.items() if key != "output"}
    assert "Since your previous submission" in with_metadata["output"]
    return with_metadata["output"].endswith(without["output"])
