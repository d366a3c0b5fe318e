"""The rubric: autograder/rubric.yaml maps each check to its points,
Gradescope test number, visibility and the student functions it exercises.

Beside ``tests``, the file may hold one settings mapping per part, under the
part's name; a part reads its own (its module's ``read_settings(given,
where)``, see autograder/parts/__init__.py), and one ``course:`` mapping of
settings about the whole course (the submission budget, autograder/budget.py).
read_rubric parses the file once and returns the entries, every part's
settings and the course settings.

A test name may show a part's setting with a placeholder, so that the names
students read follow the thresholds they are graded with:
``{fcnet_accuracy:pct}`` gives "45%", ``{convnet_accuracy_tiers[1]:pct}``
"70%", ``{convnet_max_parameters:M}`` "1M", ``{convnet_weight_layers[0]}``
"5" (any other format spec is Python's).
"""
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from autograder import budget
from autograder.layout import RUBRIC_PATH
from autograder.parts import PARTS, load_part
from autograder.results import VISIBILITIES

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


@dataclass(frozen=True)
class Rubric:
    entries: list        # RubricEntry, in the file's order
    settings: dict       # {part: its settings} for the parts that have settings
    course: dict = field(default_factory=lambda: budget.read_course_settings(None, ""))

    def of_part(self, part):
        return [entry for entry in self.entries if entry.part == part]

    def names(self):
        """Every part's settings in one mapping: what name placeholders may use."""
        return {key: value for settings in self.settings.values() for key, value in settings.items()}


class _SettingsFormatter(string.Formatter):
    """str.format with two more format specs: "pct" (0.675 -> "67.5%") and
    "M" (1500000 -> "1.5M")."""

    def format_field(self, value, spec):
        if spec == "pct":
            return f"{100 * value:g}%"
        if spec == "M":
            return f"{value / 1e6:g}M"
        return super().format_field(value, spec)


def render_name(name, settings, where):
    """name with its {setting} placeholders filled from settings (the parts'
    settings in one mapping, Rubric.names); RubricError naming `where` when
    one does not fit."""
    try:
        return _SettingsFormatter().format(name, **settings)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise RubricError(f"{where}: name {name!r}: {type(exc).__name__}: {exc}; a placeholder must "
                          f"name a part's setting ({', '.join(sorted(settings))}), e.g. "
                          f"{{fcnet_accuracy:pct}}") from None


def _read(path):
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RubricError(f"{path}: cannot read the rubric: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise RubricError(f"{path}: expected a mapping with a 'tests' list")
    return data


def parts_settings(data, path):
    """{part: settings} read by each part that declares read_settings, from its mapping of data."""
    settings = {}
    for part in PARTS:
        reader = getattr(load_part(part), "read_settings", None)
        if reader is not None:
            try:
                settings[part] = reader(data.get(part), where=str(path))
            except ValueError as exc:
                raise RubricError(str(exc)) from None
    return settings


def load_settings_of(path):
    """Every part's settings of the rubric file at path, in one mapping
    (Rubric.names), as a RubricError when they are wrong."""
    return Rubric([], parts_settings(_read(path), path)).names()


def read_rubric(path=RUBRIC_PATH):
    """The rubric file at path, parsed once: its entries and its parts' settings."""
    data = _read(path)
    settings = parts_settings(data, path)
    names = Rubric([], settings).names()
    entries, numbers, checks = [], set(), set()
    for position, item in enumerate(data["tests"], start=1):
        entry = _entry(path, position, item, names)
        if entry.number in numbers:
            raise RubricError(f"{path}: test {position}: number {entry.number!r} is used twice")
        if (entry.part, entry.check) in checks:
            raise RubricError(f"{path}: test {position}: check {entry.check!r} is used twice")
        numbers.add(entry.number)
        checks.add((entry.part, entry.check))
        entries.append(entry)
    try:
        course = budget.read_course_settings(data.get("course"), str(path))
    except ValueError as exc:
        raise RubricError(str(exc)) from None
    return Rubric(entries, settings, course)


def load_rubric(path=RUBRIC_PATH):
    """The entries of the rubric file at path."""
    return read_rubric(path).entries


def _entry(path, position, item, settings):
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
    name = render_name(item["name"], settings, where)
    return RubricEntry(number=number, name=name, part=item["part"], check=item["check"],
                       tags=tuple(tags), points=float(points), visibility=item["visibility"])


def check_ids_known(entries, part, known):
    """Raise when a rubric entry of `part` names a check the part does not have."""
    for entry in entries:
        if entry.part == part and entry.check not in known:
            raise RubricError(f"rubric test {entry.number}: part {part} has no check "
                              f"{entry.check!r}; known: {', '.join(sorted(known))}")
