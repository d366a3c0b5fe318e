"""OS confinement of a worker process, applied in the forked child before it
runs the interpreter (confine_worker): namespaces (network, mounts), resource
limits, an unprivileged identity; and the clean-up of a worker's processes
(kill_tagged_processes, reap). The policy of what each worker gets is
autograder/sandbox/__init__.py's docstring; autograder/sandbox/runner.py
decides and launches."""
import ctypes
import ctypes.util
import json
import os
import pwd
import resource
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autograder.layout import PACKAGE


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
GRADER_TREE = (PACKAGE.parent, PACKAGE)
# Also hidden (as empty read-only folders): the folders any user may write to
# that outlive a worker, the temporary folder among them (other jobs' folders
# live there: regrade --jobs N), so that no worker can leave anything for a
# later one (e.g. the changed test images one saw, for the worker that
# predicts them unchanged). See shared_writable_folders().
SHARED_WRITABLE = ("/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock")


def shared_writable_folders():
    """The temporary folder and those of SHARED_WRITABLE this machine has."""
    return (tempfile.gettempdir(),) + tuple(folder for folder in SHARED_WRITABLE if os.path.isdir(folder))
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
    raise RuntimeError(f"autograder/sandbox/confine.py: worker_identity: none of the users "
                       f"{', '.join(names)} exists; create one (setup.sh does) or pass user=None")


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_LIBC.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_network_flags = {}              # euid -> unshare flags that work here (0: none)
_mount_namespaces = {}           # euid -> a worker can get a private mount namespace here
_interpreter_folders = {}        # interpreter -> interpreter_folders(interpreter)
_framework_folders = {}          # (interpreter, names) -> framework_folders(interpreter, names)


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
        paths = _ask_interpreter(python, _INTERPRETER_QUERY, [PACKAGE.name],
                                 "interpreter_folders", "where its files are")
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


# Asked of the worker's interpreter: where the packages of the given top-level
# names are (find_spec of a top-level name imports nothing), with the folders
# of their bundled libraries beside them (NAME.libs, as auditwheel names them).
_FRAMEWORK_QUERY = """
import importlib.util, json, os, sys
found = []
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    if spec is None:
        continue
    for folder in spec.submodule_search_locations or []:
        found += [folder, os.path.join(os.path.dirname(folder), name + ".libs")]
print(json.dumps(found))
"""


def framework_folders(python, names):
    """The folders (real paths) of the packages `names` (e.g. torch, jax)
    that interpreter `python` would import, and of their bundled libraries
    (none of them is a single-file module). Asked once per interpreter and
    names, as the grader. Hiding these from a worker keeps
    the frameworks from it even when loaded by path or through ctypes."""
    key = (python, tuple(sorted(names)))
    if key not in _framework_folders:
        paths = _ask_interpreter(python, _FRAMEWORK_QUERY, key[1], "framework_folders",
                                 f"where {', '.join(key[1])} are")
        _framework_folders[key] = _real_folders(paths)
    return _framework_folders[key]


def _ask_interpreter(python, query, arguments, asker, what):
    """The JSON that script `query` prints when interpreter `python` runs it
    isolated (-I, from /) with `arguments`; a RuntimeError naming `asker`
    and `what` was asked when that fails."""
    try:
        answer = subprocess.run([python, "-I", "-c", query, *arguments], cwd="/",
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                                check=True)
        return json.loads(answer.stdout)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"autograder/sandbox/confine.py: {asker}: cannot ask {python} "
                           f"{what}: {exc}") from exc


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
