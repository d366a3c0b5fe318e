"""The CIFAR-10 loader (solutions/cnn/data.py) on small files written in the
real cifar-10-batches-py format, and the download's MD5 check."""
import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from conftest import import_reference

data = import_reference("data")

IMAGES_PER_FILE = 6


def cifar_rows(images):
    """(N, 3, 32, 32) uint8 images -> (N, 3072) rows as the data set stores
    them: the 1024 red values, then green, then blue, each plane row by row."""
    n = len(images)
    rows = np.empty((n, 3072), dtype=np.uint8)
    for index in range(n):
        for channel in range(3):
            for row in range(32):
                start = channel * 1024 + row * 32
                rows[index, start:start + 32] = images[index, channel, row]
    return rows


def write_batch(path, images, labels, name=b"testing batch"):
    batch = {b"batch_label": name,
             b"labels": [int(label) for label in labels],
             b"data": cifar_rows(images),
             b"filenames": [f"image_{i}.png".encode() for i in range(len(labels))]}
    with open(path, "wb") as fh:
        pickle.dump(batch, fh, protocol=2)


def make_dataset(folder, seed=0):
    """Write data_batch_1..5, test_batch and batches.meta into folder (created).
    Returns {file name: (images, labels)} of what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for name in data.TRAIN_FILES + [data.TEST_FILE]:
        images = rng.integers(0, 256, (IMAGES_PER_FILE, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, IMAGES_PER_FILE)
        write_batch(folder / name, images, labels)
        written[name] = (images, labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [c.encode() for c in data.CLASSES],
                     b"num_cases_per_batch": IMAGES_PER_FILE, b"num_vis": 3072}, fh, protocol=2)
    return written


@pytest.fixture
def no_default_locations(monkeypatch, tmp_path):
    """No CIFAR10_DIR and an empty default folder, so only what a test sets up is found."""
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setattr(data, "DEFAULT_DIR", str(tmp_path / "default-data"))


@pytest.fixture
def dataset(tmp_path, no_default_locations):
    folder = tmp_path / "somewhere" / data.FOLDER
    return folder, make_dataset(folder)


def test_load_batch_shapes_dtypes_and_pixel_layout(tmp_path):
    images = np.zeros((3, 3, 32, 32), dtype=np.uint8)
    images[0, 0] = 200                      # image 0: pure red
    images[1, 2, 5, 17] = 255               # image 1: one blue pixel at row 5, column 17
    images[2] = np.arange(3 * 32 * 32).reshape(3, 32, 32) % 251
    path = tmp_path / "data_batch_1"
    write_batch(path, images, [3, 0, 9])

    x, y = data.load_batch(str(path))
    assert x.shape == (3, 3, 32, 32) and x.dtype == np.uint8
    assert y.shape == (3,) and y.dtype == np.int64
    assert y.tolist() == [3, 0, 9]
    assert (x[0, 0] == 200).all() and (x[0, 1:] == 0).all(), "red plane of image 0 landed elsewhere"
    assert x[1, 2, 5, 17] == 255 and x[1].sum() == 255, "pixel (row 5, column 17) of the blue plane moved"
    np.testing.assert_array_equal(x, images)


def test_load_cifar10_concatenates_the_training_files_in_order(dataset):
    folder, written = dataset
    loaded = data.load_cifar10(str(folder))
    assert set(loaded) == {"x_train", "y_train", "x_test", "y_test"}
    assert loaded["x_train"].shape == (5 * IMAGES_PER_FILE, 3, 32, 32)
    assert loaded["x_train"].dtype == np.uint8 and loaded["x_test"].dtype == np.uint8
    assert loaded["y_train"].dtype == np.int64 and loaded["y_test"].dtype == np.int64
    np.testing.assert_array_equal(loaded["x_train"],
                                  np.concatenate([written[n][0] for n in data.TRAIN_FILES]))
    np.testing.assert_array_equal(loaded["y_train"],
                                  np.concatenate([written[n][1] for n in data.TRAIN_FILES]))
    np.testing.assert_array_equal(loaded["x_test"], written[data.TEST_FILE][0])
    np.testing.assert_array_equal(loaded["y_test"], written[data.TEST_FILE][1])


def test_load_cifar10_leaves_out_the_parts_not_asked_for(dataset):
    folder, _ = dataset
    assert set(data.load_cifar10(str(folder), train=False)) == {"x_test", "y_test"}
    assert set(data.load_cifar10(str(folder), test=False)) == {"x_train", "y_train"}


def test_find_accepts_the_folder_or_its_parent(dataset):
    folder, _ = dataset
    assert data.find_cifar10(str(folder)) == str(folder)
    assert data.find_cifar10(str(folder.parent)) == str(folder)


def test_lookup_order_argument_then_environment_then_default(tmp_path, monkeypatch):
    given, from_env, default = (tmp_path / name / data.FOLDER for name in ("given", "env", "default"))
    for folder in (given, from_env, default):
        make_dataset(folder)
    monkeypatch.setattr(data, "DEFAULT_DIR", str(default.parent))
    monkeypatch.setenv("CIFAR10_DIR", str(from_env.parent))
    assert data.find_cifar10(str(given.parent)) == str(given)
    assert data.find_cifar10() == str(from_env)
    monkeypatch.delenv("CIFAR10_DIR")
    assert data.find_cifar10() == str(default)
    # A given path without the data set falls through to the next place.
    monkeypatch.setenv("CIFAR10_DIR", str(from_env))
    assert data.find_cifar10(str(tmp_path / "empty")) == str(from_env)


def test_missing_data_set_names_every_place_looked_at(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEFAULT_DIR", str(tmp_path / "default"))
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "env"))
    with pytest.raises(data.DatasetError) as raised:
        data.load_cifar10(str(tmp_path / "given"))
    message = str(raised.value)
    for place, source in (("given", "given data_dir"), ("env", "CIFAR10_DIR"), ("default", "default")):
        assert str(tmp_path / place / data.FOLDER) in message, f"{place} folder not named: {message}"
        assert source in message
    assert "data_batch_1" in message and "test_batch" in message, "message does not say what was looked for"


def _truncated(path):
    content = path.read_bytes()
    path.write_bytes(content[:len(content) // 2])


def _garbage(path):
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def _empty(path):
    path.write_bytes(b"")


def _wrong_row_length(path):
    with open(path, "wb") as fh:
        pickle.dump({b"data": np.zeros((4, 3000), dtype=np.uint8), b"labels": [0, 1, 2, 3]}, fh)


def _float_pixels(path):
    with open(path, "wb") as fh:
        pickle.dump({b"data": np.zeros((4, 3072), dtype=np.float64), b"labels": [0, 1, 2, 3]}, fh)


def _too_few_labels(path):
    with open(path, "wb") as fh:
        pickle.dump({b"data": np.zeros((4, 3072), dtype=np.uint8), b"labels": [0, 1, 2]}, fh)


def _label_out_of_range(path):
    with open(path, "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 10]}, fh)


def _no_data_key(path):
    with open(path, "wb") as fh:
        pickle.dump({b"labels": [0, 1]}, fh)


def _not_a_dict(path):
    with open(path, "wb") as fh:
        pickle.dump(["not", "a", "batch"], fh)


@pytest.mark.parametrize("damage", [_truncated, _garbage, _empty, _wrong_row_length, _float_pixels,
                                    _too_few_labels, _label_out_of_range, _no_data_key, _not_a_dict],
                         ids=lambda damage: damage.__name__.strip("_"))
@pytest.mark.parametrize("broken_file", ["data_batch_3", "test_batch"])
def test_damaged_file_raises_dataset_error_naming_file_and_format(dataset, damage, broken_file):
    folder, _ = dataset
    damage(folder / broken_file)
    with pytest.raises(data.DatasetError) as raised:
        data.load_cifar10(str(folder))
    message = str(raised.value)
    assert str(folder / broken_file) in message, f"file not named: {message}"
    assert "3072 uint8" in message and "labels" in message, f"expected format not stated: {message}"


def test_missing_training_file_raises_dataset_error(dataset):
    folder, _ = dataset
    (folder / "data_batch_5").unlink()
    with pytest.raises(data.DatasetError, match="data_batch_5: file missing"):
        data.load_cifar10(str(folder))


def test_normalize_uses_the_shared_mean_and_std():
    images = np.random.default_rng(2).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    original = images.copy()
    out = data.normalize(images)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (4, 3, 32, 32)
    mean = np.array(data.MEAN).reshape(1, 3, 1, 1)
    std = np.array(data.STD).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(out.numpy(), (images / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(images, original, err_msg="normalize modified its input")
    from_torch = data.normalize(torch.from_numpy(images))
    np.testing.assert_array_equal(from_torch.numpy(), out.numpy())


def test_normalize_reads_the_module_constants(monkeypatch):
    # MEAN/STD are the single source of truth: changing them changes normalize.
    monkeypatch.setattr(data, "MEAN", (0.0, 0.5, 1.0))
    monkeypatch.setattr(data, "STD", (1.0, 0.5, 0.25))
    images = np.full((1, 3, 32, 32), 255, dtype=np.uint8)
    out = data.normalize(images)
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), [1.0, 1.0, 0.0], atol=1e-6)


def _archive_with_dataset(tmp_path):
    """A small cifar-10-python.tar.gz holding a cifar-10-batches-py folder
    (and one stray file outside it, which must not be extracted)."""
    source = tmp_path / "source"
    written = make_dataset(source / data.FOLDER)
    archive = tmp_path / "served" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / data.FOLDER, arcname=data.FOLDER)
        stray = b"not part of the data set"
        for name in ("stray.txt", f"{data.FOLDER}/../escaped.txt"):
            info = tarfile.TarInfo(name)
            info.size = len(stray)
            tar.addfile(info, io.BytesIO(stray))
    return archive, hashlib.md5(archive.read_bytes()).hexdigest(), written


@pytest.mark.parametrize("tar_filters", [True, False], ids=["python with tar filters", "python 3.10.11"])
def test_download_checks_md5_and_unpacks(tmp_path, monkeypatch, tar_filters):
    if not tar_filters:    # Python before 3.10.12 has no extraction filters
        monkeypatch.delattr(tarfile, "data_filter")
    archive, md5, written = _archive_with_dataset(tmp_path)
    dest = tmp_path / "dest"
    folder = data.download_cifar10(str(dest), url=archive.as_uri(), md5=md5)
    assert folder == str(dest / data.FOLDER)
    assert not (dest / "stray.txt").exists(), "extracted a file from outside cifar-10-batches-py"
    assert not (dest / "escaped.txt").exists(), "extracted a member whose path leaves the folder"
    loaded = data.load_cifar10(folder)
    np.testing.assert_array_equal(loaded["x_test"], written[data.TEST_FILE][0])
    # A second call finds the folder and returns without fetching anything.
    archive.unlink()
    assert data.download_cifar10(str(dest), url=archive.as_uri(), md5=md5) == folder


def test_download_with_wrong_md5_raises_and_extracts_nothing(tmp_path):
    archive, md5, _ = _archive_with_dataset(tmp_path)
    wrong = "0" * 32
    dest = tmp_path / "dest"
    with pytest.raises(data.DatasetError) as raised:
        data.download_cifar10(str(dest), url=archive.as_uri(), md5=wrong)
    message = str(raised.value)
    assert str(dest / archive.name) in message and md5 in message and wrong in message, message
    assert not (dest / data.FOLDER).exists(), "unpacked an archive whose MD5 did not match"


@pytest.mark.data
def test_real_cifar10_loads_with_the_documented_shapes(cifar10_dir):
    loaded = data.load_cifar10(str(cifar10_dir))
    assert loaded["x_train"].shape == (50000, 3, 32, 32) and loaded["x_train"].dtype == np.uint8
    assert loaded["x_test"].shape == (10000, 3, 32, 32) and loaded["x_test"].dtype == np.uint8
    assert np.bincount(loaded["y_train"], minlength=10).tolist() == [5000] * 10
    assert np.bincount(loaded["y_test"], minlength=10).tolist() == [1000] * 10
    # The constants describe these images (loosely: this copy may be re-encoded).
    pixels = loaded["x_train"][::10].transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    np.testing.assert_allclose(pixels.mean(axis=1), data.MEAN, atol=0.01)
    np.testing.assert_allclose(pixels.std(axis=1), data.STD, atol=0.01)
