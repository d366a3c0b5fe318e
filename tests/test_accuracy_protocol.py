"""The accuracy protocol of issue #14, piece by piece: the changes applied to
test images (transforms.py), the secret seed of a submission (secret.py),
what each model is shown (evaluation.py), the integrity figures and flags
(integrity.py), and CIFAR-10.1 (fresh_data.py, on small files made here in
the published format)."""
import hashlib
import subprocess
import sys

import numpy as np
import pytest

from autograder.parts.cnn import data_protocol, fresh_data, integrity
from autograder.parts.cnn.evaluation import FRESH, TEST, TRAIN, TRANSFORMS, View, draw_views
from autograder.parts.cnn.secret import PUBLIC_KEY, grading_key, submission_seed
from autograder.parts.cnn.settings import DEFAULTS
from autograder.parts.cnn.transforms import Family, transform


def images(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)


# -- transforms -----------------------------------------------------------------------------

def test_no_change_is_the_identity_and_each_change_does_what_it_says():
    x = images(20)
    assert np.array_equal(transform(x, np.random.default_rng(0), Family()), x)
    flipped = transform(x, np.random.default_rng(0), Family(flip=1.0))
    assert np.array_equal(flipped, x[..., ::-1])
    shifted = transform(x, np.random.default_rng(1), Family(shift=3))
    moved = 0
    for image, original in zip(shifted, x):
        # a whole-pixel shift: some offset (dy, dx) with |d| <= 3 maps the inner part exactly
        found = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                 if np.array_equal(image[:, 3 + dy:29 + dy, 3 + dx:29 + dx], original[:, 3:29, 3:29])]
        assert found
        moved += found != [(0, 0)]
    assert moved >= 15
    brighter = transform(np.full((4, 3, 32, 32), 100, np.uint8), np.random.default_rng(2), Family(brightness=0.1))
    assert all(len(np.unique(image)) == 1 and 74 <= image[0, 0, 0] <= 126 for image in brighter)


def test_changes_keep_images_close_and_follow_the_seed_alone():
    x = images(300, seed=3)
    family = TRANSFORMS["ConvNet"]
    first, again = (transform(x, np.random.default_rng(42), family) for _ in range(2))
    other = transform(x, np.random.default_rng(43), family)
    assert first.dtype == np.uint8 and first.shape == x.shape
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    # No changed image is any original: an exact-match table finds nothing.
    originals = {image.tobytes() for image in x}
    assert not any(image.tobytes() in originals for image in first)


def test_the_fcnet_images_are_not_shifted():
    assert TRANSFORMS["FCNet"].shift == 0 and TRANSFORMS["ConvNet"].shift > 0
    x = np.zeros((50, 3, 32, 32), np.uint8)
    x[:, :, 10:20, 10:20] = 200
    out = transform(x, np.random.default_rng(0), TRANSFORMS["FCNet"])
    bright = out.mean(axis=1) > 100
    # the square stays where it was, or mirrored left-right (columns 12-21), never moved up or down
    assert all(np.array_equal(np.flatnonzero(b.any(axis=1)), np.arange(10, 20)) for b in bright)


# -- the secret seed ----------------------------------------------------------------------

def test_the_key_comes_from_the_hidden_cases_and_without_them_is_public(tmp_path):
    assert grading_key(tmp_path) == (PUBLIC_KEY, False)
    (tmp_path / "hidden" / "conv").mkdir(parents=True)
    (tmp_path / "hidden" / "conv" / "h1.inp.x.npy").write_bytes(b"abc")
    key, secret = grading_key(tmp_path)
    assert secret and key != PUBLIC_KEY
    (tmp_path / "hidden" / "conv" / "h1.inp.x.npy").write_bytes(b"abd")
    assert grading_key(tmp_path)[0] != key
    # Expected outputs, mistake variants and the index (the builder's fingerprint) do not count:
    # rebuilding the cases with another builder or on another machine keeps every draw.
    changed = grading_key(tmp_path)[0]
    for name in ("h1.exp.out.npy", "h1.var.out.pad_ignored.npy", "cases.json"):
        (tmp_path / "hidden" / ("conv" if name != "cases.json" else "") / name).write_bytes(b"built")
    assert grading_key(tmp_path)[0] == changed


