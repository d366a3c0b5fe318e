"""Running submission code: the only module that starts worker processes.

A check describes the calls it needs as a Job (a list of steps, see
autograder/worker.py for the wire format), and Sandbox.run(job, submission)
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
  as regular files (autograder/submission.py).
"""
import ctypes
import ctypes.util
import json
import os
import pwd
import re
import resource
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from autograder.submission import SubmissionFileError, copy_submission_file

HERE = Path(__file__).resolve().parent
WORKER_SCRIPT = HERE / "worker.py"

CALL_TIMEOUT = 10.0             # seconds of wall time for one call (times its timeout_scale)
PROGRESS_SLACK = 2.0            # a call that reports progress may take this many times its pace's total
PROGRESS_GRACE = 20.0           # ... plus this many seconds
IMPORT_TIMEOUT = 20.0           # starting Python, numpy and the submission's modules
MAX_LAUNCHES = 3                # workers per job: the first, plus restarts after a hang or crash
MAX_LINE_BYTES = 1 << 20
WORKER_OUTPUT_TAIL = 1500        # bytes of a failed worker's stdout/stderr shown on the console
ARRAY_NAME = re.compile(r"[A-Za-z0-9_.-]+\.npy")

# The worker runs as the first of these users that exists, when the grader is root.
# setup.sh of the Gradescope zip creates "student"; "nobody" exists everywhere.
WORKER_USERS = ("student", "nobody")
AUTO = "auto"
JOB_TOKEN_VARIABLE = "AUTOGRADER_JOB"
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
# Hidden from the worker in its mount namespace: the grader's source root
# (autograder/, solutions/, .git, ...) and, for a grader installed into
# site-packages (whose root the interpreter needs), the package itself.
GRADER_TREE = (HERE.parent, HERE)
# Asked of the worker's interpreter (as the grader): the folders it needs to
# start and import numpy and torch (its site folders included, even when the
# grader is installed in one), every other folder on its sys.path (a folder a
# .pth file adds, e.g. the source root of a development install, stays hidden
# if it is the grader's), and where it would import the grader package from
# (an editable install's finder may point at another checkout than the
# running grader's, which must be hidden as well). Nothing is imported.
_INTERPRETER_QUERY = """
import importlib.util, json, os, site, sys, sysconfig
paths = sysconfig.get_paths()
needed = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
          os.path.dirname(sys.executable)] + list(site.getsitepackages())
needed += [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
try:
    grader = list(importlib.util.find_spec(sys.argv[1]).submodule_search_locations or [])
except Exception:
    grader = []
print(json.dumps({"needed": needed, "path": [entry for entry in sys.path if entry], "grader": grader}))
"""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one worker process (and, for processes, its user).

    address_space_mb: torch reserves address space it never touches; importing
    it and running the reference ConvNet on a batch of 500 images peaks at
    about 1 GB of address space (600 MB resident), so 2 GB leaves room for a
    correct model while stopping a memory bomb early. file_size_mb caps every
    file the worker writes, its captured stdout and stderr included."""
    cpu_seconds: int = 300
    address_space_mb: int = 2048
    processes: int = 256          # RLIMIT_NPROC counts threads too (torch makes a few)
    file_size_mb: int = 32
    open_files: int = 256


def worker_identity(user=AUTO):
    """(uid, gid) the worker runs as, or None to keep the grader's identity.
    user: AUTO (an unprivileged user when the grader is root), None, or a name."""
    if user is None or (user == AUTO and os.geteuid() != 0):
        return None
    names = WORKER_USERS if user == AUTO else (user,)
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise RuntimeError(f"autograder/sandbox.py: worker_identity: none of the users "
                       f"{', '.join(names)} exists; create one (setup.sh does) or pass user=None")


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_LIBC.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_network_flags = {}              # euid -> unshare flags that work here (0: none)
_mount_namespaces = {}           # euid -> a worker can get a private mount namespace here
_interpreter_folders = {}        # interpreter -> interpreter_folders(interpreter)
_python_usable = {}              # (interpreter, worker identity, mount plan) -> it runs numpy then


def network_isolation():
    """The unshare(2) flags that give a worker its own, empty network namespace
    on this machine (probed once), or 0 when the kernel refuses (e.g. in a
    container without CAP_SYS_ADMIN): then only the Python-level block holds."""
    euid = os.geteuid()
    if euid not in _network_flags:
        _network_flags[euid] = 0
        for flags in (CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET):
            probe = subprocess.run(["/bin/true"], preexec_fn=lambda: _unshare(flags),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if probe.returncode == 0:
                _network_flags[euid] = flags
                break
    return _network_flags[euid]


def _unshare(flags):
    if _LIBC.unshare(flags) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _mount(source, target, fstype, flags, data=None):
    encode = lambda value: None if value is None else os.fsencode(value)
    if _LIBC.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {target}: {os.strerror(error)}")


def _private_mount_namespace():
    """unshare(CLONE_NEWNS), then make every mount private, so that nothing
    mounted in the new namespace propagates back to the grader's (nor the
    other way round)."""
    _unshare(CLONE_NEWNS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)


def mount_isolation():
    """Whether workers can get a private mount namespace here (probed once):
    a root grader normally can; a container without CAP_SYS_ADMIN refuses it.
    A non-root grader never gets one: its workers already run as an
    unprivileged user (its own), and user namespaces would not hide more."""
    euid = os.geteuid()
    if euid not in _mount_namespaces:
        usable = False
        if euid == 0:
            try:
                probe = subprocess.run(["/bin/true"], preexec_fn=_private_mount_namespace,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
                usable = probe.returncode == 0
            except (OSError, subprocess.SubprocessError):
                usable = False
        _mount_namespaces[euid] = usable
    return _mount_namespaces[euid]


def interpreter_folders(python):
    """(folders the interpreter needs, other folders on its sys.path, grader
    folders it would import from) of interpreter `python`, as real paths. The
    first: its prefixes, standard library, site-packages (numpy, torch and
    their bundled libraries: torch/lib, numpy.libs) and the folder of every
    link on the way from `python` to the binary (a venv's bin/python ->
    /root/.pyenv/.../python3.11). The last: the grader package it would
    import (without a path of ours) and the folder holding it. Asked once,
    as the grader."""
    if python not in _interpreter_folders:
        try:
            answer = subprocess.run([python, "-I", "-c", _INTERPRETER_QUERY, HERE.name], cwd="/",
                                    stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                                    check=True)
            paths = json.loads(answer.stdout)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise RuntimeError(f"autograder/sandbox.py: interpreter_folders: cannot ask {python} "
                               f"where its files are: {exc}") from exc
        needed = list(paths["needed"])
        hop = os.path.abspath(python)
        for _ in range(40):                 # the folder of each link up to the binary
            needed.append(os.path.dirname(hop))
            if not os.path.islink(hop):
                break
            hop = os.path.join(os.path.dirname(hop), os.readlink(hop))
        grader = [folder for package in paths["grader"] for folder in (package, os.path.dirname(package))]
        _interpreter_folders[python] = (_real_folders(needed), _real_folders(paths["path"]),
                                        _real_folders(grader))
    return _interpreter_folders[python]


def _real_folders(paths):
    folders = []
    for path in paths:
        path = os.path.realpath(path)
        if os.path.isdir(path) and path not in folders:
            folders.append(path)
    return tuple(folders)


def _searchable(folder, uid, gid):
    """Whether uid (with only gid as its group: the worker drops the others)
    may traverse folder."""
    try:
        info = os.stat(folder)
    except OSError:
        return False
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


@dataclass(frozen=True)
class MountPlan:
    """What enter_mount_namespace does, worked out by the grader before the
    fork so that the child only makes system calls. steps, in order:
    ("hide", folder): an empty read-only tmpfs (mode 0755) over folder;
    ("show", folder, writable, mount_points): folder bound back at its own
    path, read-only unless writable, after creating mount_points (the
    folders from the covering tmpfs down to it)."""
    steps: tuple

    @property
    def hidden(self):
        return tuple(step[1] for step in self.steps if step[0] == "hide")

    @property
    def shown(self):
        return tuple(step[1] for step in self.steps if step[0] == "show")


def plan_mounts(identity, show=(), show_writable=(), show_if_possible=(), hide=()):
    """The MountPlan that hides `hide` from the worker (uid, gid) = identity
    while it can still reach `show` (read-only), `show_writable` and, unless
    that would expose a hidden folder itself, `show_if_possible`. A folder
    closed to the worker above something it must reach is hidden too (only
    what is shown comes back), so e.g. /root stays invisible apart from the
    interpreter inside it. A folder both hidden and needed stays visible:
    GRADER_TREE then still hides the autograder package inside it."""
    uid, gid = identity
    rules = {}                          # real path -> ("show", writable) or ("hide",)
    for path in _real_folders(show_if_possible):
        rules[path] = ("show", False)
    for path in _real_folders(hide):
        if path != "/":
            rules[path] = ("hide",)
    for path in _real_folders(show):
        rules[path] = ("show", False)
    for path in _real_folders(show_writable):
        rules[path] = ("show", True)
    for path in [path for path, rule in rules.items() if rule[0] == "show"]:
        closed = next((str(folder) for folder in reversed(Path(path).parents)
                       if not _searchable(folder, uid, gid)), None)
        if closed is not None and closed != "/":
            rules.setdefault(closed, ("hide",))
    steps, done = [], {}                # done: path -> "hide" or "show", for the steps emitted
    for path in sorted(rules, key=lambda path: (len(Path(path).parts), path)):
        above = next((str(folder) for folder in Path(path).parents if str(folder) in done), None)
        covered = above is not None and done[above] == "hide"
        if rules[path][0] == "hide" and not covered:
            steps.append(("hide", path))
            done[path] = "hide"
        elif rules[path][0] == "show" and covered:
            below = Path(path).relative_to(above).parts
            mount_points = tuple(os.path.join(above, *below[:depth]) for depth in range(1, len(below) + 1))
            steps.append(("show", path, rules[path][1], mount_points))
            done[path] = "show"
    return MountPlan(tuple(steps))


def enter_mount_namespace(plan, workdir):
    """Runs in the forked worker, as root, before the privilege drop: a
    private mount namespace laid out by plan (MountPlan), then workdir as the
    working directory again, looked up in the new layout.

    Why: permissions alone cannot keep a root grader's files from student
    code here. A local checkout is 0755 (solutions/, autograder/cases/hidden,
    .git), and the interpreter may sit below a folder closed to every other
    user (a venv on a pyenv or conda Python under /root, mode 700), so the
    worker's user could not even start Python and the sandbox had to run
    student code as root. In its own namespace the worker sees the grader's
    tree and such closed folders as empty read-only tmpfs folders, with only
    the interpreter's folders (and its job folder, if it lies below one)
    bound back at their own paths. Everything is undone when the worker's
    last process exits; nothing propagates to the grader's namespace. Cost
    (measured on a 2-core machine, 4 steps): about 0.6 ms in the child and
    1-2 ms per worker launch end to end, namespace teardown included (a
    one-call job: 78.4 ms without, 79.7 ms with)."""
    _private_mount_namespace()
    # Grab what is to be shown before a tmpfs covers it (O_PATH: no read access needed).
    handles = {step[1]: os.open(step[1], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
               for step in plan.steps if step[0] == "show"}
    try:
        for step in plan.steps:
            if step[0] == "hide":
                _mount("tmpfs", step[1], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                       "mode=0755,size=64k,nr_inodes=1024")
                continue
            _, path, writable, mount_points = step
            for folder in mount_points:
                try:
                    os.mkdir(folder, 0o755)
                except FileExistsError:
                    pass
                os.chmod(folder, 0o755)     # whatever the grader's umask
            _mount(f"/proc/self/fd/{handles[path]}", path, None, MS_BIND | MS_REC)
            if not writable:
                _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    finally:
        for handle in handles.values():
            os.close(handle)
    for folder in plan.hidden:
        _mount(None, folder, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(workdir)


def confine_worker(identity, limits, network_flags, mounts=None, workdir="/"):
    """Runs in the forked child before exec (after setsid): namespaces (the
    network's, then, given a MountPlan, the mount namespace), limits, then the
    unprivileged identity (last, while still allowed to do the rest).
    RLIMIT_NPROC counts every process of a user, so it is only set for the
    worker's own user, never for a grader's user that runs other programs."""
    if network_flags:
        _unshare(network_flags)
    if mounts is not None:
        enter_mount_namespace(mounts, workdir)
    mb = 1 << 20
    limits_to_set = [(resource.RLIMIT_CPU, limits.cpu_seconds),
                     (resource.RLIMIT_AS, limits.address_space_mb * mb),
                     (resource.RLIMIT_FSIZE, limits.file_size_mb * mb),
                     (resource.RLIMIT_NOFILE, limits.open_files),
                     (resource.RLIMIT_CORE, 0)]
    if identity is not None:
        limits_to_set.append((resource.RLIMIT_NPROC, limits.processes))
    for limit, value in limits_to_set:
        _, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY and (value == resource.RLIM_INFINITY or value > hard):
            value = hard            # raising a hard limit needs CAP_SYS_RESOURCE
        resource.setrlimit(limit, (value, value))
    if identity is not None:
        uid, gid = identity
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)


def become_subreaper():
    """Orphans of a worker (e.g. a fork bomb's) become children of the grader,
    which reaps them (reap), instead of zombies of PID 1 that count against the
    worker user's process limit until PID 1 gets round to them."""
    _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap(pids):
    """Wait for those of pids that are (now) children of the grader."""
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def kill_tagged_processes(token, passes=20):
    """SIGKILL every process whose environment carries JOB_TOKEN_VARIABLE=token
    (what is left of a worker's tree after its group was killed). Repeated
    until a pass finds none: a process may fork while a pass runs. Returns
    the PIDs signalled."""
    needle = f"{JOB_TOKEN_VARIABLE}={token}".encode()
    signalled = set()
    for _ in range(passes):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    tagged = needle in handle.read().split(b"\0")
            except OSError:
                continue
            if tagged:
                found = True
                signalled.add(int(entry))
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if not found:
            break
    return signalled


class Encoded(dict):
    """A value already in the worker's wire format (a reference, a function)."""


@dataclass(frozen=True)
class Opaque:
    """A Python object the worker could only name (e.g. a forward cache)."""
    type_name: str


@dataclass(frozen=True)
class Unsupported:
    """A returned value that cannot be passed back as data, and why."""
    reason: str


@dataclass
class StepResult:
    ok: bool
    value: object = None
    args: dict = field(default_factory=dict)   # argument index -> value after the call
    error: dict = None                          # kind, type, message, where

    def error_text(self):
        """One readable paragraph: what went wrong and where in the submission."""
        error = self.error or {}
        kind = error.get("kind")
        if kind == "exception":
            text = f"raised {error.get('type')}: {error.get('message')}".rstrip(": ")
        else:
            text = error.get("message", "failed")
        where = error.get("where") or []
        if where:
            text += "\n  Traceback (your code, most recent call last):\n" + "\n".join(
                "    " + line.replace("\n", "\n    ") for line in where)
        return text


@dataclass
class JobOutcome:
    results: dict                 # step id -> StepResult, for every step of the job
    launches: int = 0             # worker processes started
    run_more: object = None       # runs a further job the same way (set by the layer part)


class Job:
    """Calls to run in one worker process.

    >>> job = Job("conv_forward", files=["layers.py"])
    >>> job.module("layers", "layers.py")
    >>> job.new_unit()
    >>> forward = job.call("layers.conv_forward", x, w, b, {"stride": 1, "pad": 1},
    ...                    encode="out_cache", report=[0, 1, 2])
    >>> job.call("layers.conv_backward", dout, job.ref(forward, 1))
    """

    def __init__(self, name, files):
        self.name = name
        self.files = list(files)      # submission files the worker needs
        self.modules = {}
        self.helpers = {}
        self.steps = []
        self.arrays = {}
        self.units = []               # lists of step ids

    def module(self, name, filename):
        """Import submission file `filename` as module `name`."""
        self.modules[name] = filename

    def helper(self, name, path):
        """Load trusted helper code (from the autograder folder) as module `name`."""
        self.helpers[name] = str(path)

    def new_unit(self):
        self.units.append([])

    def array(self, value):
        name = f"in/a{len(self.arrays)}.npy"
        self.arrays[name] = np.ascontiguousarray(value)
        return Encoded(array=name)

    def value(self, value):
        """Wire encoding of a Python value made of arrays, numbers, strings,
        lists, tuples and dicts."""
        if isinstance(value, Encoded):
            return value
        if isinstance(value, np.ndarray):
            return self.array(value)
        if isinstance(value, dict):
            return {"dict": {str(key): self.value(item) for key, item in value.items()}}
        if isinstance(value, tuple):
            return {"tuple": [self.value(item) for item in value]}
        if isinstance(value, list):
            return {"list": [self.value(item) for item in value]}
        if isinstance(value, np.generic):
            return {"json": value.item()}
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"json": value}
        raise TypeError(f"Job.value: cannot send a {type(value).__name__} to the worker")

    @staticmethod
    def ref(step_id, *index):
        """The Python object an earlier step of the same unit returned (or an item of it)."""
        return Encoded(ref=step_id, index=list(index))

    @staticmethod
    def func(target):
        """A function of a loaded module, e.g. to hand the student's forward to a helper."""
        return Encoded(func=target)

    def _add(self, step):
        if not self.units:
            self.new_unit()
        step["id"] = f"s{len(self.steps)}"
        self.steps.append(step)
        self.units[-1].append(step["id"])
        return step["id"]

    def call(self, target, *args, encode="all", report=(), timeout_scale=1.0, progress=False, **kwargs):
        """Call module.function(*args, **kwargs); returns the step id.

        encode: "all" (return the whole result as data), "out_cache" (the
        result must be a pair; only its first item comes back) or "none".
        report: indices of arguments to send back as they are after the call.
        timeout_scale: this call may take that many times the sandbox's call timeout.
        progress: the call (a trusted helper's) reports its progress; then
        timeout_scale only bounds the time to its first report, and after it
        the limit follows the call's own pace (CallClock).
        """
        return self._add({"call": target, "args": [self.value(arg) for arg in args],
                          "kwargs": {key: self.value(arg) for key, arg in kwargs.items()},
                          "encode": encode, "report": list(report),
                          "timeout_scale": float(timeout_scale), "progress": bool(progress)})

    def let(self, value):
        """Keep a value in the worker (e.g. a bn_param dict several calls share)."""
        return self._add({"let": self.value(value), "timeout_scale": 1.0})

    def wire(self, steps):
        return {"helpers": self.helpers, "modules": self.modules, "steps": steps}


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
        # The temporary folder too: other jobs' folders live there (regrade --jobs N).
        self.hidden = tuple(GRADER_TREE) + (tempfile.gettempdir(),) + tuple(str(path) for path in hidden)
        self.folders = None               # interpreter_folders(python) when workers get a mount namespace
        if self.identity is not None:
            self._use_mount_namespace()
        if self.identity is not None and not self._identity_can_run_python():
            problem = (f"user {pwd.getpwuid(self.identity[0]).pw_name} cannot run {self.python} "
                       f"(is a folder on its path closed to other users?)")
            if user != AUTO:
                raise RuntimeError(f"autograder/sandbox.py: Sandbox: {problem}")
            self.warnings.append(f"student code runs as the grader's own user: {problem}")
            self.identity = None
        if isolate_network and not self.network_flags:
            self.warnings.append("no network namespace available here: network access is "
                                 "blocked only at the Python level")

    def _use_mount_namespace(self):
        """Give workers a private mount namespace (enter_mount_namespace) when
        the kernel allows it and the worker's user can run the interpreter in
        it; otherwise say so in self.warnings and rely on permissions."""
        if not mount_isolation():
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

    def mount_plan(self, job_dir=None):
        """The worker's MountPlan (None: no mount namespace): GRADER_TREE,
        self.hidden and the grader package the interpreter would import
        hidden; the interpreter's folders and the job folder shown."""
        if self.folders is None or self.identity is None:
            return None
        needed, optional, grader = self.folders
        return plan_mounts(self.identity, show=needed, show_if_possible=optional,
                           hide=self.hidden + grader, show_writable=() if job_dir is None else (job_dir,))

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
            raise RuntimeError(f"autograder/sandbox.py: Sandbox: {self.python} failed to import numpy "
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

    def launch(self, job_dir, workdir, channel_fd, stdout, stderr, token):
        """Start the worker confined (see confine_worker) in its own session, so
        that its whole process group can be killed."""
        identity, limits, network_flags = self.identity, self.limits, self.network_flags
        mounts, cwd = self.mount_plan(job_dir), str(workdir)
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
                    process = self.launch(root, workdir, write_fd, stdout, stderr, token)
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


def load_worker_array(path):
    """np.load of a file the worker wrote, never through a link: the worker
    names the file, and a symbolic or hard link to a grader file (e.g. an
    expected output) would otherwise be read with the grader's rights."""
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(handle, "rb") as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise ValueError(f"{path.name} is not a plain file")
        return np.load(stream, allow_pickle=False)


def decode_value(encoded, out_dir, depth=0):
    """Worker data -> Python: arrays loaded without pickle, anything else plain."""
    if not isinstance(encoded, dict) or len(encoded) == 0 or depth > 8:
        return Unsupported("unreadable value")
    if "array" in encoded:
        name = encoded["array"]
        if not isinstance(name, str) or not ARRAY_NAME.fullmatch(name):
            return Unsupported("unreadable array")
        try:
            array = load_worker_array(out_dir / name)
        except (OSError, ValueError):
            return Unsupported("unreadable array")
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            return Unsupported(f"array of dtype {getattr(array, 'dtype', '?')}")
        return array
    (kind, payload), = list(encoded.items())[:1]
    if kind == "number":
        if isinstance(payload, str) and payload in ("nan", "inf", "-inf"):
            return float(payload)
        return float(payload) if isinstance(payload, (int, float)) else Unsupported("unreadable number")
    if kind in ("list", "tuple") and isinstance(payload, list):
        items = [decode_value(item, out_dir, depth + 1) for item in payload]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict" and isinstance(payload, dict):
        return {str(key): decode_value(item, out_dir, depth + 1) for key, item in payload.items()}
    if kind == "none":
        return None
    if kind == "str" and isinstance(payload, str):
        return payload
    if kind == "object" and isinstance(payload, str):
        return Opaque(payload)
    if kind == "unsupported" and isinstance(payload, str):
        return Unsupported(payload)
    return Unsupported("unreadable value")
