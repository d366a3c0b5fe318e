"""dist/handout.zip: the handout's files, a requirements.txt and the public
grader (what of the package ships to students: autograder/authoring/shipping.py)
under one folder; and whether a built zip is the one the handout makes."""
import io
import zipfile
from pathlib import Path

from autograder.authoring import shipping
from autograder.authoring.handout_plan import display
from autograder.layout import ASSIGNMENT, PACKAGE as GRADER_DIR
from autograder.provided import PROVIDED_FILES

ZIP_FOLDER = "cnn-handout"
# What a student installs: the assignment's code, the notebooks, and the public grader's imports.
STUDENT_REQUIREMENTS = """\
# Install torch first (see README.md for the CPU-only wheel), then: pip install -r requirements.txt
torch==2.13.0
numpy
tqdm
matplotlib
pyyaml
jupyterlab
ipykernel
gradescope-utils==0.5.0
"""


def grader_files(grader_dir=GRADER_DIR):
    """{path relative to grader_dir: bytes} of the public grader, sorted, the
    provided code included (autograder/authoring/shipping.py decides)."""
    return shipping.package_files("students", grader_dir)


def zip_bytes(handout, grader_dir=GRADER_DIR):
    """The handout zip: assignments/ files, requirements.txt and the public
    grader under ZIP_FOLDER/ (shipping.zip_bytes: fixed order, dates and modes).
    The grader trains and normalizes with its own copy of the provided code
    (autograder/provided.py), never with the student's possibly edited one."""
    members = {f"{ZIP_FOLDER}/{path}": data for path, data in handout.files.items()}
    members[f"{ZIP_FOLDER}/requirements.txt"] = STUDENT_REQUIREMENTS.encode("utf-8")
    for path, data in grader_files(grader_dir).items():
        members[f"{ZIP_FOLDER}/autograder/{path}"] = data
    for name in PROVIDED_FILES:     # the handout's own copy, byte for byte
        members[f"{ZIP_FOLDER}/autograder/{shipping.PROVIDED_FOLDER}/{name}"] = handout.files[f"{ASSIGNMENT}/{name}"]
    return shipping.zip_bytes(members)


def check_zip(handout, zip_path, grader_dir=GRADER_DIR):
    """Differences between the handout zip at zip_path and the one handout
    makes (none when no zip was built: nothing stale can be handed out)."""
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        return []
    wanted = zip_bytes(handout, grader_dir)
    if zip_path.read_bytes() == wanted:
        return []
    try:
        with zipfile.ZipFile(zip_path) as old:
            before = {name: old.read(name) for name in old.namelist()}
    except (zipfile.BadZipFile, OSError):
        before = {}
    with zipfile.ZipFile(io.BytesIO(wanted)) as new:
        after = {name: new.read(name) for name in new.namelist()}
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    more = f" (+{len(changed) - 5} more)" if len(changed) > 5 else ""
    return [f"{display(zip_path)} is out of date: {', '.join(changed[:5]) or 'its layout'}{more} "
            f"differ; run `make handout` to rebuild it"]