def test_the_seed_depends_on_the_contents_of_the_graded_files_only(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
        (folder / "models.py").write_text("class ConvNet: pass\n")
        (folder / "convnet.pt").write_bytes(b"\x00" * 100)
    files = {folder: {name: folder / name for name in ("models.py", "convnet.pt")} for folder in (one, two)}
    assert submission_seed(b"k", files[one]) == submission_seed(b"k", files[two])
    assert submission_seed(b"k", files[one]) != submission_seed(b"other key", files[one])
    (two / "convnet.pt").write_bytes(b"\x00" * 99 + b"\x01")
    assert submission_seed(b"k", files[one]) != submission_seed(b"k", files[two])
    # A link is never followed (as the sandbox never copies through one): it does not stand for its target.
    (two / "link.pt").symlink_to(one / "convnet.pt")
    linked = submission_seed(b"k", {"convnet.pt": two / "link.pt"})
    assert linked != submission_seed(b"k", {"convnet.pt": one / "convnet.pt"})


# -- what each model is shown -------------------------------------------------------------

def test_views_pair_every_row_with_its_image_in_a_secret_order_and_differ_per_model():
    test_set = data_protocol.TestSet(images=images(400, seed=5), labels=np.arange(400) % 10)
    fresh = data_protocol.TestSet(images=images(30, seed=6), labels=np.arange(30) % 10)
    train = data_protocol.TestSet(images=images(50, seed=7), labels=np.arange(50) % 10)
    sizes = dict(unchanged=100, fresh_images=25, train_images=40)
    views = draw_views(test_set, 1234, ["FCNet", "ConvNet"], fresh, train, **sizes)
    again = draw_views(test_set, 1234, ["FCNet", "ConvNet"], fresh, train, **sizes)
    for name, view in views.items():
        changed, unchanged = view.changed, view.unchanged
        assert sorted(changed.index) == list(range(400)) and not np.array_equal(changed.index, np.arange(400))
        assert np.array_equal(changed.labels, test_set.labels[changed.index])
        assert np.array_equal(changed.images, again[name].changed.images)
        test_rows, fresh_rows = unchanged.source == TEST, unchanged.source == FRESH
        assert test_rows.sum() == 100 and fresh_rows.sum() == 25 and len(set(unchanged.index[fresh_rows])) == 25
        assert np.array_equal(unchanged.images[test_rows], test_set.images[unchanged.index[test_rows]])
        assert np.array_equal(unchanged.images[fresh_rows], fresh.images[unchanged.index[fresh_rows]])
        assert np.array_equal(unchanged.labels[fresh_rows], fresh.labels[unchanged.index[fresh_rows]])
        assert not np.array_equal(np.flatnonzero(fresh_rows), np.arange(100, 125))      # mixed in
        train_rows = unchanged.source == TRAIN
        assert train_rows.sum() == 40 and len(set(unchanged.index[train_rows])) == 40
        assert np.array_equal(unchanged.images[train_rows], train.images[unchanged.index[train_rows]])
        assert np.array_equal(unchanged.labels[train_rows], train.labels[unchanged.index[train_rows]])
        assert np.array_equal(unchanged.images, again[name].unchanged.images)
    assert not np.array_equal(views["FCNet"].changed.index, views["ConvNet"].changed.index)
    other = draw_views(test_set, 1235, ["FCNet", "ConvNet"], fresh, train, **sizes)
    assert not np.array_equal(other["ConvNet"].changed.images, views["ConvNet"].changed.images)


# -- integrity figures and flags ----------------------------------------------------------

def logits_for(answers):
    out = np.zeros((len(answers), 10), np.float32)
    out[np.arange(len(answers)), answers] = 5.0
    return out


def paired_views(labels, clean_rows):
    count = len(labels)
    order = np.random.default_rng(0).permutation(count)
    changed = View(np.zeros((count, 3, 32, 32), np.uint8), labels[order], np.full(count, TEST), order)
    index = np.asarray(clean_rows)
    unchanged = View(np.zeros((len(index), 3, 32, 32), np.uint8), labels[index], np.full(len(index), TEST), index)
    return changed, unchanged


def test_an_honest_looking_model_is_not_flagged_and_a_table_is():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 1000)
    changed, unchanged = paired_views(labels, np.arange(0, 1000, 2))
    # honest: right on a fixed 85% of images (the same ones either way), wrong alike on the rest
    hard = rng.random(1000) < 0.15
    answers = np.where(hard, (labels + 1) % 10, labels)
    found = integrity.figures(logits_for(answers[changed.index]), changed,
                              logits_for(answers[unchanged.index]), unchanged)
    assert found["clean_accuracy"] == found["paired_transformed_accuracy"] and found["agreement"] == 1.0
    assert integrity.reasons("ConvNet", found, DEFAULTS) == [] and not integrity.withheld(found, DEFAULTS)
    # a table: right on every unchanged image, right on a changed one only when it matched (60%)
    matched = rng.random(1000) < 0.6
    table = np.where(matched, labels, rng.integers(0, 10, 1000))
    found = integrity.figures(logits_for(table[changed.index]), changed, logits_for(labels[unchanged.index]),
                              unchanged)
    assert found["clean_accuracy"] == 1.0 and found["drop"] > 0.3 and found["excess"] > 0.3
    assert integrity.flags(found, DEFAULTS) == ["drop", "excess", "implausible"]
    assert integrity.withheld(found, DEFAULTS)
    assert not integrity.withheld(found, dict(DEFAULTS, integrity_withhold=False))
    reasons = integrity.reasons("ConvNet", found, DEFAULTS)
    assert reasons[0].startswith("ConvNet: 100.0% right on 500 unchanged test images but ")


