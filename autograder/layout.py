"""Where things are and what they are called: the one place for the
package's folders, the repository's (when the grader runs from a checkout),
the submission's file names and what ships where.

The package is laid out by concern; SHIPPING says which folders reach whom:

    (top level)   the grading runtime: grade, rubric, results, submission,
                  cases, outcomes, answers, imports, provided, speed,
                  submission_metadata and budget (the optional submission budget);
                  the students' check and pack commands, start_here, upload_notes
    parts/        what is graded: layers/ (numpy layers) and cnn/ (models)
    pictures/     what students see besides text: pictures, Gradescope html, changes
    sandbox/      the trust boundary, grader side: starts and reads workers
    worker/       the untrusted side: copied into each worker's job folder and
                  run there by path, next to student code; never imported here
    ta/           the TA-check runtime (discovery, the sandboxed `student`
                  handles); ta_checks/ holds the checks themselves
    gradescope/   setup.sh and run_autograder, the root of the Gradescope zip
    authoring/    builds the cases, the handout and the Gradescope zip (staff)
    staff/        regrade, the class report, calibrations (staff)
    bench/        make bench and its box of Gradescope's size (staff)
"""
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# The repository around the package; outside a checkout (an installed wheel)
# these paths do not exist, and only staff tools need them.
REPO = PACKAGE.parent
SOLUTIONS_DIR = REPO / "solutions"
ASSIGNMENTS_DIR = REPO / "assignments"
DIST_DIR = REPO / "dist"
README = REPO / "README.md"
ASSIGNMENT = "cnn"                                  # solutions/cnn -> assignments/cnn
REFERENCE_DIR = SOLUTIONS_DIR / ASSIGNMENT          # the reference submission

# The submission: the files graded, each with the largest size accepted (bytes).
LAYERS_FILE = "layers.py"
MODELS_FILE = "models.py"
CHECKPOINTS = {"ConvNet": "convnet.pt", "FCNet": "fcnet.pt"}   # model class -> its checkpoint
SUBMISSION_FILES = {
    LAYERS_FILE: 1_000_000,
    MODELS_FILE: 1_000_000,
    CHECKPOINTS["ConvNet"]: 50_000_000,
    CHECKPOINTS["FCNet"]: 50_000_000,
}
STUDENT_CODE = (LAYERS_FILE, MODELS_FILE)           # the student's Python files

# Data folders of the package.
CASES_DIR = PACKAGE / "cases"
RUBRIC_PATH = PACKAGE / "rubric.yaml"
TA_CHECKS_DIR = PACKAGE / "ta_checks"
WORKER_DIR = PACKAGE / "worker"
GRADESCOPE_DIR = PACKAGE / "gradescope"
PROVIDED_COPY_DIR = PACKAGE / "provided"           # data.py and train.py in built copies

# What ships, decided by folder (paths relative to the package). The
# Gradescope zip holds the package minus STAFF_ONLY (GRADESCOPE_SCRIPTS at its
# root instead of inside); the students' copy is that minus STUDENTS_NEVER
# (and minus the TA checks that are not visible, decided per file).
STAFF_ONLY = ("authoring", "staff", "bench")
GRADESCOPE_SCRIPTS = "gradescope"
STUDENTS_NEVER = ("cases/hidden", GRADESCOPE_SCRIPTS)
JUNK = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.tmp", "*.egg-info")
