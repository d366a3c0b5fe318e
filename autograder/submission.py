"""Finding the submission's files: SUBMISSION_DIR itself or one folder below.

Only the expected names are taken, and only regular files (a symbolic link is
refused, never followed). A file that is missing under its exact name is
looked for as a near miss (the name in other letter case, a browser's
"layers (1).py", a .pth checkpoint, the file two or more folders down, only
the notebooks uploaded): a near miss is never graded in its place, but the
summary at the top of the feedback (Submission.summary_lines) and every check
that needs the file say exactly which file was found where and what to
rename or move. The grader copies what is found
into each worker's temporary folder (copy_submission_file, which checks
again, so a file swapped for a link after it was found is still refused);
nothing else of the upload is used: a copy of CIFAR-10 in it (a data/ folder,
the download archive) is never read, only mentioned (data_note).
"""
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from autograder.layout import SUBMISSION_FILES as EXPECTED_FILES   # name -> largest accepted size (bytes)

IGNORED_FOLDERS = {"__MACOSX", "__pycache__"}
# What the local grader itself writes next to the files it grades: never "the upload".
GRADER_OUTPUTS = ("results.json", "results.html", "cnn_curves.png")
# CIFAR-10 as data.py leaves it: never read from an upload (data_note).
DATA_NAMES = ("cifar-10-batches-py", "cifar-10-python.tar.gz")
LARGEST_FILE = max(EXPECTED_FILES.values())


class SubmissionFileError(OSError):
    """A submission file changed into something the grader refuses to copy."""


def submission_digests(files):
    """{file name: sha256 hex} of the submission files ({name: path}), each
    read as the sandbox copies it: a regular file, never through a link, at
    most LARGEST_FILE bytes (or a short text saying why it could not be)."""
    return {name: _digest(path) for name, path in sorted(files.items())}


def _digest(path):
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    digest = hashlib.sha256()
    with open(handle, "rb") as reader:
        if not stat.S_ISREG(os.fstat(reader.fileno()).st_mode):
            return "not a regular file"
        left = LARGEST_FILE + 1
        while left > 0 and (chunk := reader.read(min(left, 1 << 20))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


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


# Near misses: how far down the upload is searched and how much of it is looked at.
SEARCH_DEPTH = 4
SEARCH_ENTRIES = 2000
RELATED_SUFFIXES = {".py": (".py", ".txt", ".py.txt", ".pyw"),
                    ".pt": (".pt", ".pth", ".pkl", ".ckpt", ".bin", ".tar", ".pt.zip")}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".gz", ".7z", ".rar")
LAYOUT = ("The grader takes exactly these four names, at the top of the upload or in one folder "
          "below it: " + ", ".join(EXPECTED_FILES) + ". Files under other names or deeper "
          "folders are never graded in their place.")