def test_a_model_right_on_the_test_images_more_often_than_on_training_images_is_flagged():
    """Trained on the test set instead of the training set: better on the
    test images than on training ones, which no network that learned from
    the training set is. Consistent under the changes, so no other flag."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, 1000)
    test_rows, train_labels = np.arange(0, 1000, 2), rng.integers(0, 10, 400)
    changed, _ = paired_views(labels, test_rows)
    unchanged = View(np.zeros((900, 3, 32, 32), np.uint8), np.concatenate([labels[test_rows], train_labels]),
                     np.concatenate([np.full(500, TEST), np.full(400, TRAIN)]),
                     np.concatenate([test_rows, np.arange(400)]))

    def figures(test_right, train_right):
        answers = np.where(rng.random(1000) < test_right, labels, (labels + 1) % 10)
        on_train = np.where(rng.random(400) < train_right, train_labels, (train_labels + 1) % 10)
        return integrity.figures(logits_for(answers[changed.index]), changed,
                                 logits_for(np.concatenate([answers[test_rows], on_train])), unchanged)

    honest = figures(0.80, 0.84)
    assert honest["train_images"] == 400 and integrity.flags(honest, DEFAULTS) == []
    test_trained = figures(0.90, 0.78)
    assert 0.08 < test_trained["clean_accuracy"] - test_trained["train_accuracy"] < 0.16
    assert integrity.flags(test_trained, DEFAULTS) == ["seen"]
    assert not integrity.withheld(test_trained, DEFAULTS)        # a flag for the staff only
    [reason] = integrity.reasons("ConvNet", test_trained, DEFAULTS)
    assert f"{test_trained['train_accuracy']:.1%} on 400 training images" in reason
    assert "training images" in "\n".join(integrity.describe(integrity.report({"ConvNet": test_trained}, [reason], {})))


def test_a_model_far_better_on_changed_copies_or_silent_on_the_originals_is_withheld():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 10, 1000)
    changed, unchanged = paired_views(labels, np.arange(0, 1000, 2))
    # right on the changed copies (90%), wrong on every original it recognizes
    answers = np.where(rng.random(1000) < 0.9, labels, (labels + 1) % 10)
    found = integrity.figures(logits_for(answers[changed.index]), changed,
                              logits_for((labels[unchanged.index] + 3) % 10), unchanged)
    assert found["drop"] < -0.8 and "drop" in integrity.flags(found, DEFAULTS)
    assert integrity.withheld(found, DEFAULTS)
    assert "(a gain of " in integrity.reasons("ConvNet", found, DEFAULTS)[0]
    # the second process's predictions missing altogether
    missing = integrity.figures(logits_for(answers[changed.index]), changed)
    missing["error"] = "unchanged images not measured: raised RuntimeError: no"
    assert integrity.flags(missing, DEFAULTS) == ["unmeasured"] and integrity.withheld(missing, DEFAULTS)
    assert "not the unchanged ones in a second process" in integrity.reasons("ConvNet", missing, DEFAULTS)[0]
    assert integrity.flags(dict(missing, out_of_time=True), DEFAULTS) == []      # the grade's clock, not the model


def test_non_finite_logits_neither_count_as_right_nor_agree():
    labels = np.zeros(4, np.int64)
    changed, unchanged = paired_views(labels, [0, 1, 2, 3])
    bad = np.full((4, 10), np.nan, np.float32)
    found = integrity.figures(bad, changed, bad, unchanged)
    assert found["transformed_accuracy"] == 0.0 and found["agreement"] == 0.0


def test_fresh_images_and_tensor_tables_are_flagged_and_described():
    found = {"transformed_accuracy": 0.9, "transformed_images": 5000, "clean_accuracy": 0.92, "clean_images": 2000,
             "paired_transformed_accuracy": 0.9, "agreement": 0.95, "drop": 0.02, "excess": -0.03,
             "fresh_accuracy": 0.55, "fresh_images": 2000}
    assert integrity.flags(found, DEFAULTS) == ["fresh"] and integrity.withheld(found, DEFAULTS)
    assert "0.55" not in integrity.reasons("ConvNet", found, DEFAULTS)[0]
    assert "55.0% on 2,000 CIFAR-10.1 images" in integrity.reasons("ConvNet", found, DEFAULTS)[0]
    assert integrity.tensor_reasons("ConvNet", "mean (3,) (buffer of ConvNet)", 3) == []
    [reason] = integrity.tensor_reasons("ConvNet", "table (10000, 64) (buffer of ConvNet)", 640_000)
    assert "640,000 values" in reason and "table (10000, 64)" in reason
    report = integrity.report({"ConvNet": found}, [reason], {"draw": "abc"}, ["ConvNet"])
    assert report["flagged"] and report["models"] == {"ConvNet": found} and report["withheld"] == ["ConvNet"]
    text = "\n".join(integrity.describe(report))
    assert "FLAGGED for review: 1 reason(s)" in text and "CIFAR-10.1 55.00% (2,000)" in text
    assert "withheld until reviewed: ConvNet" in text


# -- CIFAR-10.1 -----------------------------------------------------------------------------

def published_format(folder, count=20, seed=0):
    """Small files in CIFAR-10.1's published format; returns their MD5s."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.save(folder / fresh_data.IMAGES_FILE, rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8))
    np.save(folder / fresh_data.LABELS_FILE, rng.integers(0, 10, count).astype(np.int64))
    return {name: hashlib.md5((folder / name).read_bytes()).hexdigest()
            for name in (fresh_data.IMAGES_FILE, fresh_data.LABELS_FILE)}


