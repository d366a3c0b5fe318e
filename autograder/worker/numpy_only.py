"""Untrusted side: keeps array and autodiff frameworks (torch, jax, ...) away
from a numpy-only file (layers.py) while the worker runs it.

worker.py loads this file by path (it sits beside it in the job's bin/) when
its job names forbidden modules, and installs a FrameworkBlocker at the front
of sys.meta_path before the submission is imported. From then on every
import of a forbidden module or of one of its submodules, however it is
written (import torch, inside a function, importlib.import_module("to" +
"rch"), __import__), gives a stand-in module instead of the real one. The
import itself costs nothing; using the stand-in (an attribute chain ending in
a call, arithmetic, conversion, iteration, indexing, ...) raises
NumpyOnlyError, whose message names the framework, the function being graded
and the file and line of the submission that used it. Code that only checks
isinstance(x, torch.Tensor) is told "no".

This is the Python-level half. Loading a framework by path
(importlib.util.spec_from_file_location, ctypes) gets around it; the sandbox
closes that where it can by hiding the frameworks' folders from the worker in
its mount namespace (autograder/sandbox/runner.py, Sandbox.framework_folders).
It uses the standard library only.
"""
import importlib.abc
import importlib.machinery
import os
import sys
import types


class NumpyOnlyError(Exception):
    """A numpy-only file used a forbidden framework."""

    def __init__(self, message, framework):
        super().__init__(message)
        self.framework = framework


class FrameworkBlocker(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Meta path finder and loader of stand-ins for the forbidden modules.

    frameworks: top-level module names; rule_file: the numpy-only file (for
    the message); submission_dir: the folder of the submission's files (the
    innermost frame there is where the use is reported); current_function: a
    callable giving the name of the function being graded (None while the
    submission is being imported)."""

    def __init__(self, frameworks, rule_file, submission_dir, current_function):
        self.frameworks = frozenset(frameworks)
        self.rule_file = rule_file
        self.submission_dir = os.path.realpath(submission_dir)
        self.current_function = current_function
        # Bound now: the submission may patch modules later.
        self._realpath, self._dirname, self._basename = os.path.realpath, os.path.dirname, os.path.basename
        self._getframe = sys._getframe

    def install(self):
        """At the front of sys.meta_path; drops any framework already imported
        (a stand-in replaces it at the next import)."""
        for name in list(sys.modules):
            if name.partition(".")[0] in self.frameworks:
                del sys.modules[name]
        sys.meta_path.insert(0, self)

    # -- importing ---------------------------------------------------------------
    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] not in self.frameworks:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        return StandInModule(spec.name, self)

    def exec_module(self, module):
        module.__path__ = []

    # -- the message -------------------------------------------------------------
    def where(self):
        """(file name, line) of the innermost frame in the submission's folder."""
        frame = self._getframe(1)
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename and not filename.startswith("<"):
                path = self._realpath(filename)
                if self._dirname(path) == self.submission_dir:
                    return self._basename(path), frame.f_lineno
            frame = frame.f_back
        return self.rule_file, None

    def refuse(self, what):
        """NumpyOnlyError for a use of `what` (e.g. "torch.nn.functional.conv2d")."""
        framework = what.partition(".")[0]
        filename, line = self.where()
        function = self.current_function()
        who = f"{function} used" if function else "importing it used"
        place = f"{filename}, line {line}" if line else filename
        return NumpyOnlyError(
            f"{self.rule_file} must compute with numpy: {who} {framework} ({place}: {what}). "
            f"The grader gives {self.rule_file} no {framework}, only numpy and the standard "
            f"library: write {function or 'that code'} with numpy.", framework)


class StandInModule(types.ModuleType):
    """What `import torch` (or torch.nn, ...) gives: attributes are stand-ins."""

    def __init__(self, name, blocker):
        super().__init__(name)
        object.__setattr__(self, "_numpy_only_blocker", blocker)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return StandIn(f"{self.__name__}.{name}", self._numpy_only_blocker)


def _refuse(self, *args, **kwargs):
    raise self._blocker.refuse(self._name)


class StandIn:
    """Any attribute of a stand-in module (torch.zeros, torch.nn.functional,
    torch.float32, ...): attributes are stand-ins too; every other use raises
    NumpyOnlyError."""

    __slots__ = ("_name", "_blocker")

    def __init__(self, name, blocker):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_blocker", blocker)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name == "dtype":             # numpy asks this of anything given as a dtype
            raise self._blocker.refuse(self._name)
        return StandIn(f"{self._name}.{name}", self._blocker)

    def __repr__(self):
        return f"<{self._name}: not available (numpy only)>"

    def __instancecheck__(self, instance):
        return False

    def __subclasscheck__(self, subclass):
        return False

    def __mro_entries__(self, bases):
        """A class deriving from one (class Net(torch.nn.Module)) can still be
        defined; making or using it refuses."""
        return (StandInMeta(self._name, (), {"_numpy_only": (self._name, self._blocker)}),)

    __setattr__ = __delattr__ = __call__ = _refuse
    __getitem__ = __setitem__ = __delitem__ = __iter__ = __len__ = __contains__ = _refuse
    __bool__ = __int__ = __float__ = __complex__ = __index__ = __array__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __enter__ = __exit__ = __get__ = _refuse
    __neg__ = __pos__ = __abs__ = __invert__ = _refuse


class StandInMeta(type):
    """The type of the base a stand-in gives a class deriving from it: calling
    the class, or looking up what it would inherit, refuses."""

    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        base, blocker = type.__getattribute__(cls, "_numpy_only")
        raise blocker.refuse(f"{base}.{name}")

    def __call__(cls, *args, **kwargs):
        base, blocker = type.__getattribute__(cls, "_numpy_only")
        raise blocker.refuse(base)


_BINARY = ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod", "pow",
           "lshift", "rshift", "and", "xor", "or")
for _op in _BINARY:
    for _form in ("__{}__", "__r{}__", "__i{}__"):
        setattr(StandIn, _form.format(_op), _refuse)
del _op, _form


def refusal_behind(exc):
    """The NumpyOnlyError behind exc (itself, or what it was raised from or
    raised while handling), or None."""
    for _ in range(8):
        if exc is None or isinstance(exc, NumpyOnlyError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def blocker_for(job, submission_dir, current_function):
    """The FrameworkBlocker a job's "forbidden" entry asks for, or None."""
    forbidden = job.get("forbidden")
    if not forbidden:
        return None
    return FrameworkBlocker(forbidden["modules"], forbidden["file"], submission_dir, current_function)
