"""Bench tooling (never shipped): ``bench`` (``python -m autograder bench``,
``make bench``) measures what a grade costs, ``box`` makes a cgroup of
Gradescope's default size, ``at_limits`` writes a submission at the limits
of the rules."""
