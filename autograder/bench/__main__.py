"""``python -m autograder.bench``: the same as ``python -m autograder bench``."""
import sys

from autograder.cli import main

sys.exit(main(["bench"] + sys.argv[1:]))
