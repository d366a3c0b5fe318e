"""A box like Gradescope's machine: run a command in a fresh cgroup with a CPU
quota (a fraction of one CPU) and a memory limit that includes swap, and
report what the whole process tree cost (autograder/bench/bench.py uses it).

The cgroup is made through the kernel's files, as root, under the cgroup of
this process (read from /proc/self/cgroup) so that it nests inside whatever
limits already apply; under cgroup v2 (one hierarchy with cpu and memory
under CGROUP_ROOT) or else v1 (CGROUP_ROOT/cpu, CGROUP_ROOT/memory and, when
present, CGROUP_ROOT/cpuacct). The child joins it before exec, so everything
it starts (the grader's workers) is inside too. box_available() says why no
box can be made, naming the file.
"""
import errno
import os
import resource
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
SAMPLE_SECONDS = 0.05
MB = 1024 * 1024


@dataclass
class BoxResult:
    """What a boxed run cost. status: exit status (negative: killed by that
    signal); wall and cpu in seconds (cpu: the group's usage, all processes);
    peak_bytes: the group's peak charged memory (anonymous memory and page
    cache, what the limit counts); peak_anon_bytes: the largest anonymous
    memory sampled (what cannot be reclaimed); oom_kills: processes the
    kernel killed for the memory limit; timed_out: the run was killed at
    its timeout."""
    status: int
    wall: float
    cpu: float
    peak_bytes: int
    peak_anon_bytes: int
    oom_kills: int
    timed_out: bool


class BoxUnavailable(Exception):
    """No box can be made; the message is one line naming the file."""


