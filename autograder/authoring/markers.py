"""The solution-marker grammar and the stubs generated from it (build-only).

In a solution source (a .py file, or a notebook code cell):

* ``# BEGIN SOLUTION`` ... ``# END SOLUTION``, each alone on its line, enclose
  a solution region. In the handout the region becomes, at the indentation of
  its ``# BEGIN SOLUTION`` line, ``# TODO: ...`` guidance and
  ``raise NotImplementedError("<function>: not implemented yet")``, where
  <function> is the enclosing function (``Class.method`` for a method) or, for a
  region at module level, the file name.
* An optional ``# BEGIN PROMPT`` ... ``# END PROMPT`` block of comment lines
  directly before ``# BEGIN SOLUTION`` is the guidance: its lines are kept, the
  first one prefixed with ``TODO:``. Without it the guidance is DEFAULT_TODO.
* A line ending in ``# SOLUTION`` must be an assignment; it keeps its left-hand
  side and gets ``...`` as right-hand side (``x = 3 * y  # SOLUTION`` becomes
  ``x = ...``).
* Every other line is copied unchanged.

Leak rule (see ``is_trivial``): every non-trivial line of a solution region and
the code of every ``# SOLUTION`` line is a *secret*, unless the same text also
occurs in the public part of the solutions (the lines copied unchanged), which
a TA publishes on purpose. No secret may occur in the handout.
"""
import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from typing import Optional

from autograder.answers import ANSWER_PLACEHOLDER, ANSWER_TAG, SOLUTION_TAG

BEGIN_SOLUTION = "# BEGIN SOLUTION"
END_SOLUTION = "# END SOLUTION"
BEGIN_PROMPT = "# BEGIN PROMPT"
END_PROMPT = "# END PROMPT"
SOLUTION_SUFFIX = "# SOLUTION"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_PROMPT, END_PROMPT)
DEFAULT_TODO = "# TODO: replace the line below with your code."

# A comment that was probably meant as a marker: wrong case, spacing or plural.
_NEAR_MARKER = re.compile(r"#+\s*(begin|end)\s*(solution|prompt)s?\b", re.IGNORECASE)
_NEAR_SUFFIX = re.compile(r"#\s*solutions?\s*$", re.IGNORECASE)
_ASSIGN_OPS = {"=", "+=", "-=", "*=", "/=", "//=", "%=", "@=", "&=", "|=", "^=", ">>=", "<<=", "**="}


class MarkerError(Exception):
    """A marker mistake in a solution source; str() is 'where: what is wrong'."""


@dataclass(frozen=True)
class Location:
    """Where a source text comes from, for messages: a file, or a notebook cell."""
    file: str                 # path shown in messages
    name: str                 # file name used by stubs at module level
    cell: Optional[int] = None  # index in the notebook's cells, counting from 0

    def at(self, line):
        if self.cell is None:
            return f"{self.file}:{line}"
        return f"{self.file}: cell index {self.cell}, line {line}"


@dataclass
class Stubbed:
    """The handout text of one source and what was taken out of it."""
    text: str
    functions: list = field(default_factory=list)       # enclosing name of each region, in order
    stub_messages: list = field(default_factory=list)   # message of each generated raise
    secrets: list = field(default_factory=list)         # (stripped line, 'file:line') taken out
    public: list = field(default_factory=list)          # lines copied unchanged


def is_trivial(stripped):
    """Whether a stripped solution line is too generic to count as a leak.

    Trivial: blank lines, comments, lines of fewer than 8 non-blank characters,
    and lines made only of names, numbers, commas, '=', ':' and brackets with no
    call or subscript (``return out, cache``, ``x_hat, gamma, inv_std = cache``,
    ``else:``, ``)``). Anything with an operator, attribute, call, subscript or
    string is not trivial.
    """
    if not stripped or stripped.startswith("#"):
        return True
    if len(re.sub(r"\s", "", stripped)) < 8:
        return True
    only_names = re.fullmatch(r"[\w\s,=:()\[\]{}]*", stripped) is not None
    return only_names and re.search(r"\w[(\[]", stripped) is None


