"""The builder's shared part: the Builder that collects the cases and writes
autograder/cases/{public,hidden} (see autograder/cases.py for the format),
the seeded input streams (rng_for), which cases are public (visibility_of)
and the filter that keeps only the known-mistake outputs that tell a mistake
apart (distinct_variants)."""
import json
import shutil
import zlib
from pathlib import Path

import numpy as np

from autograder.cases import FORMAT

# Known-mistake outputs are only stored for arrays up to this many values:
# small cases name a mistake just as well, and the data stays small.
MAX_VARIANT_SIZE = 4096


def rng_for(group, name):
    return np.random.RandomState(zlib.crc32(f"{group}/{name}".encode()))


def visibility_of(name):
    return "public" if name.startswith("p") else "hidden"


def pad_sides(x, before, after):
    """Zero-pad the two spatial axes with `before` rows/columns above/left and `after` below/right."""
    return np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))


class Builder:
    def __init__(self, ref, built_from=""):
        self.ref = ref
        self.built_from = built_from                # source_fingerprint of what ref was loaded from
        self.cases = {"public": {}, "hidden": {}}   # visibility -> group -> [entry]
        self.arrays = {}                            # relative path under visibility folder -> array

    def add(self, group, name, *, kind="standard", tags=(), params=None, inputs=None,
            expected=None, variants=None):
        visibility = visibility_of(name)
        prefix = f"{group}/{name}"
        entry = {"name": name, "kind": kind, "tags": list(tags), "params": params or {},
                 "inputs": {}, "expected": {}, "variants": {}}
        for role, arrays in (("inputs", inputs or {}), ("expected", expected or {})):
            for key, array in arrays.items():
                entry[role][key] = self._store(visibility, f"{prefix}.{role[:3]}.{key}.npy", array)
        for output, candidates in (variants or {}).items():
            kept = distinct_variants(candidates, (expected or {}).get(output))
            if kept:
                entry["variants"][output] = {
                    mistake: self._store(visibility, f"{prefix}.var.{output}.{mistake}.npy", array)
                    for mistake, array in kept.items()}
        self.cases[visibility].setdefault(group, []).append(entry)

    def _store(self, visibility, relative, array):
        array = np.ascontiguousarray(array)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"build_cases: {relative} would hold dtype {array.dtype}")
        self.arrays[(visibility, relative)] = array
        return relative

    def write(self, out_dir):
        out_dir = Path(out_dir)
        for visibility in ("public", "hidden"):
            folder = out_dir / visibility
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            index = {"format": FORMAT, "visibility": visibility, "built_from": self.built_from,
                     "groups": self.cases[visibility]}
            (folder / "cases.json").write_text(json.dumps(index, indent=1) + "\n")
        for (visibility, relative), array in sorted(self.arrays.items()):
            path = out_dir / visibility / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, array, allow_pickle=False)


def distinct_variants(candidates, expected):
    """Drop variants equal to the expected output or to an earlier variant:
    they could never tell a mistake apart."""
    kept = {}
    for mistake, array in candidates.items():
        array = np.asarray(array, dtype=np.float64)
        if array.size > MAX_VARIANT_SIZE:
            continue
        same = [other for other in [expected] + list(kept.values())
                if other is not None and other.shape == array.shape
                and np.allclose(other, array, rtol=1e-5, atol=1e-7)]
        if not same:
            kept[mistake] = array
    return kept
