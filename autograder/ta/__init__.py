"""The TA-check runtime: ``suite`` finds, validates and runs the unittest
modules of autograder/ta_checks/ (gradescope-utils' JSONTestRunner) and
merges them into the results; ``student`` is the sandboxed ``student``
handle they call the submission with. The checks themselves live in
autograder/ta_checks/."""
