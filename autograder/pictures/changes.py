"""What changed since the previous submission: tests newly passed or lost
(by number and name), the score and the ConvNet's accuracy moved. The
previous submission is Gradescope's (submission_metadata.py reads it):
its results.json as recorded. Only tests graded in both and visible to the
student are named; no previous submission gives no lines."""

ACCURACY_MODEL = "ConvNet"
LEADERBOARD_NAME = "ConvNet test accuracy"     # parts/cnn/models_step.py's leaderboard entry, in %


def accuracy_of(results):
    """The ConvNet's scored accuracy (a share) in a results.json mapping, or None."""
    value = (results.get("extra_data") or {}).get("accuracy", {})
    value = value.get(ACCURACY_MODEL) if isinstance(value, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    for entry in results.get("leaderboard") or ():
        if isinstance(entry, dict) and entry.get("name") == LEADERBOARD_NAME \
                and isinstance(entry.get("value"), (int, float)):
            return float(entry["value"]) / 100
    return None


def _tests(results):
    tests = results.get("tests") if isinstance(results, dict) else None
    return {test["number"]: test for test in tests or () if isinstance(test, dict)
            and isinstance(test.get("number"), str) and test.get("visibility", "visible") == "visible"}


def _passed(test):
    return test.get("status") == "passed"


def _score(test):
    return f"{test.get('score', 0):g} -> " if isinstance(test.get("score"), (int, float)) else ""


def changes(previous, current):
    """Lines saying what changed from `previous` (submission_metadata's
    PreviousSubmission, or None) to `current` (this grade's results.json mapping)."""
    if previous is None:
        return []
    before, now = _tests(previous.results), _tests(current)
    when = previous.time.strftime("%Y-%m-%d %H:%M %Z").strip()
    lines = []
    score = previous.score if previous.score is not None else previous.results.get("score")
    if isinstance(score, (int, float)):
        moved = current["score"] - score
        lines.append(f"score {score:g} -> {current['score']:g} ({moved:+g}) since your previous "
                     f"submission ({when})")
    else:
        lines.append(f"since your previous submission ({when}):")
    order = sorted(set(before) & set(now), key=lambda n: [int(p) for p in n.split(".")])
    lost = [n for n in order if _passed(before[n]) and not _passed(now[n])]
    gained = [n for n in order if not _passed(before[n]) and _passed(now[n])]
    for number in lost:
        test = now[number]
        lines.append(f"lost since your previous submission: {number} {test['name']} "
                     f"({_score(before[number])}{test['score']:g} of {test['max_score']:g})")
    for number in gained:
        test = now[number]
        lines.append(f"newly passed: {number} {test['name']} ({test['score']:g} of {test['max_score']:g})")
    was, is_now = accuracy_of(previous.results), accuracy_of(current)
    if was is not None and is_now is not None:
        lines.append(f"{ACCURACY_MODEL} test accuracy {was:.2%} -> {is_now:.2%} "
                     f"({100 * (is_now - was):+.2f} points)")
    if not lost and not gained:
        lines.append("no test newly passed or lost")
    return lines
