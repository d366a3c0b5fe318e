"""The student README: its rubric table (RUBRIC_PLACEHOLDER, a line of
solutions/README.md) rendered from autograder/rubric.yaml, the TA checks
after the rubric's own, one table per part with totals."""
from pathlib import Path

from autograder.authoring.handout_plan import HandoutError, display

RUBRIC_FILE = "rubric.yaml"                    # in autograder/
TA_CHECKS = "ta_checks"                        # in autograder/: the visible ones ship (autograder/ta/suite.py)
RUBRIC_PLACEHOLDER = "<!-- RUBRIC TABLE -->"   # a line of solutions/README.md
RUBRIC_PARTS = {"layers": "Part 1: numpy layers (layers.py)",
                "cnn": "Part 2: PyTorch models (models.py, fcnet.pt, convnet.pt)"}


def render_readme(text, grader_dir):
    """The student README: RUBRIC_PLACEHOLDER replaced by the table of rubric.yaml."""
    lines = text.splitlines(keepends=True)
    if not any(line.strip() == RUBRIC_PLACEHOLDER for line in lines):
        return text
    table = render_rubric(Path(grader_dir) / RUBRIC_FILE, Path(grader_dir) / TA_CHECKS)
    return "".join(table if line.strip() == RUBRIC_PLACEHOLDER else line for line in lines)


def render_rubric(path, ta_checks=None):
    """Markdown tables (one per part, with totals) of the rubric file at path,
    with the TA checks of the folder ta_checks after the rubric's own."""
    import yaml

    where = f"{display(path)} (read by autograder/authoring/handout_rubric.py render_rubric)"
    try:
        with open(path, encoding="utf-8") as fh:
            rubric = yaml.safe_load(fh)
    except FileNotFoundError:
        raise HandoutError(f"{where}: missing; the README's {RUBRIC_PLACEHOLDER} line "
                           "needs it") from None
    except yaml.YAMLError as exc:
        raise HandoutError(f"{where}: not valid YAML ({exc})") from None
    tests = rubric.get("tests") if isinstance(rubric, dict) else None
    if not isinstance(tests, list) or not tests:
        raise HandoutError(f"{where}: expected a mapping with a non-empty list 'tests'")
    rows = {part: [] for part in RUBRIC_PARTS}  # in the rubric file's order
    for index, test in enumerate(tests):
        fields_ok = (isinstance(test, dict) and isinstance(test.get("number"), str)
                     and isinstance(test.get("name"), str) and test.get("part") in RUBRIC_PARTS
                     and isinstance(test.get("points"), (int, float))
                     and not isinstance(test.get("points"), bool))
        if not fields_ok:
            raise HandoutError(
                f"{where}: tests[{index}] must have 'number' (a string), 'name' (a string), "
                f"'part' (one of {', '.join(RUBRIC_PARTS)}) and 'points' (a number); "
                f"found {test!r}")
        rows[test["part"]].append(test)
    names = _rendered_names(path, tests, where)
    if ta_checks is not None:
        from autograder.ta import suite as ta_suite

        for part, extra in ta_suite.table_rows(ta_checks).items():
            rows[part] += extra
            tests = tests + extra
            names.update({id(row): row["name"] for row in extra})
    out = []
    for part, title in RUBRIC_PARTS.items():
        if not rows[part]:
            continue
        total = sum(test["points"] for test in rows[part])
        out += [f"**{title}: {_points(total)} points**\n", "\n",
                "| # | Check | Functions | Points |\n", "|---|---|---|---:|\n"]
        for test in rows[part]:
            functions = ", ".join(f"`{tag}`" for tag in test.get("tags") or [])
            name = names[id(test)].replace("|", "\\|")
            out.append(f"| {test['number']} | {name} | {functions} | {_points(test['points'])} |\n")
        out.append("\n")
    grand_total = sum(test["points"] for test in tests)
    out.append(f"**Total: {_points(grand_total)} points**\n")
    return "".join(out)


def _rendered_names(path, tests, where):
    """{id(test): its name with the rubric's thresholds filled in} (autograder/rubric.py render_name)."""
    from autograder.rubric import RubricError, load_settings_of, render_name

    try:
        settings = load_settings_of(path)
        return {id(test): render_name(test["name"], settings, f"{where}: test {test['number']}")
                for test in tests}
    except RubricError as exc:
        raise HandoutError(str(exc)) from None


def _points(value):
    return f"{value:g}"
