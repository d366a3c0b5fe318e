"""The worker sandbox: calls, references between calls, plain-data results,
and what happens when submission code raises, exits, hangs, crashes or
writes garbage."""
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from autograder import sandbox
from autograder.sandbox import clock, confine, Job, Opaque, runner, Sandbox, Unsupported
from autograder.sandbox.confine import shared_writable_folders

REFERENCE_LAYERS = os.path.join(os.path.dirname(__file__), "..", "solutions", "cnn", "layers.py")


def process_alive(pid):
    """True while pid runs (a killed child not yet reaped by init is a zombie, state Z)."""
    for _ in range(50):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.02)
    return True


def module_file(tmp_path, code, name="student.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return {name: str(path)}


def student_job(*units):
    """A job over student.py; units: lists of (function, args) calls."""
    job = Job("test", files=["student.py"])
    job.module("student", "student.py")
    ids = []
    for calls in units:
        job.new_unit()
        ids.append([job.call(f"student.{function}", *args) for function, args in calls])
    return job, ids


def test_calls_return_plain_data_and_refs_reach_earlier_results(tmp_path):
    files = module_file(tmp_path, """
        import numpy as np
        class Box:
            pass
        def make(x):
            return x * 2, Box()
        def unbox(out, box):
            return {"kind": type(box).__name__, "sum": float(out.sum()), "list": [1, "a", None]}
    """)
    job = Job("test", files=["student.py"])
    job.module("student", "student.py")
    job.new_unit()
    first = job.call("student.make", np.arange(3.0), encode="out_cache")
    second = job.call("student.unbox", job.ref(first, 0), job.ref(first, 1))
    outcome = Sandbox().run(job, files)
    out, cache = outcome.results[first].value
    np.testing.assert_array_equal(out, [0.0, 2.0, 4.0])
    assert out.dtype == np.float64
    assert cache == Opaque("Box")
    assert outcome.results[second].value == {"kind": "Box", "sum": 6.0, "list": [1.0, "a", None]}
    assert outcome.launches == 1


def test_an_exception_reports_type_message_and_only_submission_frames(tmp_path):
    files = module_file(tmp_path, """
        def helper(x):
            raise ValueError(f"bad shape {x}")
        def broken(x):
            return helper(x)
    """)
    job, ids = student_job([("broken", [3])])
    result = Sandbox().run(job, files).results[ids[0][0]]
    assert not result.ok
    text = result.error_text()
    assert "raised ValueError: bad shape 3" in text
    assert "student.py, line 3, in helper" in text and "student.py, line 5, in broken" in text
    assert "worker.py" not in text and str(tmp_path) not in text


def test_sys_exit_costs_only_that_call(tmp_path):
    files = module_file(tmp_path, """
        import sys
        def leave(code):
            sys.exit(code)
        def fine():
            return 1
    """)
    job, ids = student_job([("leave", [4]), ("fine", [])], [("fine", [])])
    outcome = Sandbox().run(job, files)
    assert outcome.results[ids[0][0]].error_text().startswith("called sys.exit(4)")
    assert outcome.results[ids[0][1]].ok and outcome.results[ids[1][0]].ok
    assert outcome.launches == 1


def test_a_hang_is_killed_with_its_children_and_later_units_still_run(tmp_path):
    files = module_file(tmp_path, """
        import subprocess
        children = []
        def start():
            children.append(subprocess.Popen(["sleep", "60"]))
            return children[-1].pid
        def spin():
            while True:
                pass
        def fine():
            return 2
    """)
    job, ids = student_job([("start", []), ("spin", []), ("fine", [])], [("fine", [])])
    started = time.monotonic()
    outcome = Sandbox(call_timeout=1.0).run(job, files)
    assert time.monotonic() - started < 10
    assert "timed out: spin did not finish within 1 s" in outcome.results[ids[0][1]].error_text()
    assert "an earlier call of the same case failed" in outcome.results[ids[0][2]].error_text()
    assert outcome.results[ids[1][0]].value == 2.0
    assert outcome.launches == 2
    assert not process_alive(int(outcome.results[ids[0][0]].value))   # the whole group was killed


def test_os_exit_is_a_crash_of_that_call_only(tmp_path):
    files = module_file(tmp_path, """
        import os
        def vanish():
            os._exit(7)
        def fine():
            return 3
    """)
    job, ids = student_job([("vanish", [])], [("fine", [])])
    outcome = Sandbox().run(job, files)
    assert "exited with code 7 during this call" in outcome.results[ids[0][0]].error_text()
    assert outcome.results[ids[1][0]].value == 3.0


def test_a_crashed_workers_output_reaches_the_console_not_the_result(tmp_path, capsys):
    files = module_file(tmp_path, """
        import os, sys
        def vanish():
            print("x" * 5000 + "last words on stdout")
            print("debug: about to exit\x1b[31m", file=sys.stderr)
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(7)
    """)
    job, ids = student_job([("vanish", [])])
    result = Sandbox().run(job, files).results[ids[0][0]]
    console = capsys.readouterr().err
    assert "sandbox: worker of test: the worker process exited with code 7" in console
    assert "its stdout (5021 bytes), last part:\n    ...xxx" in console
    assert console.count("x") < 2000 and "last words on stdout" in console
    assert "debug: about to exit?[31m" in console          # control characters neutralised
    assert "last words" not in result.error_text()          # the student's feedback is unchanged


def test_repeated_crashes_stop_after_max_launches(tmp_path):
    files = module_file(tmp_path, """
        import os
        def vanish():
            os._exit(1)
    """)
    job, ids = student_job(*[[("vanish", [])] for _ in range(5)])
    outcome = Sandbox(max_launches=2).run(job, files)
    assert outcome.launches == 2
    assert "failed 2 times" in outcome.results[ids[4][0]].error_text()


def test_garbage_written_to_the_channel_is_detected(tmp_path):
    files = module_file(tmp_path, """
        import os
        def scribble():
            for fd in range(3, 64):
                try:
                    os.write(fd, b"not json\\n")
                except OSError:
                    pass
            return 1
    """)
    job, ids = student_job([("scribble", [])])
    result = Sandbox().run(job, files).results[ids[0][0]]
    assert not result.ok and "file descriptor it does not own" in result.error_text()


def test_import_failure_fails_every_call_with_the_reason(tmp_path):
    files = module_file(tmp_path, "def broken(:\n    pass\n")
    job, ids = student_job([("broken", [])], [("broken", [])])
    outcome = Sandbox().run(job, files)
    for unit in ids:
        text = outcome.results[unit[0]].error_text()
        assert "could not be imported: SyntaxError" in text


def test_object_arrays_and_odd_values_come_back_as_markers(tmp_path):
    files = module_file(tmp_path, """
        import numpy as np
        def odd():
            return np.array([1, "a"], dtype=object), np.float32(2.5), float("nan"), lambda: 1
    """)
    job, ids = student_job([("odd", [])])
    value = Sandbox().run(job, files).results[ids[0][0]].value
    assert value[0] == Unsupported("array of dtype object")
    assert isinstance(value[1], np.ndarray) and value[1].dtype == np.float32 and value[1] == 2.5
    assert np.isnan(value[2])
    assert value[3] == Opaque("function")


def test_missing_file_fails_every_step_without_starting_a_worker(tmp_path):
    job, ids = student_job([("anything", [])])
    outcome = Sandbox().run(job, {})
    assert outcome.launches == 0
    assert "student.py was not found" in outcome.results[ids[0][0]].error_text()


def test_worker_environment_is_scrubbed_and_cwd_holds_only_the_job_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    files = module_file(tmp_path, """
        import os
        def look():
            return sorted(os.environ), sorted(os.listdir("."))
    """)
    (tmp_path / "other.py").write_text("x = 1\n")
    job, ids = student_job([("look", [])])
    names, listing = Sandbox().run(job, files).results[ids[0][0]].value
    assert "SECRET_TOKEN" not in names
    assert listing == ["student.py"]


# -- the worker's user and mount namespace (a root grader) ---------------------
REPO = Path(__file__).resolve().parents[1]
as_root = pytest.mark.skipif(os.geteuid() != 0,
                             reason="the sandbox only changes user when the grader is root")
with_mount_namespace = pytest.mark.skipif(os.geteuid() != 0 or not sandbox.mount_isolation(),
                                          reason="needs a root grader that may create mount namespaces")


def mount_points_below(plan, folder):
    """The names a worker sees in hidden folder: the first step down to each
    folder the plan shows below it (the interpreter's, e.g. a venv in a
    checkout under /tmp), and nothing else."""
    return {Path(path).relative_to(folder).parts[0] for path in plan.shown
            if Path(path).is_relative_to(folder) and Path(path) != Path(folder)}


def run_one(box, tmp_path, code, function="probe"):
    files = module_file(tmp_path, code)
    job, ids = student_job([(function, [])])
    result = box.run(job, files).results[ids[0][0]]
    assert result.ok, result.error_text()
    return result.value


@as_root
def test_a_root_grader_runs_student_code_as_another_user(tmp_path):
    box = Sandbox()
    assert box.identity is not None and box.identity[0] != 0
    assert not [warning for warning in box.warnings if "grader's own user" in warning]
    uids = run_one(box, tmp_path, """
        import os
        def probe():
            return [os.getuid(), os.geteuid(), os.getgid()]
    """)
    assert uids == [float(box.identity[0])] * 2 + [float(box.identity[1])]


@with_mount_namespace
def test_grader_files_and_closed_folders_are_hidden_from_the_worker(tmp_path):
    """The worker still runs numpy from the project interpreter (under /root
    here), but sees neither the grader's tree nor the rest of a closed folder
    above the interpreter, and can write to neither."""
    box = Sandbox()
    plan = box.mount_plan()
    # The checkout is hidden itself, or lies below a hidden folder (a clone under /tmp).
    assert any(REPO.is_relative_to(folder) for folder in plan.hidden)
    hidden_cases = sorted(str(path) for path in (REPO / "autograder" / "cases" / "hidden").glob("*"))
    secrets = [str(REPO / "solutions" / "cnn" / "layers.py"), str(REPO / "autograder" / "sandbox" / "runner.py"),
               str(REPO / ".git" / "HEAD")] + hidden_cases
    temporary = os.path.realpath(tempfile.gettempdir())
    closed = [folder for folder in plan.hidden if not folder.startswith(str(REPO)) and folder != temporary]
    outside = [os.path.join(folder, name) for folder in closed for name in os.listdir(folder)]
    # Another job's folder in the temporary folder (regrade --jobs N), open to everyone.
    other_job = Path(tempfile.mkdtemp(prefix="autograder-job-"))
    other_job.chmod(0o755)
    (other_job / "layers.py").write_text("another student's code")
    (other_job / "layers.py").chmod(0o644)
    secrets.append(str(other_job / "layers.py"))
    seen = run_one(box, tmp_path, f"""
        import os, numpy
        def probe():
            found = {{}}
            for path in {secrets + outside!r}:
                try:
                    with open(path, "rb") as handle:
                        found[path] = "READ " + repr(handle.read(20))
                except OSError as exc:
                    found[path] = type(exc).__name__
            for folder in [{str(REPO)!r}] + {closed!r}:
                found["list " + folder] = sorted(os.listdir(folder))
                try:
                    open(os.path.join(folder, "written-by-student"), "w").close()
                    found["write " + folder] = "WROTE"
                except OSError as exc:
                    found["write " + folder] = type(exc).__name__
            try:
                import autograder
                found["import autograder"] = autograder.__file__
            except ImportError as exc:
                found["import autograder"] = type(exc).__name__
            found["numpy"] = float(numpy.arange(4).sum())
            return found
    """)
    assert hidden_cases and outside
    for path in secrets + outside:
        assert not seen[path].startswith("READ"), path
    assert "write " + str(REPO) in seen
    for folder in [str(REPO)] + closed:
        assert seen["write " + folder] != "WROTE"
        assert not os.path.exists(os.path.join(folder, "written-by-student"))
        # Only the interpreter's folders are left, as mount points.
        assert set(seen["list " + folder]) == mount_points_below(plan, folder)
    assert seen["import autograder"] in ("ModuleNotFoundError", "ImportError")
    assert seen["numpy"] == 6.0
    assert seen[str(other_job / "layers.py")] == "FileNotFoundError"
    shutil.rmtree(other_job)
    # The grader's own view is untouched.
    assert (REPO / "solutions" / "cnn" / "layers.py").is_file()
    assert all(os.path.exists(path) for path in outside)


@with_mount_namespace
def test_no_worker_can_leave_files_for_a_later_one(tmp_path):
    """Every folder any user may write to and that outlives a worker (the
    temporary folder, /var/tmp, /dev/shm, ...) is an empty read-only folder
    to the worker: one job cannot pass anything to the next (e.g. the
    integrity report's worker reading what the scored one saw)."""
    shared = shared_writable_folders()
    assert "/dev/shm" in shared and "/var/tmp" in shared
    left = f"left-by-a-worker-{os.getpid()}-{time.monotonic_ns()}"      # a name no earlier run used
    planted = Path("/var/tmp") / "left-by-the-grader"
    planted.write_text("a file a worker must not see")
    try:
        code = f"""
            import os
            def probe():
                found = {{}}
                for folder in {shared!r}:
                    # (the job's own folder, holding its working directory, is bound back there)
                    own = os.path.join(folder, os.path.relpath(os.getcwd(), folder).split(os.sep)[0])
                    found["list " + folder] = [name for name in os.listdir(folder)
                                               if os.path.join(folder, name) != own]
                    try:
                        with open(os.path.join(folder, {left!r}), "w") as handle:
                            handle.write("answers")
                        found["write " + folder] = "WROTE"
                    except OSError as exc:
                        found["write " + folder] = type(exc).__name__
                return found
        """
        first, second = (run_one(Sandbox(), tmp_path, code) for _ in range(2))
    finally:
        planted.unlink()
    plan = Sandbox().mount_plan()
    for seen in (first, second):
        for folder in shared:
            # Empty, but for the way down to the interpreter when it lies below (a checkout under /tmp).
            assert set(seen["list " + folder]) == mount_points_below(plan, os.path.realpath(folder)), (folder, seen)
            assert seen["write " + folder] != "WROTE", (folder, seen)
            assert not os.path.exists(os.path.join(folder, left))


@with_mount_namespace
def test_an_interpreter_below_a_hidden_folder_still_runs_as_the_worker_user(tmp_path):
    """A checkout (and its venv, or an installed wheel) inside a folder the
    sandbox hides, e.g. a clone under /tmp: the worker still runs as the
    unprivileged user, imports numpy from that interpreter, and sees of the
    hidden folder only the way down to the interpreter."""
    above = REPO.parent                 # stands for /tmp: hidden, and holding the checkout
    box = Sandbox(hidden=[above])
    assert box.identity is not None and box.identity[0] != 0
    assert not [warning for warning in box.warnings if "own user" in warning or "not used" in warning]
    plan = box.mount_plan()
    assert any(above.is_relative_to(hidden) for hidden in plan.hidden)   # itself, or below e.g. /tmp
    assert any(Path(path).is_relative_to(above) for path in plan.shown) == Path(sys.prefix).is_relative_to(above)
    secrets = [str(REPO / "solutions" / "cnn" / "layers.py"), str(REPO / "autograder" / "rubric.yaml")]
    seen = run_one(box, tmp_path, f"""
        import os, numpy
        def probe():
            above = {str(above)!r}
            # (the job's own folder is bound back there if it lies below)
            own = os.path.relpath(os.getcwd(), above).split(os.sep)[0]
            found = {{"uid": os.geteuid(), "numpy": float(numpy.arange(4).sum()),
                     "list above": sorted(name for name in os.listdir(above) if name != own)}}
            for path in {secrets!r}:
                try:
                    open(path, "rb").close()
                    found[path] = "READ"
                except OSError as exc:
                    found[path] = type(exc).__name__
            return found
    """)
    assert seen["uid"] == float(box.identity[0]) and seen["numpy"] == 6.0
    assert set(seen["list above"]) == mount_points_below(plan, str(above))
    for path in secrets:
        assert seen[path] != "READ", path


@with_mount_namespace
def test_a_job_folder_below_a_hidden_folder_stays_writable(tmp_path, monkeypatch):
    base = Path(tempfile.mkdtemp(prefix="sandbox-hidden-"))
    try:
        base.chmod(0o755)
        (base / "secret.txt").write_text("grader only")
        (base / "jobs").mkdir(mode=0o755)
        monkeypatch.setattr(tempfile, "tempdir", str(base / "jobs"))
        box = Sandbox(hidden=[base])
        seen = run_one(box, tmp_path, f"""
            import os
            def probe():
                with open("scratch.txt", "w") as handle:
                    handle.write("mine")
                return [os.getcwd(), sorted(os.listdir({str(base)!r})),
                        os.path.exists({str(base / "secret.txt")!r})]
        """)
        cwd, listing, secret_seen = seen
        assert cwd.startswith(str(base / "jobs" / "autograder-job-"))
        assert listing == ["jobs"] and not secret_seen
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_mount_plan_hides_closed_folders_and_binds_back_only_what_is_needed(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="sandbox-plan-"))
    try:
        base.chmod(0o755)
        python = base / "home" / "pyenv" / "3.11"
        (python / "bin").mkdir(parents=True)
        (base / "home").chmod(0o700)                 # like /root
        venv = base / "tree" / ".venv"
        (venv / "lib").mkdir(parents=True)
        (base / "tree" / "solutions").mkdir()
        plan = sandbox.plan_mounts((65534, 65534), show=[python, venv / "lib"],
                                   show_if_possible=[base / "tree", base / "missing"],
                                   hide=[base / "tree", base / "tree" / "solutions"])
        home, tree = str(base / "home"), str(base / "tree")
        assert plan.steps == (
            ("hide", home),
            ("hide", tree),                          # a needed folder never shows a hidden one
            ("show", str(python), False, (str(base / "home" / "pyenv"), str(python))),
            ("show", str(venv / "lib"), False, (str(venv), str(venv / "lib"))),
        )
        # The worker may traverse everything it needs: nothing to do.
        assert sandbox.plan_mounts((0, 0), show=[python]).steps == ()
        # A grader installed into site-packages: the folder stays, the package goes.
        site = venv / "lib"
        (site / "autograder").mkdir()
        plan = sandbox.plan_mounts((0, 0), show=[site], hide=[site, site / "autograder"])
        assert plan.steps == (("hide", str(site / "autograder")),)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@as_root