def marker_of(line):
    """The marker a line is (one of MARKERS), or None; a near miss raises ValueError."""
    stripped = line.strip()
    if stripped in MARKERS:
        return stripped
    if _NEAR_MARKER.match(stripped):
        raise ValueError(f"malformed marker {stripped!r}; a marker line is exactly one of "
                         + ", ".join(repr(m) for m in MARKERS))
    return None


def check_no_markers(text, location):
    """Raise MarkerError if text (a markdown or raw notebook cell) holds a marker."""
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            found = marker_of(line)
        except ValueError:
            found = line.strip()
        if found:
            raise MarkerError(f"{location.at(number)}: marker {found!r} in a non-code cell; "
                              "markers only work in code cells (put solution text in a "
                              "markdown cell tagged 'solution' instead)")


def stub_source(text, location):
    """Apply the marker grammar to one source text; returns a Stubbed.

    Raises MarkerError on the first marker mistake, naming location and line.
    """
    stubbing = _SourceStubbing(text, location)
    for number, line in enumerate(stubbing.lines, start=1):
        stubbing.read(number, line)
    return stubbing.finish()


class _SourceStubbing:
    """stub_source's state while it reads a text line by line: outside any
    marker, inside a PROMPT block, or inside a solution region."""

    def __init__(self, text, location):
        self.text, self.location = text, location
        self.lines = text.splitlines(keepends=True)
        self.out = Stubbed(text="")
        self.produced = []
        self.prompt = None          # (first line number, [lines]) of the PROMPT block being read or just read
        self.prompt_closed = False
        self.region_start = None    # line number of the open # BEGIN SOLUTION
        self.region_prompt = None
        self.scopes = None          # enclosing def/class of each line, computed when first needed

    def fail(self, number, message):
        raise MarkerError(f"{self.location.at(number)}: {message}")

    def enclosing(self, number):
        if self.scopes is None:
            self.scopes = _scope_names(self.text, self.location)
        return self.scopes.get(number) or self.location.name

    def read(self, number, line):
        """One line: checked against the marker grammar, then stubbed, kept or dropped."""
        try:
            marker = marker_of(line)
        except ValueError as exc:
            self.fail(number, str(exc))
        if self.prompt_closed and marker != BEGIN_SOLUTION:
            self.fail(self.prompt[0], f"the PROMPT block must be followed directly by "
                                      f"{BEGIN_SOLUTION!r} (line {number} is not)")
        if self.region_start is not None:
            self.in_region(number, line, marker)
        elif self.prompt is not None and not self.prompt_closed:
            self.in_prompt(number, line, marker)
        else:
            self.outside(number, line, marker)

    def in_region(self, number, line, marker):
        """A line of a solution region: a secret, or the END that makes the stub."""
        if marker == END_SOLUTION:
            name = self.enclosing(self.region_start)
            begin_line = self.lines[self.region_start - 1]
            stub, message = _stub_lines(begin_line, self.region_prompt, name)
            self.produced.extend(stub)
            self.out.functions.append(name)
            self.out.stub_messages.append(message)
            self.region_start = self.region_prompt = None
        elif marker is not None:
            what = "nested" if marker == BEGIN_SOLUTION else "inside a solution region:"
            self.fail(number, f"{what} {marker!r} (the region opened at line {self.region_start} "
                              f"is not closed by {END_SOLUTION!r})")
        elif not is_trivial(line.strip()):
            self.out.secrets.append((line.strip(), self.location.at(number)))

    def in_prompt(self, number, line, marker):
        """A line of a PROMPT block: a comment kept for the stub, or its END."""
        if marker == END_PROMPT:
            self.prompt_closed = True
        elif marker is not None:
            self.fail(number, f"{marker!r} inside the PROMPT block opened at line {self.prompt[0]} "
                              f"(close it with {END_PROMPT!r} first)")
        elif line.strip() and not line.lstrip().startswith("#"):
            self.fail(number, "a PROMPT block holds comment lines only; found code: "
                              f"{line.strip()!r}")
        else:
            self.prompt[1].append(line)
            self.out.public.append(line.strip())

    def outside(self, number, line, marker):
        """A line outside any block: a BEGIN, a stray END, a solution line or plain code."""
        if marker == BEGIN_SOLUTION:
            self.region_start, self.region_prompt = number, (self.prompt[1] if self.prompt else None)
            self.prompt, self.prompt_closed = None, False
        elif marker == BEGIN_PROMPT:
            self.prompt = (number, [])
        elif marker == END_SOLUTION:
            self.fail(number, f"{END_SOLUTION!r} without a {BEGIN_SOLUTION!r} before it")
        elif marker == END_PROMPT:
            self.fail(number, f"{END_PROMPT!r} without a {BEGIN_PROMPT!r} before it")
        elif _is_solution_line(line):
            code, new_line = _blank_right_hand_side(line, self.location.at(number))
            self.produced.append(new_line)
            if not is_trivial(code):
                self.out.secrets.append((code, self.location.at(number)))
        else:
            if _NEAR_SUFFIX.search(line.rstrip()) and not line.lstrip().startswith("#"):
                self.fail(number, f"malformed marker at the end of {line.strip()!r}; "
                                  f"a solution line ends in exactly {SOLUTION_SUFFIX!r}")
            self.produced.append(line)
            self.out.public.append(line.strip())

    def finish(self):
        """The Stubbed, once no region or PROMPT block is left open."""
        if self.region_start is not None:
            self.fail(self.region_start, f"{BEGIN_SOLUTION!r} is never closed by {END_SOLUTION!r}")
        if self.prompt is not None:
            if self.prompt_closed:
                self.fail(self.prompt[0], f"the PROMPT block must be followed directly by "
                                          f"{BEGIN_SOLUTION!r} (the text ends first)")
            self.fail(self.prompt[0], f"{BEGIN_PROMPT!r} is never closed by {END_PROMPT!r}")
        self.out.text = "".join(self.produced)
        return self.out


