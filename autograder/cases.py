"""Test cases as data: autograder/cases/{public,hidden}/cases.json plus one
.npy file per array, written by ``python -m autograder build-cases`` from the
reference solution. The grader reads them here; it never sees solution code.

cases.json: {"format": 1, "visibility": "public"|"hidden", "groups":
{group: [case, ...]}} where a case is
    {"name": "h3", "kind": "train", "tags": [...], "params": {...},
     "inputs": {name: file}, "expected": {name: file},
     "variants": {output name: {mistake id: file}}}
``expected`` holds what the reference returns; ``variants`` what known wrong
implementations return (to name a student's likely mistake).
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autograder.layout import CASES_DIR
FORMAT = 1
VISIBILITIES = ("public", "hidden")


class CaseError(Exception):
    """The case files are missing or malformed (a problem of the autograder build)."""


@dataclass
class Case:
    group: str
    name: str
    visibility: str
    kind: str = "standard"
    tags: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)      # name -> ndarray
    expected: dict = field(default_factory=dict)    # name -> ndarray
    variants: dict = field(default_factory=dict)    # output name -> {mistake id -> ndarray}

    @property
    def label(self):
        """How feedback names the case, e.g. 'hidden case h3'."""
        return f"{self.visibility} case {self.name}"

    @property
    def public(self):
        return self.visibility == "public"


@dataclass
class CaseSet:
    groups: dict                  # group -> list of Case, public ones first
    public_only: bool             # no hidden cases were found

    def group(self, name):
        return self.groups.get(name, [])


def load_cases(cases_dir=CASES_DIR):
    """Public cases, plus hidden ones when cases_dir/hidden exists."""
    cases_dir = Path(cases_dir)
    groups = {}
    hidden_present = (cases_dir / "hidden" / "cases.json").is_file()
    for visibility in VISIBILITIES:
        if visibility == "hidden" and not hidden_present:
            continue
        for group, cases in _load_folder(cases_dir / visibility, visibility).items():
            groups.setdefault(group, []).extend(cases)
    return CaseSet(groups=groups, public_only=not hidden_present)


def _load_folder(folder, visibility):
    index = folder / "cases.json"
    if not index.is_file():
        raise CaseError(f"{index} is missing: run `python -m autograder build-cases`")
    try:
        data = json.loads(index.read_text())
    except ValueError as exc:
        raise CaseError(f"{index} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CaseError(f"{index}: expected an object with \"format\": {FORMAT}")
    if data.get("visibility") != visibility:
        raise CaseError(f"{index}: \"visibility\" must be {visibility!r}")
    groups = {}
    for group, entries in data.get("groups", {}).items():
        groups[group] = [_load_case(folder, index, group, entry, visibility) for entry in entries]
    return groups


def _load_case(folder, index, group, entry, visibility):
    where = f"{index}, group {group!r}, case {entry.get('name')!r}"

    def load(file_name):
        if not isinstance(file_name, str) or Path(file_name).is_absolute() or ".." in Path(file_name).parts:
            raise CaseError(f"{where}: bad array file name {file_name!r}")
        path = folder / file_name
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CaseError(f"{where}: cannot read {path}: {exc}") from None

    try:
        return Case(
            group=group, name=entry["name"], visibility=visibility,
            kind=entry.get("kind", "standard"), tags=list(entry.get("tags", [])),
            params=dict(entry.get("params", {})),
            inputs={name: load(f) for name, f in entry.get("inputs", {}).items()},
            expected={name: load(f) for name, f in entry.get("expected", {}).items()},
            variants={output: {mistake: load(f) for mistake, f in files.items()}
                      for output, files in entry.get("variants", {}).items()})
    except (KeyError, TypeError, AttributeError) as exc:
        raise CaseError(f"{where}: malformed entry ({type(exc).__name__}: {exc})") from None
