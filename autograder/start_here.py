"""The first lines of a local grade of the untouched handout: where to start.

Graded before anything is written, the handout's stubs fail every layers
test with NotImplementedError and the checkpoints are missing; the student
should first read what to do next, not a missing-file block. start_lines()
says it when every test of the layers part failed that way (the grade's own
results, never a guess from file contents).
"""
STUB_ERROR = "NotImplementedError"


def start_lines(results, entries):
    """Lines for the top of the console (none unless every layers test hit a
    stub); entries: the rubric entries the grade read (rubric.RubricEntry)."""
    layers = {entry.number for entry in entries if entry.part == "layers"}
    tests = [test for test in results["tests"] if test["number"] in layers]
    if not tests or not all(test["score"] == 0 and STUB_ERROR in test["output"] for test in tests):
        return []
    return ["START HERE: every function of layers.py still raises NotImplementedError (the handout's "
            "stubs), so the checks below score 0 as expected, and the checkpoints come only later, "
            "from notebook 3.",
            "Open cnn/1_convolution_pooling.ipynb, implement conv_forward in cnn/layers.py, and check "
            "it the way Gradescope does:",
            "    python -m autograder check conv_forward        (in the notebook: check(\"conv_forward\"))",
            "When all four files are done, `python -m autograder pack` checks them and writes "
            "submission.zip.", "", ""]
