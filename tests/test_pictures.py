"""What the student sees on Gradescope besides text (autograder/pictures):
html that survives a sanitizer configured like Gradescope's, student text
escaped, the size limits of results.json, the pictures of the CNN part, a
failing layer's error map, what changed since the previous submission, the
local results page and its screenshot in headless Chromium."""
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import bleach
import numpy as np
import pytest

from autograder import cli
from autograder.parts.cnn import pictures as cnn_pictures
from autograder.pictures import Picture, Table, changes, draw, html
from autograder.results import MAX_OUTPUT, MAX_RESULTS_BYTES, Results
from autograder.rubric import load_rubric
from autograder.submission_metadata import PreviousSubmission, load as load_metadata
from conftest import REFERENCE_DIR, shown

REPO = Path(__file__).resolve().parent.parent
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes" \'single\''

# Gradescope sanitizes html outputs; configured like theirs: these elements, no style, data: images.
ALLOWED_TAGS = {"img", "table", "thead", "tbody", "tr", "th", "td", "pre", "code", "h1", "h2", "h3", "h4",
                "ul", "ol", "li", "em", "strong", "p", "br", "div", "span"}
ALLOWED_ATTRIBUTES = {"img": ["src", "alt"]}


def sanitized(markup):
    return bleach.clean(markup, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                        protocols=["data", "http", "https"], strip=True)


class Events(HTMLParser):
    """The elements, attributes and text a page shows, in order."""

    def __init__(self, markup):
        super().__init__(convert_charrefs=True)
        self.events = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.events.append(("start", tag, tuple(sorted(attrs))))

    def handle_endtag(self, tag):
        self.events.append(("end", tag))

    def handle_data(self, data):
        self.events.append(("text", data))


def survives(markup):
    """Nothing that carries meaning is stripped by the sanitizer."""
    return Events(sanitized(markup)).events == Events(markup).events


def small_png():
    return draw.error_map(np.eye(5), "test")


def test_what_we_emit_survives_a_sanitizer_like_gradescopes_and_student_text_stays_text():
    picture = Picture(title=f"title {HOSTILE}", png=small_png(), text=f"alt {HOSTILE}")
    table = Table(title="layers", header=("layer", "type"), rows=((HOSTILE, "Conv2d"),), note=HOSTILE)
    output = html.test_output(f"first {HOSTILE}\nsecond line\n{HOSTILE}", [picture, table], MAX_OUTPUT)
    assert survives(output)
    assert 'src="data:image/png;base64,' in sanitized(output)
    events = Events(output).events
    tags = {event[1] for event in events if event[0] == "start"}
    assert tags <= ALLOWED_TAGS and "script" not in tags
    assert sum(1 for event in events if event[:2] == ("start", "img")) == 1      # only ours
    assert HOSTILE in html.as_text(output, "html")                              # shown as text
    top = html.top_output([HOSTILE], [f"lost: 1.2 {HOSTILE}"], ("1.2", HOSTILE, HOSTILE))
    assert survives(top) and "script" not in {e[1] for e in Events(top).events if e[0] == "start"}


def test_a_hostile_layer_name_in_the_layer_table_is_escaped():
    report = {"layer_table": f"{HOSTILE}\tConv2d\t8x32x32\t224\t221184\nfc\tLinear\t10\t90\t80"}
    table = cnn_pictures.layer_table("ConvNet", report)
    assert [row[0] for row in table.rows] == [HOSTILE, "fc"]
    markup = html.block(table)
    assert survives(markup) and "<script>" not in markup and HOSTILE in html.as_text(markup, "html")


def test_pictures_go_only_to_visible_tests_and_the_console_stays_text():
    results = Results()
    picture = Picture(title="map", png=small_png(), text="where it is wrong")
    results.add_test("1.1", "visible", 0, 1, "wrong\ndetails", pictures=[picture])
    results.add_test("1.2", "hidden", 0, 1, "wrong too", visibility="hidden", pictures=[picture])
    gradescope, console = results.as_json(), results.as_json(pictures=False)
    visible, hidden = gradescope["tests"]
    assert visible["output_format"] == "html" and "data:image/png;base64," in visible["output"]
    assert "output_format" not in hidden and "data:" not in hidden["output"]
    assert all("output_format" not in test for test in console["tests"])
    assert console["tests"][0]["output"] == "wrong\ndetails"
    assert shown(visible) == "wrong\nmap\ndetails"


