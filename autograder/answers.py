"""The written answers of the notebooks, collected for the course staff.

Notebook 3 (and any other handout notebook) asks inline questions; a student
may upload the notebooks next to the four graded files. The grader never runs
a notebook: it reads the uploaded JSON (size-capped, parsed as data only),
takes the markdown cells tagged ANSWER_TAG (the handout's answer cells) with
the question cell before each, and notes whether the notebook holds a plot.
The result, when the upload holds a handout notebook, is a 0-point test (added to the grade's results.Results) that shows the student what the staff will read,
and `extra_data["written_answers"]` for the staff's tools. The answers are
graded by hand (a manual question of the Gradescope assignment, where the
uploaded notebook is shown rendered, plots included).
"""
import json
import os
import stat

SOLUTION_TAG = "solution"                 # a model answer of the course's own notebooks
ANSWER_TAG = "answer"                     # the handout build turns it into a cell tagged so
ANSWER_PLACEHOLDER = "*Your answer here.*"  # holding this text (autograder/authoring/markers.py)
NOTEBOOKS = ("1_convolution_pooling.ipynb", "2_batchnorm_dropout.ipynb", "3_cifar10_training.ipynb")
PLOTTED = ("3_cifar10_training.ipynb",)    # the notebooks whose plot the staff read
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
MAX_ANSWER_CHARS = 4000
TEST_NUMBER = "10.1"     # after the rubric's; TA checks may not take it
TEST_NAME = "Written answers of the notebooks (0 points here: graded by hand by the course staff)"


def _text(source):
    return "".join(source) if isinstance(source, list) else str(source or "")


def read_answers(path):
    """{'questions': [(question, answer)], 'has_plot': bool} of one notebook, or
    {'problem': why it could not be read}."""
    try:
        # Never through a link: a link in the upload could point at the grader's files.
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with open(handle, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return {"problem": "not a regular file"}
            raw = fh.read(MAX_NOTEBOOK_BYTES + 1)
        if len(raw) > MAX_NOTEBOOK_BYTES:
            return {"problem": f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"}
        cells = json.loads(raw)["cells"]
        if not isinstance(cells, list):
            raise TypeError("'cells' is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"problem": f"not a readable notebook ({type(exc).__name__}: {exc})"}
    questions, previous, has_plot = [], "", False
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        source = _text(cell.get("source"))
        tags = (cell.get("metadata") or {}).get("tags") or []
        if cell.get("cell_type") == "markdown" and (ANSWER_TAG in tags or SOLUTION_TAG in tags):
            questions.append((previous.strip(), source.strip()[:MAX_ANSWER_CHARS]))
        elif cell.get("cell_type") == "markdown":
            previous = source
        for output in cell.get("outputs") or []:
            if isinstance(output, dict) and "image/png" in (output.get("data") or {}):
                has_plot = True
    return {"questions": questions, "has_plot": has_plot}


def uploaded_notebooks(submission):
    """{name: path} of the handout notebooks in the upload, at its top or one
    folder below (the places the graded files may be), never through a link."""
    root = os.path.realpath(submission.root)
    found = {}
    for relative in submission.notebooks:
        path = submission.root / relative
        if (relative.name in NOTEBOOKS and len(relative.parts) <= 2
                and os.path.realpath(path.parent) == os.path.join(root, *relative.parts[:-1])):
            found.setdefault(relative.name, path)
    return found


def add_answers(results, submission):
    """Add the 0-point test listing the written answers found in the upload to
    results (a results.Results), and its extra_data["written_answers"]."""
    found = uploaded_notebooks(submission)
    lines, extra = [], {}
    if not found:
        lines.append("No handout notebook was uploaded, so no written answers were collected. "
                     "To hand in the answers to the inline questions, upload "
                     f"{NOTEBOOKS[-1]} (and the other notebooks, if they hold answers) with your "
                     "four files, under its own name; it is not run, only read.")
    for name, path in sorted(found.items()):
        answers = read_answers(path)
        extra[name] = answers
        if "problem" in answers:
            lines.append(f"{name}: could not be read: {answers['problem']}.")
            continue
        written = [(q, a) for q, a in answers["questions"] if a and a != ANSWER_PLACEHOLDER]
        lines.append(f"{name}: {len(written)} of {len(answers['questions'])} answer cells written"
                     + _plot_note(name, answers["has_plot"]) + ".")
        if not answers["questions"]:
            lines.append("  No answer cells found: answer in the cells that say "
                         f"{ANSWER_PLACEHOLDER!r} (their tag '{ANSWER_TAG}' marks them).")
        for question, answer in answers["questions"]:
            first = question.splitlines()[0] if question else "(question)"
            lines.append(f"  {first}\n    " + (answer.replace("\n", "\n    ")
                                               if answer != ANSWER_PLACEHOLDER else "(not answered)"))
    results.add_extra(TEST_NUMBER, TEST_NAME, "\n".join(lines), "visible", ["notebooks"])
    results.extra_data["written_answers"] = extra


def _plot_note(name, has_plot):
    """What the answers test says of a notebook's plot (only where one is expected)."""
    if name not in PLOTTED:
        return ""
    return "; it holds a plot" if has_plot else ("; it holds no plot (run it before uploading so "
                                                 "that the staff see your curves)")