def test_without_mount_namespaces_the_sandbox_falls_back_with_a_warning(tmp_path, monkeypatch):
    """Where mount namespaces are refused and the worker's user cannot run
    the interpreter, student code runs as the grader's own user and the
    sandbox says so (an explicit --worker-user refuses instead)."""
    monkeypatch.setattr(confine, "mount_isolation", lambda: False)
    monkeypatch.setattr(runner, "_python_usable", {})
    # The interpreter is runnable by the worker's user only inside its namespace.
    monkeypatch.setattr(Sandbox, "_probe_python", lambda self, mounts=None: mounts is not None)
    box = Sandbox()
    assert box.identity is None and box.mount_plan() is None
    assert any("no mount namespace" in warning for warning in box.warnings)
    assert any("runs as the grader's own user" in warning for warning in box.warnings)
    assert run_one(box, tmp_path, "import os\ndef probe():\n    return os.getuid()\n") == 0.0
    with pytest.raises(RuntimeError, match="cannot run"):
        Sandbox(user="nobody")


@with_mount_namespace
def test_a_mount_namespace_that_cannot_be_set_up_is_dropped_with_a_warning(monkeypatch):
    def refuse(plan, workdir):
        raise OSError(1, "mount refused")
    monkeypatch.setattr(confine, "enter_mount_namespace", refuse)    # runs in the forked child
    monkeypatch.setattr(runner, "_python_usable", {})
    box = Sandbox()
    assert box.mount_plan() is None
    assert any("mount namespace is not used" in warning for warning in box.warnings)
    if box.identity is None:       # the interpreter is closed to the worker's user without it
        assert any("runs as the grader's own user" in warning for warning in box.warnings)