@dataclass
class Submission:
    root: Path
    files: dict = field(default_factory=dict)      # name -> path of a regular file
    problems: dict = field(default_factory=dict)   # name -> why it was not taken
    notes: list = field(default_factory=list)      # e.g. where nested files were found
    near_misses: dict = field(default_factory=dict)  # missing name -> what was found instead
    others: dict = field(default_factory=dict)     # found name -> similar files not graded
    notebooks: list = field(default_factory=list)  # .ipynb files in the upload (relative paths)
    archives: list = field(default_factory=list)   # archives in the upload (never opened)
    listing: list = field(default_factory=list)    # what the top of the upload holds
    data: list = field(default_factory=list)       # CIFAR-10 copies in the upload (never read)

    def missing_message(self, name, pointer=True):
        """Why `name` cannot be used, addressed to the student (pointer: and
        that the summary at the top says more, when it is printed)."""
        if name in self.problems:
            return self.problems[name]
        text = f"{name} was not found in the submission (expected a file named exactly {name} " \
               f"at the top of the upload or one folder below)"
        if name in self.near_misses:
            text += f": {self.near_misses[name]}"
        elif self.notebooks and name.endswith(".py"):
            text += (": only notebooks were found for it; the grader runs the .py files, not the "
                     "notebooks")
        return text + " (see the submission summary at the top)" if pointer and self.summary_needed() else text

    def summary_needed(self, needed=EXPECTED_FILES):
        return bool(any(name in self.problems or name not in self.files or name in self.others
                        for name in needed))

    def summary_lines(self, needed=EXPECTED_FILES):
        """The notes for the top of the feedback: where files were found and,
        when a file is missing or another one looks like it, one summary that
        says per expected name what was found and what to do. needed: the
        files the graded parts use (--part layers needs layers.py only)."""
        lines = [note for note in self.notes if note.split(" ", 1)[0].rstrip(":") in needed]
        if not self.summary_needed(needed):
            return lines
        missing = [name for name in needed if name not in self.files]
        if missing:
            names = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1 else missing)
            lines.append(f"SUBMISSION FILES: {names} {'was' if len(missing) == 1 else 'were'} not "
                         f"found under {'its' if len(missing) == 1 else 'their'} exact name"
                         f"{'' if len(missing) == 1 else 's'}, so every check that needs "
                         f"{'it' if len(missing) == 1 else 'them'} scores 0. Per file:")
        else:
            lines.append("SUBMISSION FILES: all were found; check that the right copies were "
                         "graded.")
        for name in needed:
            if name in self.files:
                text = f"- {name}: graded {_show(self.files[name].relative_to(self.root))}"
                if name in self.others:
                    text += (f". Also in the upload and NOT graded: {self.others[name]}; if one of "
                             f"those is your latest version, rename it to {name} (replacing the old "
                             f"one) and submit again")
            elif name in self.problems:
                text = f"- {name}: NOT graded: {self.problems[name]}"
            elif name in self.near_misses:
                text = f"- {name}: NOT GRADED. {_capital(self.near_misses[name])}"
            else:
                text = f"- {name}: NOT FOUND anywhere in the upload"
            lines.append(text + ("" if text.endswith(".") else "."))
        if self.notebooks and any(name.endswith(".py") and name not in self.files for name in needed):
            lines.append(f"- Notebooks found ({', '.join(_show(p) for p in self.notebooks[:4])}"
                         f"{', ...' if len(self.notebooks) > 4 else ''}): the grader does not run "
                         f"notebooks. It grades layers.py and models.py (the files the notebooks "
                         f"import, where you wrote your code) and the checkpoints convnet.pt and "
                         f"fcnet.pt that the training notebook saves: upload those four files "
                         f"(notebooks may be uploaded too: they are not run, only their written "
                         f"answers are collected for the course staff).")
        if self.archives and missing:
            lines.append(f"- Archives found ({', '.join(_show(p) for p in self.archives[:4])}): the "
                         f"grader does not open archives inside the upload. Upload the four files "
                         f"themselves, or one zip that holds them (Gradescope unpacks it).")
        if missing and not any(name in self.near_misses for name in missing) and self.listing:
            lines.append(f"- The top of the upload holds: {', '.join(self.listing)}.")
        lines.append(LAYOUT)
        return lines


def _show(path):
    """A path as the student would type it (quoted when it holds spaces)."""
    text = str(path)
    return f"'{text}'" if " " in text else text


def _capital(text):
    return text[:1].upper() + text[1:]


def _where(relative):
    depth = len(relative.parts) - 1
    if depth == 0:
        return "at the top of the upload"
    folder = _show(relative.parent.as_posix() + "/")
    if depth == 1:
        return f"in the folder {folder}"
    return f"in {folder}, {depth} folders down"


def _squeeze(text):
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _split_suffix(name, family):
    """(stem, suffix) of name when its suffix belongs to family, else None."""
    lower = name.lower()
    for suffix in sorted(family, key=len, reverse=True):
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return name[:-len(suffix)], lower[-len(suffix):]
    return None


def _walk(root):
    """(relative path, is a regular file) of the entries below root, breadth
    first, SEARCH_DEPTH folders deep and SEARCH_ENTRIES entries at most;
    symbolic links are listed, never followed."""
    found, queue = [], [(root, 0)]
    while queue and len(found) < SEARCH_ENTRIES:
        folder, depth = queue.pop(0)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name in IGNORED_FOLDERS or entry.name.startswith("."):
                continue
            if len(found) >= SEARCH_ENTRIES:
                break
            relative = Path(entry.path).relative_to(root)
            if entry.is_dir(follow_symlinks=False):
                if depth + 1 <= SEARCH_DEPTH:
                    queue.append((Path(entry.path), depth + 1))
                found.append((relative, None))
            else:
                found.append((relative, entry.is_file(follow_symlinks=False)))
    return found


def _describe_near_miss(name, relative, why):
    where = _where(relative)
    shown = _show(relative.name)
    if why == "deep":
        return (f"found {_show(relative.as_posix())}, {len(relative.parts) - 1} folders down, but "
                f"the grader looks only at the "
                f"top of the upload and one folder below: upload the files themselves (or a zip "
                f"of them) instead of the folders around them")
    if why == "case":
        advice = (f"its name differs from {name} only in letter case or punctuation; rename it "
                  f"to exactly {name}")
    elif why == "copy":
        advice = (f"its name looks like a second download or a copy of the file; rename it to "
                  f"exactly {name}")
    elif why == "suffix":
        advice = f"the grader takes only the name {name}; rename it to exactly {name}"
        if name.endswith(".pt"):
            advice += " (torch.save writes the same file whatever its name)"
    else:
        advice = f"if this is your {name}, rename it to exactly {name}"
    text = f"found {shown} {where}, which is not graded in its place: {advice}"
    if len(relative.parts) - 1 > 1:
        text += " and move it to the top of the upload"
    return text + " and submit again"


