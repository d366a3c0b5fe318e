"""The leak check: no solution line (a "secret", found by the markers) may
occur in the handout's files or its zip, apart from the PUBLISHED_LINES;
notebooks are searched by their cells' sources."""
import io
import json
import re
import zipfile
from pathlib import Path

from autograder.authoring import shipping
from autograder.authoring.handout_plan import KEPT_ON_REBUILD, display

# Solution lines allowed in the handout all the same, each with the reason; the
# leak check fails on any other solution line it finds there.
PUBLISHED_LINES = {
    "out = gamma * x_hat + beta": "the batch-norm formula of the docstring, quoted by a feedback "
                                  "message of autograder/parts/layers/batchnorm.py",
}


def tree_texts(folder):
    return {f"{display(Path(folder))}/{path}": text
            for path, text in texts(shipping.tree_files(Path(folder), KEPT_ON_REBUILD)).items()}


def zip_texts(archive, label="handout.zip"):
    """{'label:member': searchable text} of a zip given as bytes."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        files = {name: opened.read(name) for name in opened.namelist()}
    return {f"{label}:{name}": text for name, text in texts(files).items()}


def texts(files):
    """Searchable text of each file: a notebook's cell sources, else the decoded bytes."""
    out = {}
    for path, data in files.items():
        text = data.decode("utf-8", errors="replace")
        if path.endswith(".ipynb"):
            try:
                text = "\n".join("".join(cell.get("source", ""))
                                 for cell in json.loads(text).get("cells", []))
            except (ValueError, AttributeError):
                pass  # not a valid notebook: search its raw text
        out[path] = text
    return out


def find_leaks(secrets, texts):
    """'file: line (from where)' for every secret line occurring in texts."""
    leaks = []
    for path, text in texts.items():
        for line, origin in secrets.items():
            if occurs(line, text):
                leaks.append(f"{path}: {line!r} (solution line from {origin})")
    return leaks


def occurs(line, text):
    """Whether line occurs in text, not as part of a longer name."""
    pattern = re.escape(line)
    if re.match(r"\w", line):
        pattern = r"(?<!\w)" + pattern
    if re.search(r"\w$", line):
        pattern += r"(?!\w)"
    return re.search(pattern, text) is not None
