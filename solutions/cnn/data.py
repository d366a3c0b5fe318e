"""CIFAR-10: find, download, load and normalize (provided code, nothing to implement).

The data set is the standard python release, a folder ``cifar-10-batches-py``
holding ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and
``batches.meta``. Where it is looked for, first match wins:

1. the path you pass (``data_dir=...``, or ``--data-dir`` on a command line);
2. the ``CIFAR10_DIR`` environment variable;
3. ``data/`` next to this file (where ``python data.py`` puts it).

Each of these may name the ``cifar-10-batches-py`` folder itself or its parent.

Images stay uint8 (N, 3, 32, 32) in memory (150 MB for the training set) and
are turned into normalized float32 one batch at a time by ``normalize``.
"""
import hashlib
import os
import pickle
import tarfile
import urllib.request

import numpy as np

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")

# Per-channel mean and standard deviation of the official training images
# (pixel values scaled to [0, 1]). Training and grading both use exactly these.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


class DatasetError(Exception):
    """CIFAR-10 is missing or unreadable; the message says what to do."""


def find_cifar10(data_dir=None):
    """Return the path of the ``cifar-10-batches-py`` folder, or raise
    DatasetError naming every place that was looked at."""
    candidates = []
    if data_dir:
        candidates.append(("the given data_dir", data_dir))
    if os.environ.get("CIFAR10_DIR"):
        candidates.append(("CIFAR10_DIR", os.environ["CIFAR10_DIR"]))
    candidates.append(("the default", DEFAULT_DIR))
    looked = []
    for source, path in candidates:
        for folder in (path, os.path.join(path, FOLDER)):
            if os.path.isfile(os.path.join(folder, TEST_FILE)):
                return folder
        looked.append(f"{os.path.join(path, FOLDER)} ({source})")
    raise DatasetError(
        "CIFAR-10 not found. Looked for a folder holding data_batch_1..5 and test_batch in:\n  "
        + "\n  ".join(looked)
        + "\nSet CIFAR10_DIR (or pass --data-dir) to the folder that holds "
        f"'{FOLDER}', or download it with `python data.py`.")


def load_batch(path):
    """Load one batch file: (images uint8 (N, 3, 32, 32), labels int64 (N,))."""
    expected = ("a CIFAR-10 python batch: a pickled dict with b'data' "
                "(N x 3072 uint8) and b'labels' (N ints in 0..9)")
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file missing; expected {expected}. "
                           "Re-download with `python data.py`.") from None
    except Exception as exc:  # any unpickling or key error means a broken file
        raise DatasetError(f"{path}: cannot read it ({type(exc).__name__}: {exc}); "
                           f"expected {expected}. Re-download with `python data.py`.") from None
    if (data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072
            or labels.shape != (data.shape[0],) or labels.min(initial=0) < 0
            or labels.max(initial=0) > 9):
        raise DatasetError(f"{path}: found data {data.dtype} {data.shape} and labels "
                           f"{labels.shape}; expected {expected}. Re-download with `python data.py`.")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(data_dir=None, train=True, test=True):
    """Load CIFAR-10 as uint8 arrays.

    Returns a dict with 'x_train' (50000, 3, 32, 32), 'y_train' (50000,),
    'x_test' (10000, 3, 32, 32), 'y_test' (10000,); the parts not asked for
    (train=False or test=False) are left out.
    """
    folder = find_cifar10(data_dir)
    out = {}
    if train:
        parts = [load_batch(os.path.join(folder, name)) for name in TRAIN_FILES]
        out["x_train"] = np.concatenate([x for x, _ in parts])
        out["y_train"] = np.concatenate([y for _, y in parts])
    if test:
        out["x_test"], out["y_test"] = load_batch(os.path.join(folder, TEST_FILE))
    return out


def normalize(images):
    """uint8 images (N, 3, 32, 32), numpy or torch, -> normalized float32 torch tensor
    (on the device of the input)."""
    import torch
    x = torch.as_tensor(images).float().div_(255.0)
    mean = torch.tensor(MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_cifar10(dest=DEFAULT_DIR, url=URL, md5=ARCHIVE_MD5):
    """Download the official archive into dest, check its MD5, unpack it and
    return the path of the ``cifar-10-batches-py`` folder. Does nothing when
    the folder is already there."""
    folder = os.path.join(dest, FOLDER)
    if os.path.isfile(os.path.join(folder, TEST_FILE)):
        return folder
    os.makedirs(dest, exist_ok=True)
    archive = os.path.join(dest, os.path.basename(url))
    if not (os.path.exists(archive) and _md5(archive) == md5):
        from tqdm import tqdm
        partial = archive + ".part"
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as fh:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="CIFAR-10") as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    fh.write(chunk)
                    bar.update(len(chunk))
        os.replace(partial, archive)
    actual = _md5(archive)
    if actual != md5:
        raise DatasetError(f"{archive}: MD5 {actual} does not match the official {md5}; "
                           "the download is corrupt. Delete the file and run `python data.py` again.")
    with tarfile.open(archive, "r:gz") as tar:
        # Only regular files under FOLDER/ are extracted; the "data" filter adds
        # its own checks where Python has it (3.10.12+, 3.11.4+).
        members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(FOLDER + "/")
                   and ".." not in m.name.split("/")]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest, members=members, **safe)
    return folder


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(
        description=f"Download the official CIFAR-10 (python version, 170 MB), check its MD5 and "
                    f"unpack it into DEST/{FOLDER}; prints that folder. Does nothing if it is there.")
    parser.add_argument("dest", nargs="?", default=DEFAULT_DIR,
                        help=f"where to put it (default: {DEFAULT_DIR}, where the notebooks, "
                             "train.py and the local grader look)")
    args = parser.parse_args(argv)
    try:
        print(download_cifar10(args.dest))
    except DatasetError as exc:
        parser.exit(1, f"data.py: {exc}\n")
    except OSError as exc:    # no network, a proxy, a refused connection, a full disk
        reason = getattr(exc, "reason", None) or exc
        parser.exit(1, f"data.py: could not download {URL}: {reason}.\nCheck the internet "
                       f"connection and run `python data.py` again (a partial download is "
                       f"restarted), or download the archive by hand and set CIFAR10_DIR to the "
                       f"folder holding {FOLDER}.\n")


if __name__ == "__main__":
    main()
