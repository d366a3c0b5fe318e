"""CIFAR-10.1 v6 (Recht et al. 2018): 2,000 new test images drawn from the
same distribution as CIFAR-10's test set, published with their labels.
A model that learned CIFAR-10 loses a few points on them (the published
drop: 3-15 points, weaker models more); a model that answers from a copy of
CIFAR-10's test set falls to whatever it does without its copy.

Optional: Gradescope's setup.sh downloads it at image build (MD5-checked),
and the grader reports accuracy on it when it finds it next to CIFAR-10
(``cifar-10.1/`` beside ``cifar-10-batches-py/``); grading works without it.

Standard library and numpy only: setup.sh runs this file by path,
``python fresh_data.py DEST [FROM]`` (DEST: the folder that holds
cifar-10-batches-py; FROM: a local folder holding the two files, for tests
and machines without the network).
"""
import hashlib
import os
import sys
import urllib.request

import numpy as np

URL = "https://raw.githubusercontent.com/modestyachts/CIFAR-10.1/master/datasets/"
IMAGES_FILE = "cifar10.1_v6_data.npy"      # uint8 (2000, 32, 32, 3)
LABELS_FILE = "cifar10.1_v6_labels.npy"    # integers 0..9 (2000,)
MD5 = {IMAGES_FILE: "4fcae82cb1326aec9ed1dc1fc62345b8", LABELS_FILE: "09a97fb7c430502fcbd69d95093a3f85"}
FOLDER = "cifar-10.1"
TIMEOUT = 30
BATCHES_FOLDER = "cifar-10-batches-py"


class FreshDataError(Exception):
    """CIFAR-10.1 is missing, corrupt or not in its published format."""


def _md5(path):
    """MD5 of a file of a few MB, read whole."""
    with open(path, "rb") as handle:
        return hashlib.md5(handle.read()).hexdigest()


def download(dest, url=URL, md5=MD5, timeout=TIMEOUT):
    """Fetch both files into dest/FOLDER, each checked against its MD5
    (a file already there with the right MD5 is kept). Returns the folder."""
    folder = os.path.join(dest, FOLDER)
    os.makedirs(folder, exist_ok=True)
    for name, expected in md5.items():
        path = os.path.join(folder, name)
        if os.path.isfile(path) and _md5(path) == expected:
            continue
        partial = path + ".part"
        with urllib.request.urlopen(url + name, timeout=timeout) as response, open(partial, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        actual = _md5(partial)
        if actual != expected:
            os.unlink(partial)
            raise FreshDataError(f"{url + name}: MD5 {actual}, expected {expected}; the download is "
                                 f"corrupt or the file changed")
        os.replace(partial, path)
    return folder


def find(data_dir):
    """The CIFAR-10.1 folder next to the CIFAR-10 one, or None. data_dir may
    name cifar-10-batches-py itself or its parent (as --data-dir may)."""
    if not data_dir:
        return None
    data_dir = os.path.abspath(data_dir)
    parents = [data_dir] + ([os.path.dirname(data_dir)] if os.path.basename(data_dir) == BATCHES_FOLDER else [])
    for parent in parents:
        folder = os.path.join(parent, FOLDER)
        if os.path.isfile(os.path.join(folder, IMAGES_FILE)):
            return folder
    return None


def load(folder, md5=MD5):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)), or FreshDataError
    naming what is wrong. The files are MD5-checked (md5=None skips it) and
    loaded without pickle."""
    arrays = []
    for name in (IMAGES_FILE, LABELS_FILE):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise FreshDataError(f"{path} is missing")
        if md5 is not None and _md5(path) != md5[name]:
            raise FreshDataError(f"{path}: MD5 {_md5(path)}, expected {md5[name]}")
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except (ValueError, OSError) as exc:
            raise FreshDataError(f"{path}: not a numpy array file ({exc})") from None
    images, labels = arrays
    if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3)
            or labels.shape != (len(images),) or labels.dtype.kind not in "iu"
            or labels.min(initial=0) < 0 or labels.max(initial=0) > 9):
        raise FreshDataError(f"{folder}: found images {images.dtype} {images.shape} and labels "
                             f"{labels.dtype} {labels.shape}; expected uint8 (N, 32, 32, 3) and N "
                             f"integers in 0..9")
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels.astype(np.int64)


if __name__ == "__main__":
    source = URL if len(sys.argv) < 3 else f"file://{os.path.abspath(sys.argv[2])}/"
    print(download(sys.argv[1] if len(sys.argv) > 1 else ".", url=source))
