"""Check your work from a notebook the way Gradescope does (provided: do not edit).

    from checks import check, pack
    check("conv_forward")   # the public cases of one function, graded as on Gradescope
    pack()                  # checks your four files and writes submission.zip

Both run the course's grader, the autograder/ folder that came with the
handout next to this cnn/ folder, in a separate Python process, on the files
as they are saved on disk: save layers.py or models.py before you check.
From a shell, the same commands are `python -m autograder check FUNCTION`
and `python -m autograder pack`, run from the handout folder.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def grader_folder():
    """The folder to run `python -m autograder` in: the handout folder around
    cnn/, or cnn/ itself when the grader is installed as a package."""
    if (HERE.parent / "autograder" / "__main__.py").is_file():
        return HERE.parent
    if importlib.util.find_spec("autograder") is not None:
        return HERE
    raise FileNotFoundError(
        f"the grader was not found: expected the handout's autograder/ folder in {HERE.parent} "
        f"(keep cnn/ and autograder/ side by side, as the handout zip unpacks them)")


def _grader(*arguments):
    """Run `python -m autograder ARGUMENTS` on this folder; print what it says.
    Returns its exit status (0: all good)."""
    done = subprocess.run([sys.executable, "-m", "autograder", *arguments], cwd=grader_folder(),
                          capture_output=True, text=True)
    print(done.stdout.rstrip("\n"))
    if done.returncode >= 2 and done.stderr.strip():
        print(done.stderr.rstrip("\n"), file=sys.stderr)
    return done.returncode


def check(function):
    """Grade the public cases of `function` (e.g. "conv_forward", or "ConvNet")
    in layers.py / models.py as Gradescope does, and print its feedback."""
    status = _grader("check", function, str(HERE))
    if status == 0:
        print(f"{function}: every check passed.")


def pack():
    """Check the files to hand in and write submission.zip in this folder."""
    _grader("pack", str(HERE), *(["--colab"] if "google.colab" in sys.modules else []))
