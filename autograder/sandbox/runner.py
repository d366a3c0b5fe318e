"""Sandbox: runs a Job in worker processes, one after another when a worker
hangs or crashes, each confined (autograder/sandbox/confine.py) and read over
its channel with a time limit per call (autograder/sandbox/clock.py)."""
import json
import os
import pwd
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from autograder.layout import WORKER_DIR
from autograder.sandbox import confine
from autograder.sandbox.clock import CallClock
from autograder.sandbox.confine import (AUTO, GRADER_TREE, JOB_TOKEN_VARIABLE, PACKAGE, Limits,
                                        become_subreaper, confine_worker, framework_folders,
                                        interpreter_folders, kill_tagged_processes, network_isolation,
                                        plan_mounts, reap, shared_writable_folders, worker_identity)
from autograder.sandbox.protocol import JobOutcome, StepResult, decode_value
from autograder.submission import SubmissionFileError, copy_submission_file

WORKER_SCRIPT = WORKER_DIR / "worker.py"
GUARD_SCRIPT = WORKER_DIR / "numpy_only.py"     # beside worker.py; used by jobs that forbid frameworks
CALL_TIMEOUT = 10.0             # seconds of wall time for one call (times its timeout_scale)
IMPORT_TIMEOUT = 20.0           # starting Python, numpy and the submission's modules
MAX_LAUNCHES = 3                # workers per job: the first, plus restarts after a hang or crash
MAX_LINE_BYTES = 1 << 20
WORKER_OUTPUT_TAIL = 1500        # bytes of a failed worker's stdout/stderr shown on the console
_python_usable = {}              # (interpreter, worker identity, mount plan) -> it runs numpy then


