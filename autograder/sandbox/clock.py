"""The time limit of a worker call (CallClock): fixed, or paced by the call's
own progress reports."""

PROGRESS_SLACK = 2.0            # a call that reports progress may take this many times its pace's total
PROGRESS_GRACE = 20.0           # ... plus this many seconds


class CallClock:
    """The time limit of one worker call, and what to say when it runs out.

    A call has a fixed limit (`limit` seconds from its start), unless it
    reports progress (Job.call(progress=True): {"progress": step id, "done",
    "total", "unit"} lines on the channel). Then `limit` bounds only the time
    to its first report; from there on it may take PROGRESS_SLACK times what
    its own pace says the whole takes, plus PROGRESS_GRACE seconds. So the
    limit follows the work the call was given and the speed of this machine,
    and a slow call that keeps going is told how far it got, not called an
    infinite loop."""

    def __init__(self, what, limit, started, progress=False):
        self.what = what              # "predict", "importing the submission", ...
        self.limit = limit
        self.started = started
        self.progress = progress
        self.report = None            # (done, total, unit, time) of the latest report

    def note(self, done, total, unit, now):
        """Record a progress report (ignored for a call without progress=True);
        False if it is malformed."""
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (done, total))
        if not (numbers and 0 <= done <= total and total > 0 and isinstance(unit, str) and len(unit) <= 40):
            return False
        if self.progress and done > 0:
            self.report = (done, total, unit, now)
        return True

    def projected(self):
        """Seconds the whole call takes at its pace so far (None before a report)."""
        if self.report is None:
            return None
        done, total, _, at = self.report
        return (at - self.started) / done * total

    def deadline(self):
        projected = self.projected()
        if projected is None:
            return self.started + self.limit
        return self.started + PROGRESS_SLACK * projected + PROGRESS_GRACE

    def expired(self, now, budget_ran_out):
        """The failure of a call stopped at `now` (by its limit, or by the grading budget)."""
        elapsed = now - self.started
        if self.report is None:
            if budget_ran_out:
                return {"kind": "not_run", "message": "not run: the grading time budget ran out"}
            if self.progress:
                return {"kind": "timeout",
                        "message": f"timed out: {self.what} reported no progress within "
                                   f"{self.limit:.3g} s of starting (an infinite loop, or a model "
                                   f"far slower than the rules allow?)"}
            return {"kind": "timeout", "message": f"timed out: {self.what} did not finish within "
                                                  f"{self.limit:.3g} s (an infinite loop?)"}
        done, total, unit, _ = self.report
        how_far = (f"{self.what} had done {done:,.0f} of {total:,.0f} {unit} ({done / total:.0%}); "
                   f"at that pace the whole would take about {self.projected():.0f} s")
        if budget_ran_out:
            return {"kind": "timeout", "message": f"stopped when the grading time budget ran out, "
                                                  f"after {elapsed:.0f} s: {how_far}"}
        return {"kind": "timeout",
                "message": f"stopped after {elapsed:.0f} s: {how_far}, and it slowed down past "
                           f"{PROGRESS_SLACK:g} times that pace plus {PROGRESS_GRACE:g} s"}
