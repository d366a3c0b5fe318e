"""Student-controlled text in staff outputs, shown as text (issue #24; a TA
tool, not shipped). Names and emails come from Gradescope's export (students
set their own display name), feedback, flags and error messages from their
code; every staff output passes them through here:

- ``csv_cell`` / ``write_csv``: CSV cells a spreadsheet reads as text, never
  as a formula (OWASP "CSV Injection": a cell starting with ``=``, ``+``,
  ``-``, ``@``, a tab, a carriage return or a line feed gets a leading
  apostrophe; every text cell is quoted and its quotes doubled, so a ``,`` or
  ``;`` inside it cannot start a new cell). Numbers are written as numbers:
  the kind of a cell is its value's type, so a score of -0.5 stays -0.5.
- ``printable``: control characters (ANSI escapes, carriage returns, ...) and
  bidirectional overrides shown as ``\\x1b``-style escapes, for the console.
- ``html_text``: ``printable`` text, HTML-escaped (quotes too, so it is safe
  in an attribute as well).
- ``plot_label``: ``printable`` text for a matplotlib label; the labels are
  drawn with ``parse_math=False`` (autograder/staff/report.py), so a ``$`` in
  it is a dollar sign, not mathtext.
"""
import csv
import html
import numbers
import unicodedata

# OWASP's list (0x0A added in 2025), plus the full-width forms some spreadsheets also read as formulas.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text, keep=""):
    """text with every control character (but those in `keep`) and every
    bidirectional control written as a visible escape (ESC -> \\x1b)."""
    return "".join(char if char in keep or not _hidden(char) else _escape(char) for char in str(text))


def _hidden(char):
    return unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS


def _escape(char):
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def csv_cell(value):
    """A CSV cell: a number (not a bool) as it is, None as "", anything else as
    printable text (tabs and line breaks kept) with a leading apostrophe when it
    would start a formula."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return value
    text = "" if value is None else printable(value, keep="\t\r\n")
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_csv(path, header, rows):
    """Write header and rows to path, every cell through csv_cell; text cells
    quoted, numbers not (csv.QUOTE_NONNUMERIC)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow([csv_cell(cell) for cell in header])
        writer.writerows([csv_cell(cell) for cell in row] for row in rows)


def html_text(value):
    """value as HTML text: printable, then escaped (<, >, &, both quotes)."""
    return html.escape(printable(value), quote=True)


def plot_label(value):
    """value as a plot label's text (drawn with parse_math=False)."""
    return printable(value)