def _own_path(controller):
    """This process's cgroup path (no leading /) for a v1 controller, or for
    the v2 hierarchy when controller is ''; None when not listed."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if (controller in controllers.split(",")) if controller else (number == "0" and not controllers):
            return path.strip("/")
    return None


def _layout():
    """('v2', {'': parent dir}) or ('v1', {controller: parent dir}): where the
    box's cgroup goes. Parents are this process's own cgroups when their
    folders exist (else the hierarchy's root, as in a container that sees only
    its own subtree). Raises BoxUnavailable."""
    unified = CGROUP_ROOT / "cgroup.controllers"
    if unified.is_file():
        missing = {"cpu", "memory"} - set(unified.read_text().split())
        if missing:
            raise BoxUnavailable(f"{unified} lacks the {' and '.join(sorted(missing))} controller(s)")
        return "v2", {"": _v2_parent()}
    parents = {}
    for controller in ("cpu", "memory", "cpuacct"):
        base = CGROUP_ROOT / controller
        if not (base / "cgroup.procs").is_file():
            if controller == "cpuacct":
                continue   # optional: CPU time then comes from wait4
            raise BoxUnavailable(f"no cgroup v2 ({unified}) and no v1 {controller} controller "
                                 f"({base / 'cgroup.procs'} missing)")
        parents[controller] = _parent(base, _own_path(controller))
    if parents.get("cpuacct") == parents["cpu"]:
        del parents["cpuacct"]    # cpu and cpuacct mounted together: one folder
    return "v1", parents


def _parent(base, own):
    candidate = base / own if own else base
    return candidate if candidate.is_dir() else base


def _v2_parent():
    """The v2 cgroup to create the box in: this process's own, or, when cpu and
    memory cannot be enabled for its children (v2 forbids that in a non-root
    cgroup holding processes), its parent, where they are already enabled
    for our own cgroup. Raises BoxUnavailable."""
    own = _parent(CGROUP_ROOT, _own_path(""))
    problems = []
    for candidate in (own, own.parent) if own != CGROUP_ROOT else (own,):
        control = candidate / "cgroup.subtree_control"
        try:
            if {"cpu", "memory"} <= set(control.read_text().split()):
                return candidate
            control.write_text("+cpu +memory")
            return candidate
        except OSError as exc:
            problems.append(f"cannot enable cpu and memory in {control}: {exc.strerror}")
    raise BoxUnavailable("; ".join(problems))


class Box:
    """One fresh cgroup (per controller under v1) with the given limits;
    use as a context manager: leaving it kills what is left and removes it."""

    def __init__(self, cpu=0.5, memory_mb=768, name=None):
        if os.geteuid() != 0:
            raise BoxUnavailable("not root (euid %d): creating cgroups needs root" % os.geteuid())
        self.version, parents = _layout()
        name = name or f"autograder-box-{os.getpid()}-{time.monotonic_ns()}"
        self.dirs = {}
        try:
            for controller, parent in parents.items():
                self.dirs[controller] = parent / name
                _mkdir(self.dirs[controller])
            limit = str(int(memory_mb * MB))
            if self.version == "v2":
                self._write("", "cpu.max", f"{int(cpu * PERIOD_US)} {PERIOD_US}")
                self._write("", "memory.max", limit)
                self._write("", "memory.swap.max", "0", optional=True)
            else:
                self._write("cpu", "cpu.cfs_period_us", str(PERIOD_US))
                self._write("cpu", "cpu.cfs_quota_us", str(int(cpu * PERIOD_US)))
                self._write("memory", "memory.limit_in_bytes", limit)
                self._write("memory", "memory.memsw.limit_in_bytes", limit, optional=True)
        except BaseException:
            self.remove()
            raise

    def _write(self, controller, filename, text, optional=False):
        path = self.dirs[controller] / filename
        if optional and not path.exists():
            return
        try:
            descriptor = os.open(path, os.O_WRONLY)   # never creates: only the kernel's files
            try:
                os.write(descriptor, text.encode())
            finally:
                os.close(descriptor)
        except OSError as exc:
            raise BoxUnavailable(f"cannot write {text!r} to {path}: {exc.strerror}") from None

    def _read(self, controller, filename):
        try:
            return (self.dirs[controller] / filename).read_text()
        except (OSError, KeyError):
            return None

    def _stat(self, controller, filename, key):
        """The number after `key` in a 'key value' lines file, or None."""
        for line in (self._read(controller, filename) or "").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
        return None

    def _memory(self):
        return "" if self.version == "v2" else "memory"

    def join(self):
        """Move the calling process into the box (every controller). For preexec_fn."""
        for directory in self.dirs.values():
            (directory / "cgroup.procs").write_text(str(os.getpid()))

    def pids(self):
        """Processes in the box now."""
        text = self._read(self._memory(), "cgroup.procs") or ""
        return [int(pid) for pid in text.split()]

    def usage(self):
        """(charged bytes, anonymous bytes) of the box now."""
        if self.version == "v2":
            return int(self._read("", "memory.current") or 0), self._stat("", "memory.stat", "anon") or 0
        return (int(self._read("memory", "memory.usage_in_bytes") or 0),
                self._stat("memory", "memory.stat", "total_rss") or 0)

    def peak(self):
        """The kernel's peak charged bytes of the box, or None when it keeps none."""
        text = self._read("", "memory.peak") if self.version == "v2" else \
            self._read("memory", "memory.max_usage_in_bytes")
        return int(text) if text else None

    def cpu_seconds(self):
        """CPU seconds used by all processes ever in the box, or None when unknown."""
        if self.version == "v2":
            usec = self._stat("", "cpu.stat", "usage_usec")
            return None if usec is None else usec / 1e6
        text = self._read("cpuacct" if "cpuacct" in self.dirs else "cpu", "cpuacct.usage")
        return int(text) / 1e9 if text else None

    def oom_kills(self):
        """Processes killed by the kernel for the box's memory limit (0 if not counted)."""
        if self.version == "v2":
            return self._stat("", "memory.events", "oom_kill") or 0
        return self._stat("memory", "memory.oom_control", "oom_kill") or 0

    def kill_all(self, seconds=10):
        """SIGKILL every process in the box until it is empty (or seconds pass)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def remove(self):
        """Kill what is left and remove the box's cgroup folders."""
        if self.dirs:
            self.kill_all()
        for directory in self.dirs.values():
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    time.sleep(0.1)
        self.dirs = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()

    def run(self, command, timeout=None, **popen_kwargs):
        """Run command (a subprocess.Popen argument list) inside the box and
        wait for it and everything it started; popen_kwargs go to Popen
        (cwd, env, stdout, stderr; no preexec_fn). At timeout seconds of wall
        time every process in the box is killed. Returns a BoxResult."""
        peaks = [0, 0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                charged, anon = self.usage()
                peaks[0], peaks[1] = max(peaks[0], charged), max(peaks[1], anon)
                done.wait(SAMPLE_SECONDS)

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        process = subprocess.Popen(command, preexec_fn=self.join, **popen_kwargs)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timed_out = False
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        wall = time.monotonic() - started
        self.kill_all()    # at the timeout, or what the command left behind
        process.wait()
        done.set()
        sampler.join()
        cpu = self.cpu_seconds()
        if cpu is None:
            # wait4 counts the child and every descendant it waited for.
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return BoxResult(status=process.returncode, wall=wall, cpu=cpu,
                         peak_bytes=max(self.peak() or 0, peaks[0]), peak_anon_bytes=peaks[1],
                         oom_kills=self.oom_kills(), timed_out=timed_out)


def _mkdir(path):
    try:
        path.mkdir()
    except OSError as exc:
        raise BoxUnavailable(f"cannot create {path}: {exc.strerror}") from None


def box_available(cpu=0.5, memory_mb=768):
    """None when a box with these limits can be made here (one is made and
    removed to find out), else a one-line reason naming the file it tried."""
    try:
        with Box(cpu, memory_mb):
            return None
    except BoxUnavailable as exc:
        return str(exc)
    except OSError as exc:
        return f"{exc.filename or CGROUP_ROOT}: {exc.strerror or exc}"


def run_in_box(command, cpu=0.5, memory_mb=768, timeout=None, **popen_kwargs):
    """Run command in a fresh box (see Box.run); the box is removed after. Raises BoxUnavailable."""
    with Box(cpu, memory_mb) as box:
        return box.run(command, timeout=timeout, **popen_kwargs)
