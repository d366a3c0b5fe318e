"""The wheel's build step: the package with every data file the grader needs
(cases, rubric.yaml, the reference band, the worker's files, the Gradescope
scripts, the TA checks) and the provided data.py and train.py copied from
solutions/cnn into autograder/provided/ (the source of truth stays there).

What the wheel holds is autograder/authoring/shipping.py's
package_files("wheel"); tests/test_packaging.py builds the wheel and compares.
Metadata and dependencies are in pyproject.toml.
"""
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent


class BuildPackageWithData(build_py):
    """build_py, plus every file of shipping.package_files("wheel") written
    into the build folder (an editable install reads the tree itself)."""

    def run(self):
        editable = getattr(self, "editable_mode", False)
        target = Path(self.build_lib) / "autograder"
        if not editable:
            shutil.rmtree(target, ignore_errors=True)      # no file left from an earlier build
        super().run()
        if editable:
            return
        sys.path.insert(0, str(SOURCE))
        try:
            from autograder.authoring import shipping
        finally:
            sys.path.remove(str(SOURCE))
        for name, content in shipping.package_files("wheel").items():
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            if name.startswith(shipping.GRADESCOPE_SCRIPTS + "/"):
                path.chmod(0o755)


setup(cmdclass={"build_py": BuildPackageWithData})
