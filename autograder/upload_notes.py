"""The submission's lines at the top of a grade's feedback, and the one
place a local grade may read CIFAR-10 from without being told: the student's
own handout.

upload_notes(): the submission summary for the files the graded part needs
(--part layers needs layers.py only), a line when the upload holds a copy of
CIFAR-10 (never read: submission.data_note), the imports the grader lacks.
The grader's own handout is the folder around the package (layout.REPO, the
unzipped handout on a student's machine); its cnn/data/ is where the
handout's data.py puts the data (grade.find_data_dir reads it there, and only
when that handout's own cnn/ is graded).
"""
from pathlib import Path

from autograder import layout
from autograder.imports import import_warnings
from autograder.parts import PARTS, load_part
from autograder.submission import data_note


def handout_data_dir():
    """cnn/data/ of the handout folder around this grader (the student's own copy)."""
    return layout.REPO / layout.ASSIGNMENT / "data"


def is_own_handout(folder):
    """Whether folder is the handout around this grader or its cnn/ folder."""
    own = layout.REPO.resolve()
    return Path(folder).resolve() in (own, own / layout.ASSIGNMENT)


def upload_notes(args, submission):
    """The lines for the top of the feedback (grade's args: --part)."""
    needed = [name for part in (PARTS if args.part == "all" else [args.part])
              for name in load_part(part).FILES]
    lines = submission.summary_lines(needed)
    note = data_note(submission)
    if note and args.part != "layers" and not is_own_handout(submission.root):
        lines.append(note)
    return lines + import_warnings(submission)
