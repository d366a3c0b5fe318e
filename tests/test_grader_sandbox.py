"""The worker sandbox: calls, references between calls, plain-data results,
and what happens when submission code raises, exits, hangs, crashes or
writes garbage."""
import os
import textwrap
import time

import numpy as np

from autograder.sandbox import Job, Opaque, Sandbox, Unsupported

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
    marker = tmp_path / "child.pid"
    files = module_file(tmp_path, f"""
        import subprocess
        def spin():
            child = subprocess.Popen(["sleep", "60"])
            open({str(marker)!r}, "w").write(str(child.pid))
            while True:
                pass
        def fine():
            return 2
    """)
    job, ids = student_job([("spin", []), ("fine", [])], [("fine", [])])
    started = time.monotonic()
    outcome = Sandbox(call_timeout=1.0).run(job, files)
    assert time.monotonic() - started < 10
    assert "timed out: spin did not finish within 1 s" in outcome.results[ids[0][0]].error_text()
    assert "an earlier call of the same case failed" in outcome.results[ids[0][1]].error_text()
    assert outcome.results[ids[1][0]].value == 2.0
    assert outcome.launches == 2
    assert not process_alive(int(marker.read_text()))   # the whole process group was killed


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