def test_results_stay_under_one_megabyte_however_many_pictures():
    rng = np.random.default_rng(0)
    noisy = draw.error_map(rng.random((32, 32)), "noise")
    results = Results()
    for index in range(60):
        results.add_test(f"1.{index + 1}", f"check {index}", 0, 1, "x" * 5000,
                         pictures=[Picture(title="noise", png=noisy, text="noise")] * 3)
    data = results.as_json()
    assert len(json.dumps(data, indent=2)) <= MAX_RESULTS_BYTES
    assert any("left out" in test["output"] for test in data["tests"])
    assert all(len(test["output"]) <= MAX_OUTPUT for test in data["tests"])


def test_each_picture_is_small_and_says_in_text_what_it_shows():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 2000)
    logits = rng.normal(size=(2000, 10))
    logits[np.arange(2000), labels] += 2.0
    line, picture = cnn_pictures.by_class("ConvNet", logits, labels)
    assert all(name in line for name in draw.CIFAR10_CLASSES) and "most often confused" in line
    matrix = cnn_pictures.confusion_matrix(logits, labels)
    assert matrix.sum() == 2000 and np.trace(matrix) == (logits.argmax(1) == labels).sum()
    filters = cnn_pictures.filters({"first_filters": rng.normal(size=(64, 3, 5, 5)).astype(np.float32)})
    assert filters[0].startswith("first-layer filters of convnet.pt: 64 filters of 5x5 on 3 input channels")
    assert cnn_pictures.filters({"first_filters": np.full((2, 3, 3, 3), np.nan)}) is None
    settings = {"convnet_max_parameters": 1e6, "convnet_max_multiply_adds": 2e8, "convnet_max_activations": 1e6}
    cost_line, cost = cnn_pictures.cost("ConvNet", {"parameters": 634_000, "multiply_adds": 4.3e7,
                                                    "activations": 3.4e5}, settings)
    assert cost_line == ("ConvNet cost: parameters 634 k of 1 M (63%), multiply-adds 43 M of 200 M (22%), "
                         "activations 340 k of 1 M (34%)")
    for item in (picture, filters[1], cost):
        assert item.png[:8] == b"\x89PNG\r\n\x1a\n" and len(item.png) < 60_000, (item.title, len(item.png))


def previous(results, score=None):
    from datetime import datetime, timezone
    return PreviousSubmission(datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc), score, results)


def test_changes_name_tests_lost_and_newly_passed_the_score_and_the_accuracy():
    def test(number, name, score, points=4):
        return {"number": number, "name": name, "score": score, "max_score": points,
                "status": "passed" if score >= points else "failed", "visibility": "visible"}
    before = {"score": 8.0, "tests": [test("1.1", "conv_forward", 4), test("1.2", "conv_backward", 4),
                                      test("2.1", "max_pool_forward", 0)],
              "extra_data": {"accuracy": {"ConvNet": 0.7}}}
    now = {"score": 6.5, "tests": [test("1.1", "conv_forward", 4), test("1.2", "conv_backward", 2.5),
                                   test("2.1", "max_pool_forward", 4)],
           "leaderboard": [{"name": "ConvNet test accuracy", "value": 71.5}]}
    lines = changes.changes(previous(before), now)
    assert lines[0].startswith("score 8 -> 6.5 (-1.5) since your previous submission (2026-12-01 12:00 UTC")
    assert "lost since your previous submission: 1.2 conv_backward (4 -> 2.5 of 4)" in lines
    assert "newly passed: 2.1 max_pool_forward (4 of 4)" in lines
    assert "ConvNet test accuracy 70.00% -> 71.50% (+1.50 points)" in lines
    assert changes.changes(None, now) == []
    assert changes.changes(previous(now), now)[-1] == "no test newly passed or lost"


def grade_layers(folder, results_path, *extra):
    return cli.main(["grade", str(folder), "--part", "layers", "--results", str(results_path),
                     "--slowness", "1", *extra])


def broken_conv_backward(tmp_path):
    """The reference with a conv_backward that leaves dx's first row at 0."""
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("layers.py", "models.py"):
        shutil.copy(REFERENCE_DIR / name, folder / name)
    source = (folder / "layers.py").read_text()
    marker = "    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]\n"
    assert marker in source
    (folder / "layers.py").write_text(source.replace(marker, marker + "    dx = dx.copy()\n"
                                                     "    dx[:, :, 0, :] = 0\n"))
    return folder