def _is_solution_line(line):
    stripped = line.strip()
    return stripped.endswith(SOLUTION_SUFFIX) and not stripped.startswith("#")


def _line_ending(line):
    return line[len(line.rstrip("\r\n")):]


def _stub_lines(begin_line, prompt_lines, name):
    """The lines replacing a region, and the message of their raise."""
    indent = begin_line[:len(begin_line) - len(begin_line.lstrip())]
    newline = _line_ending(begin_line)
    guidance = [line.strip() for line in prompt_lines or []]
    first_comment = next((i for i, text in enumerate(guidance) if text), None)
    if first_comment is None:
        guidance = [DEFAULT_TODO]
    else:
        guidance[first_comment] = "# TODO: " + guidance[first_comment].lstrip("#").lstrip()
    message = f"{name}: not implemented yet"
    stub = [(indent + text if text else "") + newline for text in guidance]
    stub.append(f"{indent}raise NotImplementedError({json.dumps(message)}){newline}")
    return stub, message


def _blank_right_hand_side(line, where):
    """('code of the line', 'line with ... as right-hand side') for a '# SOLUTION' line."""
    code = line.rstrip()[:-len(SOLUTION_SUFFIX)].rstrip()
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type != tokenize.OP:
                continue
            if token.string in "([{":
                depth += 1
            elif token.string in ")]}":
                depth -= 1
            elif depth == 0 and token.string in _ASSIGN_OPS:
                keep = code[:token.end[1]]
                return code.strip(), keep + " ..." + _line_ending(line)
    except (tokenize.TokenError, SyntaxError):
        pass
    raise MarkerError(f"{where}: a line ending in {SOLUTION_SUFFIX!r} must be an assignment "
                      f"(name = value) on one line; found {code.strip()!r}")