class Sandbox:
    def __init__(self, python=sys.executable, call_timeout=CALL_TIMEOUT, import_timeout=IMPORT_TIMEOUT,
                 max_launches=MAX_LAUNCHES, deadline=None, user=AUTO, limits=Limits(),
                 isolate_network=True, hidden=(), slowness=1.0):
        """hidden: folders to hide from the worker besides GRADER_TREE (e.g. the
        results folder or a --cases-dir elsewhere), where it gets a mount namespace.
        slowness: how many times slower than the reference machine this one
        runs (autograder/speed.py); every time limit is scaled by it."""
        self.python = python
        self.call_timeout = call_timeout
        self.import_timeout = import_timeout
        self.slowness = slowness
        self.max_launches = max_launches
        self.deadline = deadline          # time.monotonic() after which nothing more runs
        self.total_cpu_seconds = 0.0      # user + system time of every worker so far
        self.limits = limits
        self.network_flags = network_isolation() if isolate_network else 0
        self.identity = worker_identity(user)
        become_subreaper()
        self.warnings = []                # isolation this machine could not give, for the log
        self.hidden = tuple(GRADER_TREE) + shared_writable_folders() + tuple(str(path) for path in hidden)
        self.folders = None               # interpreter_folders(python) when workers get a mount namespace
        if self.identity is not None:
            self._use_mount_namespace()
        if self.identity is not None and not self._identity_can_run_python():
            problem = (f"user {pwd.getpwuid(self.identity[0]).pw_name} cannot run {self.python} "
                       f"(is a folder on its path closed to other users?)")
            if user != AUTO:
                raise RuntimeError(f"autograder/sandbox/runner.py: Sandbox: {problem}")
            self.warnings.append(f"student code runs as the grader's own user: {problem}")
            self.identity = None
        if isolate_network and not self.network_flags:
            self.warnings.append("no network namespace available here: network access is "
                                 "blocked only at the Python level")

    def _use_mount_namespace(self):
        """Give workers a private mount namespace (enter_mount_namespace) when
        the kernel allows it and the worker's user can run the interpreter in
        it; otherwise say so in self.warnings and rely on permissions."""
        if not confine.mount_isolation():
            self.warnings.append("no mount namespace available here: the grader's files are kept "
                                 "from student code by their permissions only")
            return
        try:
            self.folders = interpreter_folders(self.python)
            if self._identity_can_run_python():
                return
            problem = (f"user {pwd.getpwuid(self.identity[0]).pw_name} cannot run {self.python} "
                       f"even there")
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            problem = str(exc) or type(exc).__name__
        self.folders = None
        self.warnings.append(f"the worker's mount namespace is not used ({problem}): the grader's "
                             f"files are kept from student code by their permissions only")

    def mount_plan(self, job_dir=None, hide=()):
        """The worker's MountPlan (None: no mount namespace): GRADER_TREE,
        self.hidden, the grader package the interpreter would import and the
        folders `hide` (a job's forbidden frameworks) hidden; the
        interpreter's folders and the job folder shown."""
        if self.folders is None or self.identity is None:
            return None
        needed, optional, grader = self.folders
        return plan_mounts(self.identity, show=needed, show_if_possible=optional,
                           hide=self.hidden + grader + tuple(hide),
                           show_writable=() if job_dir is None else (job_dir,))

    def forbidden_folders(self, job):
        """The folders of the frameworks job.forbidden names, to hide from its
        worker (only where workers get a mount namespace; elsewhere the
        worker's import hook alone keeps them out)."""
        if not job.forbidden or self.folders is None or self.identity is None:
            return ()
        return framework_folders(self.python, job.forbidden["modules"])

    def _identity_can_run_python(self):
        mounts = self.mount_plan()
        key = (self.python, self.identity, mounts)
        if key not in _python_usable:
            _python_usable[key] = self._probe_python(mounts)
        return _python_usable[key]

    def _probe_python(self, mounts=None):
        """Whether the worker's user may run the interpreter (in the mount
        namespace of plan `mounts`, if any). Only a refusal counts: any other
        failure (e.g. EAGAIN while that user has too many processes) must not
        quietly turn the privilege drop off."""
        identity = self.identity
        # About permissions only: not limited by how many processes the user has right now.
        limits = replace(self.limits, processes=resource.RLIM_INFINITY)
        try:
            probe = subprocess.run([self.python, "-I", "-c", "import numpy"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/",
                                   preexec_fn=lambda: confine_worker(identity, limits, 0, mounts, "/"),
                                   timeout=120)
        except PermissionError:
            return False
        if probe.returncode != 0 and b"Permission denied" in probe.stderr:
            return False
        if probe.returncode != 0:
            raise RuntimeError(f"autograder/sandbox/runner.py: Sandbox: {self.python} failed to import numpy "
                               f"as the worker's user: {probe.stderr.decode(errors='replace')[-500:]}")
        return True

    # -- process policy ------------------------------------------------------
    def environment(self, workdir, token):
        single_thread = "1"
        return {
            JOB_TOKEN_VARIABLE: token,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": single_thread,
            "OPENBLAS_NUM_THREADS": single_thread,
            "MKL_NUM_THREADS": single_thread,
            "MPLBACKEND": "Agg",
        }

    def launch(self, job_dir, workdir, channel_fd, stdout, stderr, token, hide=()):
        """Start the worker confined (see confine_worker) in its own session, so
        that its whole process group can be killed. hide: more folders to hide
        from it (mount_plan)."""
        identity, limits, network_flags = self.identity, self.limits, self.network_flags
        mounts, cwd = self.mount_plan(job_dir, hide), str(workdir)
        return subprocess.Popen(
            [self.python, "-I", "-B", str(job_dir / "bin" / WORKER_SCRIPT.name), str(job_dir)],
            cwd=workdir, env=self.environment(workdir, token), stdin=subprocess.DEVNULL,
            stdout=stdout, stderr=stderr, pass_fds=(channel_fd,), start_new_session=True,
            preexec_fn=lambda: confine_worker(identity, limits, network_flags, mounts, cwd))

    @staticmethod
    def kill(process, token):
        """Kill the worker's group and every process left with its token;
        returns the PIDs to reap once the worker itself was waited for."""
        survivors = kill_tagged_processes(token)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return (survivors | kill_tagged_processes(token)) - {process.pid}

    def prepare_job_folder(self, root, job, steps, submission, channel_fd):
        """The worker's whole world: bin/ (worker.py and the trusted helpers),
        submission/ (copies of the files the job needs), in/ (input arrays),
        out/ (its results) and job.json; owned by the worker's user."""
        (root / "bin").mkdir()
        shutil.copyfile(WORKER_SCRIPT, root / "bin" / WORKER_SCRIPT.name)
        shutil.copyfile(GUARD_SCRIPT, root / "bin" / GUARD_SCRIPT.name)
        helpers = {}
        for name, path in job.helpers.items():
            helpers[name] = str(root / "bin" / f"helper_{name}.py")
            shutil.copyfile(path, helpers[name])
        workdir = root / "submission"
        workdir.mkdir()
        for name in job.files:
            copy_submission_file(submission[name], workdir / name)
        (root / "in").mkdir()
        (root / "out").mkdir()
        for name, array in job.arrays.items():
            np.save(root / name, array, allow_pickle=False)
        wire = dict(job.wire(steps), channel_fd=channel_fd, helpers=helpers, block_network=True)
        (root / "job.json").write_text(json.dumps(wire))
        # The worker may read everything here but write only in submission/
        # and out/; it cannot rename or replace those two (root stays ours).
        for folder, _, files in os.walk(root):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        if self.identity is not None:
            uid, gid = self.identity
            for writable in (workdir, root / "out"):
                os.chown(writable, uid, gid)
                for name in os.listdir(writable):
                    os.chown(writable / name, uid, gid)
        return workdir

    # -- running jobs ----------------------------------------------------------
    def run(self, job, submission):
        """Run every step of job; submission maps file names to paths (a
        missing name means the file was not submitted)."""
        outcome = JobOutcome(results={})
        missing = [name for name in job.files if name not in submission]
        if missing:
            names = ", ".join(missing)
            for step in job.steps:
                outcome.results[step["id"]] = StepResult(False, error={
                    "kind": "missing_file",
                    "message": f"not run: {names} was not found in the submission"})
            return outcome

        units = [list(unit) for unit in job.units]
        steps_by_id = {step["id"]: step for step in job.steps}
        while units:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self._fail_units(outcome, units, "not_run", "not run: the grading time budget ran out")
                break
            if outcome.launches >= self.max_launches:
                self._fail_units(outcome, units, "not_run",
                                 f"not run: the worker process failed {outcome.launches} times "
                                 f"in {job.name}; the remaining calls were skipped")
                break
            steps = [steps_by_id[step_id] for unit in units for step_id in unit]
            try:
                received, failure = self._launch_once(job, steps, submission, outcome)
            except SubmissionFileError as exc:
                self._fail_units(outcome, units, "missing_file", f"not run: {exc}")
                break
            outcome.results.update(received)
            if failure is None:
                break
            if failure.get("kind") == "import_error":
                self._fail_units(outcome, units, "import_error", failure["message"], failure)
                break
            # The first step without a result is the one that hung or crashed.
            failed_id = next(step["id"] for step in steps if step["id"] not in received)
            failed_unit = next(i for i, unit in enumerate(units) if failed_id in unit)
            outcome.results[failed_id] = StepResult(False, error=failure)
            rest = [step_id for step_id in units[failed_unit] if step_id not in outcome.results]
            self._fail_units(outcome, [rest], "dependency",
                             "not run: an earlier call of the same case failed")
            units = units[failed_unit + 1:]
        return outcome

    @staticmethod
    def _fail_units(outcome, units, kind, message, error=None):
        for unit in units:
            for step_id in unit:
                if step_id not in outcome.results:
                    outcome.results[step_id] = StepResult(False, error=dict(
                        error or {}, kind=kind, message=message))

    def _launch_once(self, job, steps, submission, outcome):
        """One worker process over `steps`. Returns (results received, failure
        or None when the worker finished every step)."""
        root = Path(tempfile.mkdtemp(prefix="autograder-job-"))
        token = secrets.token_hex(16)
        read_fd, write_fd = os.pipe()
        try:
            workdir = self.prepare_job_folder(root, job, steps, submission, write_fd)
            # Output files are created outside the job folder (which the worker
            # owns and could fill with links) and are capped by RLIMIT_FSIZE.
            with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
                try:
                    process = self.launch(root, workdir, write_fd, stdout, stderr, token,
                                          self.forbidden_folders(job))
                finally:
                    os.close(write_fd)
                    write_fd = None
                outcome.launches += 1
                try:
                    messages, failure = self._read_channel(read_fd, steps)
                finally:
                    orphans = self.kill(process, token)
                    _, status, usage = os.wait4(process.pid, 0)
                    process.returncode = os.waitstatus_to_exitcode(status)
                    reap(orphans)
                if failure is not None and failure["kind"] == "crashed":
                    failure["message"] = self._crash_message(process.returncode)
                if failure is not None and failure["kind"] in ("crashed", "timeout", "garbage"):
                    self._log_worker_output(job.name, failure, stdout, stderr)
            self.total_cpu_seconds += usage.ru_utime + usage.ru_stime
            results = {message["id"]: self._decode_step(message, root / "out") for message in messages}
            return results, failure
        finally:
            os.close(read_fd)
            if write_fd is not None:
                os.close(write_fd)
            shutil.rmtree(root, ignore_errors=True)

    @staticmethod
    def _log_worker_output(job_name, failure, *streams):
        """For the course staff (the grader's console: on Gradescope the
        instructors' stdout view, hidden from students): the end of what a
        worker that crashed, hung or garbled its channel wrote to stdout and
        stderr, e.g. a native crash report or the student's own prints."""
        lines = [f"sandbox: worker of {job_name}: {failure['message']}"]
        for name, stream in zip(("stdout", "stderr"), streams):
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - WORKER_OUTPUT_TAIL))
            text = stream.read().decode(errors="replace")
            text = "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text).strip()
            if text:
                cut = "..." if size > WORKER_OUTPUT_TAIL else ""
                lines.append(f"  its {name} ({size} bytes), last part:\n    {cut}"
                             + text.replace("\n", "\n    "))
        print("\n".join(lines), file=sys.stderr)

    def _read_channel(self, read_fd, steps):
        """Collect step messages until the worker is done, dies or overruns a
        time limit (CallClock). Returns (messages, failure or None)."""
        messages = []
        expected = iter(steps)
        current = None                      # the step being waited for; None: import
        ready = False
        buffer = b""
        clock = CallClock("importing the submission", self.import_timeout * self.slowness, time.monotonic())
        selector = selectors.DefaultSelector()
        selector.register(read_fd, selectors.EVENT_READ)
        try:
            while True:
                deadline = clock.deadline()
                if self.deadline is not None:
                    deadline = min(deadline, self.deadline)
                wait = deadline - time.monotonic()
                if wait <= 0 or not selector.select(wait):
                    now = time.monotonic()
                    return messages, clock.expired(now, self.deadline is not None and now >= self.deadline)
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    return messages, {"kind": "crashed", "message": ""}
                buffer += chunk
                if len(buffer) > MAX_LINE_BYTES and b"\n" not in buffer:
                    return messages, self._garbage("an oversized message")
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    now = time.monotonic()
                    try:
                        message = json.loads(line)
                    except ValueError:
                        return messages, self._garbage("a line that is not JSON")
                    if not isinstance(message, dict):
                        return messages, self._garbage("a message that is not an object")
                    if not ready:
                        if "import_error" in message:
                            return messages, self._import_failure(message["import_error"])
                        if message.get("ready") is not True:
                            return messages, self._garbage("an unexpected first message")
                        ready = True
                    elif message.get("done") is True and current is None:
                        return messages, None
                    elif current is not None and "progress" in message:
                        if message["progress"] != current["id"] or not clock.note(
                                message.get("done"), message.get("total"), message.get("unit"), now):
                            return messages, self._garbage("a malformed progress report")
                        continue
                    elif current is None or message.get("id") != current["id"]:
                        return messages, self._garbage("a result for the wrong call")
                    else:
                        messages.append(message)
                    current = next(expected, None)
                    if current is None:
                        # All steps answered; the "done" line is a formality.
                        return messages, None
                    clock = CallClock(current.get("call", "the call").split(".", 1)[-1],
                                      self.call_timeout * current["timeout_scale"] * self.slowness, now,
                                      current.get("progress", False))
        finally:
            selector.close()

    @staticmethod
    def _garbage(what):
        return {"kind": "garbage",
                "message": f"the worker process sent {what}: the submission probably wrote "
                           f"to a file descriptor it does not own"}

    @staticmethod
    def _import_failure(error):
        error = dict(error) if isinstance(error, dict) else {}
        detail = error.get("message", "")
        if error.get("kind") == "exception":
            detail = f"{error.get('type')}: {detail}".rstrip(": ")
        return dict(error, kind="import_error",
                    message=f"the submission could not be imported: {detail}")

    def _crash_message(self, returncode):
        if returncode is not None and returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            reason = {"SIGXCPU": f" (it used more than {self.limits.cpu_seconds} CPU-seconds)",
                      "SIGXFSZ": f" (it wrote more than {self.limits.file_size_mb} MB to stdout, "
                                 f"stderr or a file)"}.get(name, "")
            return f"the worker process was killed by {name} during this call{reason}"
        return (f"the worker process exited with code {returncode} during this call "
                f"(os._exit or a crash in native code?)")

    def _decode_step(self, message, out_dir):
        if message.get("ok") is not True:
            error = message.get("error")
            if not isinstance(error, dict):
                error = {"kind": "garbage", "message": "failed without a readable error"}
            return StepResult(False, error=error)
        args = message.get("args") or {}
        return StepResult(True, value=decode_value(message.get("value"), out_dir),
                          args={int(key): decode_value(value, out_dir) for key, value in args.items()
                                if str(key).isdigit()})