# -- time limits that follow the work: progress reports (CallClock) ---------------------------

# A trusted helper as the CNN part's worker_torch.py is one: worker.py sets its
# report_progress before any call.
PROGRESS_HELPER = """
import time

report_progress = None


def steady(total, seconds_each):
    for done in range(1, total + 1):
        time.sleep(seconds_each)
        report_progress(done, total, "chunks")
    return total


def stalls_after(reported, total):
    for done in range(1, reported + 1):
        report_progress(done, total, "chunks")
    while True:
        time.sleep(1)


def silent():
    while True:
        time.sleep(1)


def overclaims():
    report_progress(11, 10, "chunks")
    return 1
"""


def progress_job(tmp_path, function, *args, progress=True):
    helper = tmp_path / "helper_progress.py"
    helper.write_text(PROGRESS_HELPER)
    job = Job("progress", files=[])
    job.helper("slow", helper)
    step = job.call(f"slow.{function}", *args, progress=progress)
    return job, step


def test_a_slow_call_that_keeps_reporting_progress_outlives_its_startup_limit(tmp_path):
    # 8 chunks of 0.25 s: four times the 0.5 s a call may take before its first report.
    job, step = progress_job(tmp_path, "steady", 8, 0.25)
    result = Sandbox(call_timeout=0.5).run(job, {}).results[step]
    assert result.ok and result.value == 8.0, result.error
    job, step = progress_job(tmp_path, "steady", 8, 0.25, progress=False)
    result = Sandbox(call_timeout=0.5).run(job, {}).results[step]
    assert not result.ok and "did not finish within 0.5 s (an infinite loop?)" in result.error["message"]