def test_a_broken_conv_backward_shows_where_dx_is_wrong_and_is_named_as_lost(tmp_path):
    reference_path = tmp_path / "reference.json"
    assert grade_layers(REFERENCE_DIR, reference_path) == 0
    reference = json.loads(reference_path.read_text())
    metadata = tmp_path / "submission_metadata.json"
    metadata.write_text(json.dumps({"created_at": "2026-12-07T10:00:00+00:00", "previous_submissions": [
        {"submission_time": "2026-12-06T09:30:00.000000-08:00", "score": reference["score"],
         "results": reference}]}))
    assert load_metadata(metadata).last.score == reference["score"]
    broken_path = tmp_path / "broken.json"
    assert grade_layers(broken_conv_backward(tmp_path), broken_path, "--submission-metadata", str(metadata)) == 0
    broken = json.loads(broken_path.read_text())
    top = shown(broken)
    assert "lost since your previous submission: 1.2 conv_backward (dx, dw, db)" in top
    assert top.index("lost since") < top.index("Fix first") and "Fix first\n1.2 conv_backward" in top
    conv_backward = {t["number"]: t for t in broken["tests"]}["1.2"]
    assert conv_backward["output_format"] == "html" and "data:image/png;base64," in conv_backward["output"]
    assert "where dx is wrong on its worst failing case" in shown(conv_backward)
    assert "only on the border (top)" in shown(conv_backward)
    assert survives(conv_backward["output"]) and survives(broken["output"])
    for path in (reference_path, broken_path):
        assert path.stat().st_size <= MAX_RESULTS_BYTES
        page = path.with_suffix(".html").read_text()
        assert page.startswith("<!DOCTYPE html>") and "1.2 conv_backward (dx, dw, db)" in page
    # No previous submission, or a missing metadata file: nothing is said about changes.
    assert "previous submission" not in shown(reference)
    again = tmp_path / "again.json"
    assert grade_layers(REFERENCE_DIR, again, "--submission-metadata", str(tmp_path / "absent.json")) == 0
    assert "previous submission" not in shown(json.loads(again.read_text()))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(page, picture, height=3000):
    if not CHROMIUM:
        pytest.fail("this test needs a headless Chromium (apt-get install chromium)", pytrace=False)
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size=1000,{height}", f"--screenshot={picture}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return picture


@pytest.mark.slow
def test_the_results_page_renders_in_headless_chromium_with_its_pictures(tmp_path):
    from PIL import Image
    path = tmp_path / "broken.json"
    assert grade_layers(broken_conv_backward(tmp_path), path) == 0
    picture = screenshot(path.with_suffix(".html"), tmp_path / "page.png")
    image = np.asarray(Image.open(picture).convert("RGB"))
    assert image.shape[1] == 1000
    # The error map's dark red row is on the page: the image rendered, not just its alt text.
    dark_red = (image[..., 0] > 90) & (image[..., 0] < 140) & (image[..., 1] < 20) & (image[..., 2] < 30)
    assert dark_red.sum() > 500


def test_hidden_cases_and_hidden_tests_carry_no_picture():
    from types import SimpleNamespace
    from autograder.parts.layers.judging import judge_array
    from autograder.parts.layers.compare import CONV_OUT_AXES
    expected = np.ones((2, 3, 4, 4))
    actual = expected.copy()
    actual[:, :, 0, :] = 0
    public = judge_array("out", actual, expected, CONV_OUT_AXES, SimpleNamespace(public=True))
    hidden = judge_array("out", actual, expected, CONV_OUT_AXES, SimpleNamespace(public=False))
    assert public.error_map.tolist()[0] == [1.0] * 4 and public.error_map[1:].sum() == 0
    assert hidden.error_map is None
    # A hidden test is never named among the changes either.
    before = {"tests": [{"number": "9.1", "name": "secret", "score": 1, "max_score": 1, "status": "passed",
                         "visibility": "hidden"}]}
    now = {"score": 0, "tests": [dict(before["tests"][0], score=0, status="failed")]}
    assert not any("secret" in line for line in changes.changes(previous(before), now))