COPY_MARKERS = ("(", "copy", "kopie", "copie", "copia")


def _near_miss_kind(name, candidate):
    """How candidate's name resembles the expected name: 'case' (letter case
    or punctuation), 'copy' ("layers (1).py", "layers copy.py"), 'suffix'
    (convnet.pth, layers.py.txt), 'similar' (my_layers.py) or None."""
    expected_stem, expected_suffix = os.path.splitext(name)
    parts = _split_suffix(candidate, RELATED_SUFFIXES[expected_suffix])
    if parts is None or candidate == name:
        return None
    stem, suffix = parts
    same_suffix = suffix == expected_suffix
    if _squeeze(stem) == _squeeze(expected_stem):
        return "case" if same_suffix else "suffix"
    if _squeeze(stem).rstrip("s") == _squeeze(expected_stem).rstrip("s"):
        return "similar"   # model.py, layer.py
    lower = stem.lower()
    if expected_stem not in lower and not _squeeze(stem).startswith(_squeeze(expected_stem)):
        return None
    rest = lower.replace(expected_stem, "", 1).strip(" ()-_")
    if same_suffix and lower.startswith(expected_stem) and (
            rest.isdigit() or any(marker in lower for marker in COPY_MARKERS)):
        return "copy"
    return "similar"


def find_submission(root, expected=EXPECTED_FILES):
    """Locate each expected file in root or in one of its subfolders; for a
    missing one, record the near misses the student should hear about."""
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
    _look_for_near_misses(submission, expected)
    return submission


def _look_for_near_misses(submission, expected):
    entries = _walk(submission.root)
    files = [relative for relative, regular in entries if regular is not None]
    submission.listing = [_show(relative.name + ("/" if regular is None else ""))
                          for relative, regular in entries
                          if len(relative.parts) == 1 and relative.name not in GRADER_OUTPUTS][:12]
    submission.data = _data_copies(submission.root, entries)
    submission.notebooks = [r for r in files if r.name.lower().endswith(".ipynb")]
    submission.archives = [r for r in files if r.name.lower().endswith(ARCHIVE_SUFFIXES)]
    rank = {"deep": 0, "case": 1, "copy": 2, "suffix": 3, "similar": 4}
    for name in expected:
        matches = []
        for relative in files:
            if relative.name == name:
                if len(relative.parts) > 2:
                    matches.append(("deep", relative))
                continue
            kind = _near_miss_kind(name, relative.name)
            if kind:
                matches.append((kind, relative))
        matches.sort(key=lambda item: (rank[item[0]], len(item[1].parts), str(item[1])))
        if not matches:
            continue
        if name in submission.files or name in submission.problems:
            shown = [_show(relative.as_posix()) for _, relative in matches[:5]]
            if any(kind != "similar" for kind, _ in matches):
                submission.others[name] = ", ".join(shown) + (", ..." if len(matches) > 5 else "")
            continue
        kind, relative = matches[0]
        text = _describe_near_miss(name, relative, kind)
        if len(matches) > 1:
            rest = ", ".join(_show(r.as_posix()) for _, r in matches[1:4])
            text += f" (also similar: {rest}{', ...' if len(matches) > 4 else ''})"
        submission.near_misses[name] = text


def _data_copies(root, entries):
    """The CIFAR-10 copies among entries (relative paths): a folder or link
    named data/ holding cifar-10-batches-py, or the data's own names. Only
    names are looked at; nothing is read, and no link is followed further."""
    found = []
    for relative, _ in entries:
        if relative.name in DATA_NAMES and not any(part in DATA_NAMES or part == "data"
                                                   for part in relative.parts[:-1]):
            found.append(relative)
        elif relative.name == "data" and os.path.lexists(root / relative / DATA_NAMES[0]):
            found.append(relative)
    return found


def data_note(submission):
    """The line saying that the upload's CIFAR-10 was ignored (None when it holds none)."""
    if not submission.data:
        return None
    shown = ", ".join(_show(relative.as_posix() + ("/" if relative.suffix != ".gz" else ""))
                      for relative in submission.data[:3])
    return (f"DATA: the upload holds CIFAR-10 ({shown}); the grader never reads data from an "
            f"upload, so it was ignored. Leave it out: `python -m autograder pack` makes a zip of "
            f"the graded files only.")
