"""What of the grader package ships to whom, decided by folder, and the one
deterministic zip writer of the handout and the Gradescope zip.

The rule (autograder/layout.py): the staff folders (STAFF_ONLY) never ship;
Gradescope gets the rest, its scripts (GRADESCOPE_SCRIPTS) at the zip's root;
students get what Gradescope gets minus STUDENTS_NEVER (the hidden cases, the
Gradescope scripts) and minus the TA-check files that are not all visible
(autograder/ta/suite.py unshipped). The wheel (pyproject.toml; setup.py
writes package_files("wheel") into it) holds the whole package. Every copy adds the provided data.py and train.py under provided/
(autograder/provided.py), taken from solutions/cnn at build time.
"""
import fnmatch
import io
import os
import zipfile
from pathlib import Path

from autograder.layout import (GRADESCOPE_SCRIPTS, JUNK, PACKAGE, REFERENCE_DIR, STAFF_ONLY, STUDENTS_NEVER,
                               TA_CHECKS_DIR)
from autograder.provided import PROVIDED_FILES

AUDIENCES = ("gradescope", "students", "wheel")
PROVIDED_FOLDER = "provided"                 # built copies only; never taken from the tree
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ShippingError(Exception):
    """A file that must ship is missing; the message names it."""


def is_junk(name):
    return any(fnmatch.fnmatch(name, pattern) for pattern in JUNK)


def excluded_paths(audience, grader_dir=PACKAGE):
    """Paths relative to grader_dir that `audience` does not get."""
    if audience not in AUDIENCES:
        raise ValueError(f"excluded_paths: audience must be one of {AUDIENCES}, not {audience!r}")
    excluded = (PROVIDED_FOLDER,)
    if audience == "wheel":
        return excluded
    excluded += STAFF_ONLY + (GRADESCOPE_SCRIPTS,)
    if audience == "students":
        from autograder.ta import suite as ta_suite

        folder = Path(grader_dir) / TA_CHECKS_DIR.name
        unshipped, _ = ta_suite.unshipped(folder)
        excluded += STUDENTS_NEVER + tuple(unshipped)
    return excluded


def tree_files(folder, excluded=()):
    """{path relative to folder: bytes}, sorted, without junk and without the
    files and folders whose relative path is in excluded."""
    out = {}
    for current, subfolders, names in os.walk(folder):
        relative_folder = os.path.relpath(current, folder).replace(os.sep, "/")
        prefix = "" if relative_folder == "." else relative_folder + "/"
        subfolders[:] = sorted(d for d in subfolders if prefix + d not in excluded and not is_junk(d))
        for name in names:
            if prefix + name not in excluded and not is_junk(name):
                out[prefix + name] = (Path(current) / name).read_bytes()
    return dict(sorted(out.items()))


def provided_files(reference_dir=REFERENCE_DIR):
    """{provided/NAME: bytes} of the provided code, from the reference folder."""
    out = {}
    for name in PROVIDED_FILES:
        source = Path(reference_dir) / name
        if not source.is_file():
            raise ShippingError(f"autograder/authoring/shipping.py: provided_files: the provided file "
                                f"{source} is missing")
        out[f"{PROVIDED_FOLDER}/{name}"] = source.read_bytes()
    return out


def package_files(audience, grader_dir=PACKAGE, reference_dir=REFERENCE_DIR):
    """{path relative to the package: bytes} of what `audience` gets, the
    provided code included."""
    files = tree_files(Path(grader_dir), excluded_paths(audience, grader_dir))
    files.update(provided_files(reference_dir))
    return dict(sorted(files.items()))


def gradescope_scripts(grader_dir=PACKAGE):
    """{name: bytes} of the scripts at the Gradescope zip's root."""
    return tree_files(Path(grader_dir) / GRADESCOPE_SCRIPTS)


def zip_bytes(members, executable=()):
    """A zip of {name: bytes}: sorted names, fixed dates, Unix modes (0755 for
    the names in executable, else 0644), so that the same input always gives
    the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3                     # Unix, so that the mode bits apply
            info.external_attr = (0o100755 if name in executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, members[name], compresslevel=9)
    return buffer.getvalue()
