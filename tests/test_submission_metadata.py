"""autograder/submission_metadata.py reads Gradescope's submission_metadata.json."""
import json

from autograder import submission_metadata


def write(tmp_path, data):
    path = tmp_path / "submission_metadata.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_previous_submissions_are_read_oldest_first_with_their_results(tmp_path):
    path = write(tmp_path, {
        "id": 7, "created_at": "2026-12-07T10:00:00.000000-08:00", "assignment": {"title": "CNN"},
        "users": [{"name": "A Student"}],
        "previous_submissions": [
            {"submission_time": "2026-12-07T09:30:00.000000-08:00", "score": 80.0,
             "results": {"score": 80.0, "tests": [{"number": "1.1", "score": 2, "max_score": 2}]}},
            {"submission_time": "2026-12-06T09:30:00.000000-08:00", "score": 40, "results": {}},
        ]})
    metadata = submission_metadata.load(path)
    assert metadata.problem is None
    assert metadata.created_at.isoformat() == "2026-12-07T10:00:00-08:00"
    assert [entry.score for entry in metadata.previous] == [40.0, 80.0]
    assert metadata.last.results["tests"][0]["number"] == "1.1"


def test_no_file_or_a_broken_one_means_no_history_and_says_why(tmp_path):
    assert submission_metadata.load(None).previous == ()
    assert submission_metadata.load(None).problem is None
    missing = submission_metadata.load(tmp_path / "absent.json")
    assert missing.previous == () and "cannot be read as JSON" in missing.problem
    assert "expected a JSON object" in submission_metadata.load(write(tmp_path, "[1, 2]")).problem
    odd = submission_metadata.load(write(tmp_path, {"previous_submissions": [
        {"submission_time": "yesterday", "score": 1}, {"submission_time": "2026-12-07T09:30:00Z", "score": True}]}))
    assert len(odd.previous) == 1 and odd.previous[0].score is None
    assert "1 of previous_submissions had no valid submission_time" in odd.problem
