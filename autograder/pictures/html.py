"""Gradescope html: a test's output with its pictures, the top of the
output, and the local page NAME.html that shows a results.json the way
Gradescope does.

Only markup Gradescope's sanitizer keeps is written (MARKUP: img with a
data: URI, table, pre, code, headings, lists, emphasis, p, br, div and span,
no style or class attributes), and every piece of text is escaped: test
feedback quotes the student's code (layer names, exception messages), which
must show as text and never become markup."""
import base64
from html import escape
from html.parser import HTMLParser

from autograder.pictures import Picture, Table

# The elements and attributes written here (tests/test_pictures.py cleans our
# output with a sanitizer allowing exactly these and finds nothing stripped).
MARKUP = {"img": ("src", "alt"), "table": (), "thead": (), "tbody": (), "tr": (), "th": (), "td": (),
          "pre": (), "code": (), "h1": (), "h2": (), "h3": (), "h4": (), "ul": (), "ol": (), "li": (),
          "em": (), "strong": (), "p": (), "br": (), "div": (), "span": ()}


def text(value):
    """Escaped text for an element's content (&, <, >)."""
    return escape(str(value), quote=False)


def attribute(value):
    """Escaped text for a quoted attribute value (quotes too)."""
    return escape(str(value), quote=True)


def image(picture):
    data = base64.b64encode(picture.png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{attribute(picture.text)}">'


def table(item):
    head = "".join(f"<th>{text(cell)}</th>" for cell in item.header)
    body = "".join("<tr>" + "".join(f"<td>{text(cell)}</td>" for cell in row) + "</tr>" for row in item.rows)
    note = f"<p><em>{text(item.note)}</em></p>" if item.note else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def block(item):
    """One picture or table with its title."""
    body = image(item) if isinstance(item, Picture) else table(item) if isinstance(item, Table) else ""
    return f"<div><h4>{text(item.title)}</h4>{body}</div>"


def preformatted(value):
    return f"<pre>{text(value)}</pre>" if value else ""


def test_output(output, pictures, limit, left_out=0):
    """A test's output as html: its first line in bold, its pictures, then the
    rest of the text; within `limit` characters (pictures that do not fit
    are left out, last first, and said so, as are `left_out` more left out
    before). None when nothing fits."""
    first, _, rest = output.partition("\n")
    head = f"<p><strong>{text(first)}</strong></p>"
    kept = list(pictures)
    while True:
        dropped = left_out + len(pictures) - len(kept)
        note = (f"<p><em>({dropped} picture{'s' if dropped > 1 else ''} left out: results.json "
                f"has a size limit)</em></p>") if dropped else ""
        page = head + "".join(block(item) for item in kept) + note + preformatted(rest)
        if len(page) <= limit:
            return page
        if not kept:
            return None
        kept.pop()


def top_output(notes, changes, fix_first):
    """The top of the output: what changed since the previous submission, what
    to fix first (a test: number, name, first line), then the notes (the
    SUBMISSION FILES summary, import warnings, ...)."""
    parts = []
    if changes:
        parts.append("<h3>Since your previous submission</h3><ul>"
                     + "".join(f"<li>{text(line)}</li>" for line in changes) + "</ul>")
    if notes:
        parts.append(preformatted("\n".join(notes)))
    if fix_first:
        number, name, first_line = fix_first
        parts.append(f"<h3>Fix first</h3><p><strong>{text(number)} {text(name)}</strong>: "
                     f"{text(first_line)}</p>")
    return "".join(parts)


BLOCKS = ("p", "pre", "div", "h1", "h2", "h3", "h4", "li", "tr", "table", "ul", "ol", "br")


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)

    def handle_starttag(self, tag, attrs):
        if tag == "td" or tag == "th":
            self.parts.append("\t")

    def handle_endtag(self, tag):
        if tag in BLOCKS:
            self.parts.append("\n")


def as_text(output, output_format="text"):
    """The text of an output in any of our formats (html: the text it shows,
    one line per block, images left out): what staff tools and tests read."""
    if output_format != "html":
        return output
    reader = _Text()
    reader.feed(output)
    reader.close()
    lines = "".join(reader.parts).split("\n")
    return "\n".join(line.strip("\t") for line in lines if line.strip()).strip("\n")


STYLE = """body{font-family:sans-serif;max-width:60em;margin:1em auto;color:#222}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em;border:1px solid #ddd}
.test{border:1px solid #ccc;margin:.8em 0;padding:.2em .8em}.passed h3{color:#1a7f37}.failed h3{color:#b42318}
table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
img{max-width:100%}"""


def render(output, output_format):
    """What Gradescope shows for one output: html as it is, any other format as text."""
    return output if output_format == "html" else preformatted(output)


def page(results, title="Autograder results"):
    """A whole html page of a results.json mapping, laid out like Gradescope's
    results page: the total, the top output, then every test with its score."""
    total = sum(test["max_score"] for test in results["tests"])
    parts = [f"<h1>{text(title)}</h1>",
             f"<h2>Autograder score: {results.get('score', 0):g} / {total:g}</h2>",
             render(results.get("output", ""), results.get("output_format", "text"))]
    for test in results["tests"]:
        status = test.get("status", "failed")
        parts.append(f'<div class="test {status}"><h3>{text(test["number"])} {text(test["name"])} '
                     f'({test["score"]:g} / {test["max_score"]:g})</h3>'
                     f'{render(test.get("output", ""), test.get("output_format", "text"))}</div>')
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{text(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
