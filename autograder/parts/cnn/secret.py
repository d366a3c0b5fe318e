"""The seed of a submission's secret draws (which test images are changed
how, which are shown unchanged, in which order): an HMAC of the graded
files' contents under a key the students do not have.

The key is a digest of the hidden test cases (autograder/cases/hidden/):
they are secret (never in the handout) and identical wherever the full
grader runs, so grading a submission on a TA's machine and on Gradescope
draws the same images and gives the same score, and grading it again gives
it again. A different submission (even one byte) draws afresh. Without the
hidden cases (the student handout) a public key stands in, and the results
say so.
"""
import hashlib
import hmac
import os
import stat
from pathlib import Path

from autograder.submission import LARGEST_FILE

PUBLIC_KEY = b"public mode: no hidden cases, anyone can reproduce these draws"
HIDDEN = "hidden"


def grading_key(cases_dir):
    """(key bytes, secret?): the digest of every file under cases_dir/hidden
    (names and contents, in sorted order), or PUBLIC_KEY when there is none."""
    folder = Path(cases_dir) / HIDDEN if cases_dir else None
    if folder is None or not folder.is_dir():
        return PUBLIC_KEY, False
    digest = hashlib.sha256()
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    if not files:
        return PUBLIC_KEY, False
    return digest.digest(), True


def submission_seed(key, files):
    """An int seed from key and {name: path} of the graded files (names
    sorted; a missing file simply does not take part)."""
    message = hashlib.sha256()
    for name in sorted(files):
        message.update(name.encode() + b"\0")
        message.update(_file_digest(files[name]))
    return int.from_bytes(hmac.new(key, message.digest(), hashlib.sha256).digest()[:16], "big")


def _file_digest(path, chunk=1 << 20):
    """SHA-256 of a submission file, read as the sandbox copies it: never
    through a link, a regular file only, at most LARGEST_FILE bytes."""
    digest = hashlib.sha256()
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(handle, "rb") as reader:
        if not stat.S_ISREG(os.fstat(reader.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        left = LARGEST_FILE + 1
        while left > 0:
            data = reader.read(min(chunk, left))
            if not data:
                break
            digest.update(data)
            left -= len(data)
    return digest.digest()