def test_a_call_that_stops_progressing_is_told_how_far_it_got(tmp_path, monkeypatch):
    monkeypatch.setattr(clock, "PROGRESS_GRACE", 0.5)
    job, step = progress_job(tmp_path, "stalls_after", 3, 10)
    result = Sandbox(call_timeout=5).run(job, {}).results[step]
    message = result.error["message"]
    assert result.error["kind"] == "timeout"
    assert message.startswith("stopped after") and "stalls_after had done 3 of 10 chunks (30%)" in message
    assert "at that pace the whole would take about" in message and "infinite loop" not in message


def test_a_progress_call_that_never_reports_gets_only_its_startup_limit(tmp_path):
    job, step = progress_job(tmp_path, "silent")
    started = time.monotonic()
    result = Sandbox(call_timeout=0.5).run(job, {}).results[step]
    assert time.monotonic() - started < 10
    assert "silent reported no progress within 0.5 s of starting" in result.error["message"]


def test_the_budget_stops_a_progressing_call_with_how_far_it_got(tmp_path):
    job, step = progress_job(tmp_path, "steady", 200, 0.05)
    box = Sandbox(call_timeout=5)
    box.deadline = time.monotonic() + 2.0
    message = box.run(job, {}).results[step].error["message"]
    assert message.startswith("stopped when the grading time budget ran out, after")
    assert "steady had done" in message and "of 200 chunks" in message


def test_a_malformed_progress_report_is_garbage(tmp_path):
    job, step = progress_job(tmp_path, "overclaims")
    result = Sandbox(call_timeout=5).run(job, {}).results[step]
    assert result.error["kind"] == "garbage" and "malformed progress report" in result.error["message"]


def test_time_limits_scale_with_the_measured_slowness_of_the_machine(tmp_path):
    # A 0.8 s call against a 0.5 s limit: too slow on the reference machine,
    # in time on one measured to be 3 times slower.
    job, step = progress_job(tmp_path, "steady", 4, 0.2, progress=False)
    result = Sandbox(call_timeout=0.5, slowness=3.0).run(job, {}).results[step]
    assert result.ok, result.error
    job, step = progress_job(tmp_path, "steady", 4, 0.2, progress=False)
    result = Sandbox(call_timeout=0.5, slowness=1.0).run(job, {}).results[step]
    assert "did not finish within 0.5 s" in result.error["message"]


def test_the_speed_calibration_never_shortens_a_limit():
    from autograder import speed
    factor, seconds = speed.slowness()
    assert factor >= 1.0 and seconds > 0
    assert factor == max(1.0, seconds / speed.REFERENCE_SECONDS)
