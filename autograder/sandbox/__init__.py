"""Running submission code: the only package that starts worker processes.

A check describes the calls it needs as a Job (a list of steps, see
autograder/worker/worker.py for the wire format), and Sandbox.run(job, submission)
runs it in a fresh worker process and returns plain data: numbers, strings,
numpy arrays loaded with allow_pickle=False, and Opaque/Unsupported markers
for everything else. Nothing the worker returns is ever executed or unpickled.

Steps are grouped in units (normally one test case each): references between
steps stay inside a unit, so when a step hangs or kills its process the rest
of its unit fails with it and a new worker resumes with the next unit.

The process policy sits in Sandbox.launch, Sandbox.environment and
confine_worker. What each worker gets (issue #6):
- its own session and process group; timeouts kill the group, and a sweep
  afterwards kills any process still carrying the job's token in its
  environment (a child that left the group with setsid);
- when the grader runs as root: a different, unprivileged user (WORKER_USERS,
  first that exists); two folders of its job folder (its working directory
  and out/) are the only places of ours it may write, and it gets its own
  copy of worker.py and of the helpers, so the autograder folder can be
  closed to it (run_autograder does so); arrays it returns are read without
  following links;
- when the grader runs as root and the kernel allows it: a private mount
  namespace (enter_mount_namespace) in which the grader's own tree (GRADER_TREE:
  autograder/, its cases, solutions/, .git, results.json of `make grade`) is
  an empty read-only folder whatever its permissions, and in which the
  interpreter's folders are reachable even below a folder closed to the
  worker's user (a venv on a Python under /root, mode 700): that folder is
  covered the same way and only the interpreter's folders are bound back,
  read-only. Without mount namespaces the grader's files are protected by
  their permissions only, and a worker's user that cannot run the
  interpreter there makes the sandbox fall back to the grader's own user,
  with a warning (Sandbox.warnings);
- resource limits (Limits): CPU seconds, address space, processes of the
  user, file size (which also caps captured stdout/stderr), open files;
- no network: a new network namespace when the kernel allows it (root, or an
  unprivileged user namespace), otherwise only worker.py's Python-level
  socket block, which code using ctypes can bypass (network_isolation() says
  which level is in force);
- a scrubbed environment and only the submission files a job needs, copied
  as regular files (autograder/submission.py);
- for a job that forbids frameworks (Job.forbid: layers.py must compute with
  numpy), stand-ins for them in the worker (autograder/worker/numpy_only.py)
  and, in its mount namespace, their folders hidden like the grader's tree
  (confine.framework_folders), so that loading one by path or through
  ctypes fails as well.

Modules: runner.py (Sandbox: jobs, launches, the channel), confine.py (the
OS confinement applied in the child), protocol.py (Job, StepResult and the
decoding of what a worker returns), clock.py (a call's time limit).
"""
from autograder.sandbox.clock import PROGRESS_GRACE, PROGRESS_SLACK, CallClock
from autograder.sandbox.confine import (AUTO, GRADER_TREE, PACKAGE, Limits, MountPlan, mount_isolation,
                                        network_isolation, plan_mounts, worker_identity)
from autograder.sandbox.protocol import (Encoded, Job, JobOutcome, Opaque, StepResult, Unsupported,
                                         decode_value, load_worker_array)
from autograder.sandbox.runner import (CALL_TIMEOUT, GUARD_SCRIPT, IMPORT_TIMEOUT, MAX_LAUNCHES, WORKER_SCRIPT,
                                       Sandbox)

__all__ = ["AUTO", "CALL_TIMEOUT", "GRADER_TREE", "GUARD_SCRIPT", "IMPORT_TIMEOUT", "MAX_LAUNCHES", "PACKAGE",
           "PROGRESS_GRACE", "PROGRESS_SLACK", "WORKER_SCRIPT", "CallClock", "Encoded", "Job",
           "JobOutcome", "Limits", "MountPlan", "Opaque", "Sandbox", "StepResult", "Unsupported",
           "decode_value", "load_worker_array", "mount_isolation", "network_isolation", "plan_mounts",
           "worker_identity"]
