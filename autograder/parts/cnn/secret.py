"""The seed of a submission's secret draws (which test images are changed
how, which are shown unchanged, in which order): an HMAC of the graded
files' contents under a key the students do not have.

The key is a digest of the hidden test cases' inputs
(autograder/cases/hidden/**/*.inp.*.npy): they are secret (never in the
handout) and identical wherever the full grader runs, so grading a
submission on a TA's machine and on Gradescope draws the same images and
gives the same score, and grading it again gives it again. Only the inputs
count: they are drawn from seeded generators, while the expected outputs,
the known-mistake variants and cases.json (with the builder's fingerprint)
change with the reference, the builder's code and the machine's rounding,
none of which should reshuffle a class's draws. A different submission (even one byte) draws afresh. Without the
hidden cases (the student handout) a public key stands in, and the results
say so.
"""
import hashlib
import hmac
import json
from pathlib import Path

from autograder.submission import submission_digests

PUBLIC_KEY = b"public mode: no hidden cases, anyone can reproduce these draws"
HIDDEN = "hidden"
INPUT_FILES = "*.inp.*.npy"          # a hidden case's inputs (autograder/cases.py)


def grading_key(cases_dir):
    """(key bytes, secret?): the digest of every input file under
    cases_dir/hidden (names and contents, in sorted order), or PUBLIC_KEY
    when there is none."""
    folder = Path(cases_dir) / HIDDEN if cases_dir else None
    if folder is None or not folder.is_dir():
        return PUBLIC_KEY, False
    digest = hashlib.sha256()
    files = sorted(path for path in folder.rglob(INPUT_FILES) if path.is_file())
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    if not files:
        return PUBLIC_KEY, False
    return digest.digest(), True


def submission_seed(key, files):
    """An int seed from key and {name: path} of the graded files (a missing
    file simply does not take part), read as the sandbox copies them."""
    message = json.dumps(submission_digests(files), sort_keys=True).encode()
    return int.from_bytes(hmac.new(key, message, hashlib.sha256).digest()[:16], "big")
