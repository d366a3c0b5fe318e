"""Authoring (staff only, never shipped): everything built from solutions/.

- ``build_cases``: the grader's test cases (public and hidden) from the reference layers.py
  (a package: the builder, one module per layer, the command and fingerprint);
- ``markers``: the solution-region markers of solutions/ and the stubs they become;
- ``handout``, ``handout_checks``: assignments/ and dist/handout.zip, and their checks;
- ``autograder_zip``: dist/autograder.zip for Gradescope;
- ``shipping``: what of the package ships to Gradescope and to students, and the one zip writer;
- ``promises``: the README's rubric figures against the rubric.
"""
