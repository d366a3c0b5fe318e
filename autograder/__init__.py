"""Autograder for the CNN unit: grades a submission (layers.py, models.py,
convnet.pt, fcnet.pt) without ever importing student code into the grading
process, and builds the student handout from solutions/.

Run as ``python -m autograder COMMAND ...``; see ``python -m autograder --help``.
"""
