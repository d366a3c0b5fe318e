"""Staff tools (never shipped): ``regrade`` a class export into a CSV and
``class_results``/``report`` (report.html), ``checkpoint_similarity`` (the
class's shared checkpoints, a lead for review), with ``safe_text`` showing
student-controlled text in them as text; ``calibrate_curves`` and
``calibrate_accuracy`` measure the reference models for the rubric's bands."""
