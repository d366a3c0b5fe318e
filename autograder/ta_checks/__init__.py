"""Checks the course staff add without touching the grader: each
``test_*.py`` file here is a unittest module written with gradescope-utils'
decorators, run by the grader with the part its @tags belong to (README.md,
"TA checks"; autograder/ta/suite.py runs them). Inside a test,

    from autograder.ta_checks import student

    out, cache = student.layers.conv_forward(x, w, b, {"stride": 1, "pad": 1})

calls the submission in a sandboxed worker and returns plain values
(autograder/ta/student.py). A file whose checks are all visible ships to
students with the public grader; any other stays with the staff.
"""
from autograder.ta.student import StudentCallError, student

__all__ = ["StudentCallError", "student"]
