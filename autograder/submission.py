"""Finding the submission's files: SUBMISSION_DIR itself or one folder below.

Only the expected names are looked for, and only regular files are taken (a
symbolic link is refused, never followed). The grader copies what is found
into each worker's temporary folder (copy_submission_file, which checks
again, so a file swapped for a link after it was found is still refused);
nothing else of the upload is used.
"""
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

# Expected file name -> largest accepted size in bytes.
EXPECTED_FILES = {
    "layers.py": 1_000_000,
    "models.py": 1_000_000,
    "convnet.pt": 50_000_000,
    "fcnet.pt": 50_000_000,
}
IGNORED_FOLDERS = {"__MACOSX", "__pycache__"}
LARGEST_FILE = max(EXPECTED_FILES.values())


class SubmissionFileError(OSError):
    """A submission file changed into something the grader refuses to copy."""


def copy_submission_file(source, destination, max_size=None):
    """Copy the regular file source (never through a symbolic link) to destination,
    refusing anything larger than max_size bytes (default: the cap of its name)."""
    source = Path(source)
    if max_size is None:
        max_size = EXPECTED_FILES.get(source.name, LARGEST_FILE)
    try:
        handle = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise SubmissionFileError(f"copy_submission_file: cannot open {source} as a regular file "
                                  f"without following links: {exc.strerror}") from None
    with open(handle, "rb") as reader:
        info = os.fstat(reader.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionFileError(f"copy_submission_file: {source} is not a regular file")
        data = reader.read(max_size + 1)
    if len(data) > max_size:
        raise SubmissionFileError(f"copy_submission_file: {source} is larger than the "
                                  f"{max_size:,} bytes allowed for it")
    with open(destination, "xb") as writer:
        writer.write(data)


@dataclass
class Submission:
    root: Path
    files: dict = field(default_factory=dict)      # name -> path of a regular file
    problems: dict = field(default_factory=dict)   # name -> why it was not taken
    notes: list = field(default_factory=list)      # e.g. where nested files were found

    def missing_message(self, name):
        """Why `name` cannot be used, addressed to the student."""
        return self.problems.get(name, f"{name} was not found in the submission (expected a file "
                                       f"named exactly {name} at the top of the upload)")


def find_submission(root, expected=EXPECTED_FILES):
    """Locate each expected file in root or in one of its subfolders."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"submission folder {root} does not exist or is not a folder")
    submission = Submission(root=root)
    subfolders = sorted(entry for entry in root.iterdir()
                        if entry.is_dir() and not entry.is_symlink()
                        and entry.name not in IGNORED_FOLDERS and not entry.name.startswith("."))
    for name, max_size in expected.items():
        candidates = [folder / name for folder in [root] + subfolders
                      if os.path.lexists(folder / name)]
        if not candidates:
            continue
        path = candidates[0]
        mode = os.lstat(path).st_mode
        relative = path.relative_to(root)
        if stat.S_ISLNK(mode):
            submission.problems[name] = (f"{relative} is a symbolic link; upload the file itself")
        elif not stat.S_ISREG(mode):
            submission.problems[name] = f"{relative} is not a regular file"
        elif os.lstat(path).st_size > max_size:
            submission.problems[name] = (f"{relative} is larger than the {max_size:,} bytes "
                                         f"allowed for it")
        else:
            submission.files[name] = path
            if path.parent != root:
                submission.notes.append(f"{name} found in the subfolder {path.parent.name}/")
        if len(candidates) > 1:
            others = ", ".join(str(c.relative_to(root)) for c in candidates[1:])
            submission.notes.append(f"{name}: used {relative}, ignored {others}")
    return submission
