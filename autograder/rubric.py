"""The rubric: autograder/rubric.yaml maps each check to its points,
Gradescope test number, visibility and the student functions it exercises."""
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from autograder.parts import PARTS

RUBRIC_PATH = Path(__file__).resolve().parent / "rubric.yaml"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
NUMBER = re.compile(r"\d+(\.\d+)*")
FIELDS = ("number", "name", "part", "check", "tags", "points", "visibility")


class RubricError(Exception):
    pass


@dataclass(frozen=True)
class RubricEntry:
    number: str
    name: str
    part: str
    check: str
    tags: tuple
    points: float
    visibility: str


def load_rubric(path=RUBRIC_PATH):
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RubricError(f"{path}: cannot read the rubric: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise RubricError(f"{path}: expected a mapping with a 'tests' list")
    entries, numbers, checks = [], set(), set()
    for position, item in enumerate(data["tests"], start=1):
        entry = _entry(path, position, item)
        if entry.number in numbers:
            raise RubricError(f"{path}: test {position}: number {entry.number!r} is used twice")
        if (entry.part, entry.check) in checks:
            raise RubricError(f"{path}: test {position}: check {entry.check!r} is used twice")
        numbers.add(entry.number)
        checks.add((entry.part, entry.check))
        entries.append(entry)
    return entries


def _entry(path, position, item):
    where = f"{path}: test {position}"
    if not isinstance(item, dict):
        raise RubricError(f"{where}: expected a mapping with keys {', '.join(FIELDS)}")
    missing = [key for key in FIELDS if key not in item]
    unknown = sorted(set(item) - set(FIELDS))
    if missing or unknown:
        raise RubricError(f"{where}: " + "; ".join(
            filter(None, [missing and f"missing {', '.join(missing)}",
                          unknown and f"unknown {', '.join(unknown)}"])))
    number, points, tags = item["number"], item["points"], item["tags"]
    if not isinstance(number, str) or not NUMBER.fullmatch(number):
        raise RubricError(f"{where}: number must be a quoted string like \"1.2\", got {number!r}")
    if item["part"] not in PARTS:
        raise RubricError(f"{where}: part must be one of {', '.join(PARTS)}, got {item['part']!r}")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
        raise RubricError(f"{where}: points must be a positive number, got {points!r}")
    if item["visibility"] not in VISIBILITIES:
        raise RubricError(f"{where}: visibility must be one of {', '.join(VISIBILITIES)}, "
                          f"got {item['visibility']!r}")
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
        raise RubricError(f"{where}: tags must be a non-empty list of function names")
    for key in ("name", "check"):
        if not isinstance(item[key], str) or not item[key]:
            raise RubricError(f"{where}: {key} must be a non-empty string")
    return RubricEntry(number=number, name=item["name"], part=item["part"], check=item["check"],
                       tags=tuple(tags), points=float(points), visibility=item["visibility"])


def check_ids_known(entries, part, known):
    """Raise when a rubric entry of `part` names a check the part does not have."""
    for entry in entries:
        if entry.part == part and entry.check not in known:
            raise RubricError(f"rubric test {entry.number}: part {part} has no check "
                              f"{entry.check!r}; known: {', '.join(sorted(known))}")