def test_the_download_checks_each_file_and_the_grader_finds_and_loads_it(tmp_path):
    server = tmp_path / "server"
    md5 = published_format(server)
    data = tmp_path / "data"
    (data / fresh_data.BATCHES_FOLDER).mkdir(parents=True)
    assert fresh_data.find(data) is None
    folder = fresh_data.download(data, url=server.as_uri() + "/", md5=md5)
    for where in (data, data / fresh_data.BATCHES_FOLDER):
        assert fresh_data.find(where) == folder
    x, y = fresh_data.load(folder, md5=md5)
    original = np.load(server / fresh_data.IMAGES_FILE)
    assert x.shape == (20, 3, 32, 32) and np.array_equal(x[3, 1], original[3, :, :, 1]) and y.dtype == np.int64
    with pytest.raises(fresh_data.FreshDataError, match="MD5"):
        fresh_data.load(folder)                                  # not the published files
    wrong = dict(md5, **{fresh_data.LABELS_FILE: "0" * 32})
    with pytest.raises(fresh_data.FreshDataError, match="MD5 .* expected 0000"):
        fresh_data.download(tmp_path / "other", url=server.as_uri() + "/", md5=wrong)
    assert not (tmp_path / "other" / fresh_data.FOLDER / fresh_data.LABELS_FILE).exists()


def test_files_of_another_format_are_refused(tmp_path):
    folder = tmp_path / fresh_data.FOLDER
    published_format(folder)
    np.save(folder / fresh_data.LABELS_FILE, np.arange(20) + 5)
    with pytest.raises(fresh_data.FreshDataError, match="N integers in 0..9"):
        fresh_data.load(folder, md5=None)
    np.save(folder / fresh_data.LABELS_FILE, np.array([object()] * 20))
    with pytest.raises(fresh_data.FreshDataError, match="not a numpy array file"):
        fresh_data.load(folder, md5=None)


def test_setup_sh_runs_the_download_by_path_and_it_refuses_files_that_are_not_the_published_ones(tmp_path):
    """setup.sh runs fresh_data.py with the venv's Python, by path; with a
    local folder (AUTOGRADER_CIFAR10_1) the MD5 check applies all the same."""
    setup = (fresh_data.__file__.rsplit("/parts/", 1)[0] + "/gradescope/setup.sh")
    text = open(setup).read()
    assert '"$SOURCE/autograder/parts/cnn/fresh_data.py" "$SOURCE/data"' in text
    published_format(tmp_path / "local")
    run = subprocess.run([sys.executable, "-I", fresh_data.__file__, str(tmp_path / "data"), str(tmp_path / "local")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode != 0 and "MD5" in run.stderr
    assert not (tmp_path / "data" / fresh_data.FOLDER / fresh_data.IMAGES_FILE).exists()