def _scope_names(text, location):
    """{line number: 'Outer.inner'} for every line inside a def or class of text."""
    try:
        tree = ast.parse(_without_ipython_syntax(text))
    except SyntaxError as exc:
        raise MarkerError(f"{location.at(exc.lineno or 1)}: not valid Python ({exc.msg}), "
                          "so the function around a solution region cannot be found") from None
    names = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualified = prefix + child.name
                for number in range(child.lineno, child.end_lineno + 1):
                    names[number] = qualified
                visit(child, qualified + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return names


def _without_ipython_syntax(text):
    """Notebook cells may hold '%magic' and '!shell' lines; make them 'pass' so
    that the rest parses, keeping line numbers."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            lines[i] = line[:len(line) - len(stripped)] + "pass"
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Notebooks
# ----------------------------------------------------------------------------

# The tags of a model-answer cell (SOLUTION_TAG) and of its handout version
# (ANSWER_TAG, holding ANSWER_PLACEHOLDER) are defined in autograder/answers.py,
# which ships, unlike this module, and finds the answers by them.
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info")
KEPT_CELL_METADATA = ("tags", "editable", "deletable")


def stub_notebook(text, file, name):
    """Handout version of a notebook given as JSON text; returns a Stubbed
    whose text is the stripped notebook in nbformat's stable JSON form.

    Code cells go through stub_source and lose outputs and execution counts;
    markdown and raw cells must hold no marker, and those tagged 'solution' get
    ANSWER_PLACEHOLDER as text and the tag 'answer' (autograder/answers.py
    collects them from uploaded notebooks); metadata is cut down to the KEPT_* keys.
    """
    import nbformat

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MarkerError(f"{file}: not a notebook (invalid JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("nbformat") != 4 or not isinstance(data.get("cells"), list):
        raise MarkerError(f"{file}: expected an nbformat 4 notebook (a JSON object with "
                          "'nbformat': 4 and a list of 'cells')")
    if data.get("nbformat_minor", 0) >= 5:
        # nbformat would invent random ids for cells without one; keep the output stable.
        for index, cell in enumerate(data["cells"]):
            if isinstance(cell, dict):
                cell.setdefault("id", f"cell-{index}")
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
    except nbformat.ValidationError as exc:
        raise MarkerError(f"{file}: invalid notebook: {exc.message}") from None

    out = Stubbed(text="")
    for index, cell in enumerate(nb.cells):
        location = Location(file, name, cell=index)
        tags = list(cell.get("metadata", {}).get("tags", []))
        source = cell.source
        if cell.cell_type == "code":
            if SOLUTION_TAG in tags:
                raise MarkerError(f"{file}: cell index {index}: a code cell tagged "
                                  f"{SOLUTION_TAG!r}; mark solution code with "
                                  f"{BEGIN_SOLUTION!r} ... {END_SOLUTION!r} instead")
            stubbed = stub_source(source, location)
            cell.source = stubbed.text
            cell.outputs = []
            cell.execution_count = None
            out.functions += stubbed.functions
            out.stub_messages += stubbed.stub_messages
            out.secrets += stubbed.secrets
            out.public += stubbed.public
        else:
            check_no_markers(source, location)
            if SOLUTION_TAG in tags:
                out.secrets += [(line.strip(), location.at(number))
                                for number, line in enumerate(source.splitlines(), start=1)
                                if not is_trivial(line.strip())]
                cell.source = ANSWER_PLACEHOLDER
                cell.pop("attachments", None)
                tags[tags.index(SOLUTION_TAG)] = ANSWER_TAG
            else:
                out.public += [line.strip() for line in source.splitlines()]
        metadata = {key: value for key, value in cell.metadata.items() if key in KEPT_CELL_METADATA}
        if tags:
            metadata["tags"] = tags
        else:
            metadata.pop("tags", None)
        cell.metadata = nbformat.from_dict(metadata)

    nb.metadata = nbformat.from_dict(
        {key: value for key, value in nb.metadata.items() if key in KEPT_NOTEBOOK_METADATA})
    _validate_notebook(nb, f"{file}: the handout notebook is invalid")
    out.text = nbformat.writes(nb) + "\n"
    return out


def _validate_notebook(nb, what):
    import nbformat

    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise MarkerError(f"{what}: {exc.message}") from None
