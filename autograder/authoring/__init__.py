"""Authoring (staff only, never shipped): everything built from solutions/.

- ``build_cases``: the grader's test cases (public and hidden) from the reference layers.py
  (a package: the builder, one module per layer, the command and fingerprint);
- ``markers``: the solution-region markers of solutions/ and the stubs they become;
- ``handout``: the command making assignments/ and dist/handout.zip, or checking them; the work
  split by concern: ``handout_plan`` (what each file of solutions/ becomes), ``handout_rubric``
  (the README's rubric table), ``handout_build`` (generate, write, sync check), ``handout_zip``,
  ``handout_leaks`` (the leak check), ``handout_checks`` (stubs raise, notebooks run);
- ``autograder_zip``: dist/autograder.zip for Gradescope;
- ``shipping``: what of the package ships to Gradescope and to students, and the one zip writer;
- ``promises``: the README's rubric figures against the rubric.
"""
