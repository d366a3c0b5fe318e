"""What the layer checks grade with (LayerEnv: the grading context and the
cases) and the jobs they run over layers.py (new_job)."""
from dataclasses import dataclass

from autograder.imports import FRAMEWORKS
from autograder.layout import LAYERS_FILE
from autograder.sandbox import Job, JobOutcome, StepResult

FILE = LAYERS_FILE


def new_job(name):
    """A job over layers.py, which must compute with numpy: no framework
    (torch, ...) is available to it."""
    job = Job(name, files=[FILE])
    job.module("layers", FILE)
    job.forbid(FRAMEWORKS, FILE)
    return job


@dataclass
class LayerEnv:
    """What the layer checks grade with: the grading context and the cases."""
    ctx: object                   # autograder.parts.GradingContext
    cases: object                 # autograder.cases.CaseSet

    def run(self, job):
        """Run job; when layers.py is missing or unusable, every step fails
        with the submission's own explanation."""
        if FILE not in self.ctx.submission.files:
            message = self.ctx.submission.missing_message(FILE)
            return JobOutcome(results={step["id"]: StepResult(False, error={
                "kind": "missing_file", "message": message}) for step in job.steps})
        return self.ctx.run(job)
