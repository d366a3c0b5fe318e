"""What a student sees besides text: pictures and tables attached to a
check, drawn in the grader from plain data (numbers and arrays the workers
returned through the pickle-free protocol), and the pages they go into.

A part attaches them to a CheckResult (``pictures``); results.py turns a
test that has any into Gradescope html (html.py), within the size limits of
results.json (each image small, the whole file at most MAX_RESULTS_BYTES).
Every picture has a text line that says the same (its ``text``, also the
image's alt text), so the console and screen readers lose nothing.

    draw.py      matplotlib (Agg) -> small PNG bytes: curves, accuracy per
                 class and confusion, filters, error maps, compute cost
    html.py      a test's output, the top of the output and the local page
                 NAME.html (Gradescope's markup only; student text escaped)
    changes.py   what changed since the previous submission
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Picture:
    """A PNG image (bytes) with a title and a text line that says the same."""
    title: str
    png: bytes
    text: str


@dataclass(frozen=True)
class Table:
    """A small table: a title, the column names, rows of cells (text)."""
    title: str
    header: tuple
    rows: tuple = field(default_factory=tuple)
    note: str = ""


def picture_bytes(pictures):
    """The bytes the images of `pictures` add to results.json (base64: 4/3)."""
    return sum(4 * ((len(p.png) + 2) // 3) for p in pictures if isinstance(p, Picture))


def drawn(make, *args):
    """make(*args), or None when drawing fails: a picture is a convenience and
    its failure must never cost a check (said on the console)."""
    import sys
    try:
        return make(*args)
    except Exception as exc:
        print(f"pictures: {getattr(make, '__name__', make)} failed: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return None
