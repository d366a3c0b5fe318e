"""Measure the layers grader on a folder of real student files (see README.md here).

    python tests/real_code/measure.py CORPUS_DIR [--out WORK_DIR] [--jobs N] [-v]

CORPUS_DIR holds CS231n-style layers.py files, one per student (any names
ending in .py). Each is adapted to this course's names (conv_forward_naive ->
conv_forward, ...: an alias appended, the student's code untouched), graded by
`python -m autograder grade --part layers` and judged by judge.py, each in its
own process. Only the functions a file implements are compared. Prints:
false fails (judge right, grader took points), false passes (judge wrong, full
points), and how the rightly charged functions were explained: a named
mistake, an error, or only a shape or a number.
"""
import argparse
import ast
import collections
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from judge import FUNCTIONS  # noqa: E402

OLD_NAMES = {name: [name, name + "_naive"] for name in FUNCTIONS}
GRADE_TIMEOUT = 900
INFRASTRUCTURE_FAILURE = "The autograder itself failed"


def is_stub(function, lines=None):
    """The course's unimplemented stub: only a docstring, comments and `pass`;
    or a skeleton that computes none of what it returns: every name it
    returns (but its cache) is only ever assigned None (or `out = out.astype(...)`, as the
    2019+ dropout skeleton does), or a bare argument (`dx = dout`, the
    dropout_backward skeleton's test branch) when every "YOUR CODE" region
    of the function (lines: the file's source lines) holds only `pass`."""
    body = [s for s in function.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if all(isinstance(s, ast.Pass) for s in body):
        return True
    returned = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Return):
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            if not all(isinstance(v, ast.Name) for v in values):
                return False
            returned |= {v.id for v in values}
    returned -= {"cache"}     # a forward's cache is skeleton code: (x, w, b, conv_param), ...
    if not returned:
        return False
    arguments = {a.arg for a in function.args.args}
    regions = student_regions(lines[function.lineno - 1:function.end_lineno]) if lines else []
    empty_regions = bool(regions) and all(
        all(line.strip() in ("", "pass") or line.strip().startswith("#") for line in region)
        for region in regions)

    def skeleton_value(name, value):
        if isinstance(value, ast.Constant) and value.value is None:
            return True
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
                and value.func.attr == "astype" and isinstance(value.func.value, ast.Name)
                and value.func.value.id == name):
            return True
        return empty_regions and isinstance(value, ast.Name) and value.id in arguments

    for node in ast.walk(function):
        if isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.With, ast.NamedExpr)):
            targets = [getattr(node, "target", None)] + [i.optional_vars for i in getattr(node, "items", [])]
            if any(isinstance(t, ast.Name) and t.id in returned for t in targets if t is not None):
                return False
        if isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = ([(t, v) for t, v in zip(target.elts, node.value.elts)]
                         if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                         and len(target.elts) == len(node.value.elts) else
                         [(t, node.value) for t in (target.elts if isinstance(target, ast.Tuple) else [target])])
                for t, v in pairs:
                    if isinstance(t, ast.Name) and t.id in returned and not skeleton_value(t.id, v):
                        return False
    return True


def student_regions(lines):
    """The lines students fill in: after "START OF YOUR CODE", or after the
    comment block that holds a TODO, up to the next "END OF YOUR CODE"."""
    regions, start, in_todo = [], None, False
    for i, line in enumerate(lines):
        text = line.strip()
        if start is None:
            if "START OF YOUR CODE" in text:
                start = i + 1
            elif text.startswith("#") and "TODO" in text:
                in_todo = True
            elif in_todo and re.fullmatch(r"#{5,}", text):
                start, in_todo = i + 1, False
        elif "END OF YOUR CODE" in text:
            regions.append(lines[start:i])
            start = None
    return regions


def adapt(source, folder):
    """Write folder/layers.py (source plus aliases); return the implemented functions."""
    text = source.read_text(errors="replace")
    try:
        lines = text.splitlines()
        defined = {node.name: not is_stub(node, lines) for node in ast.parse(text).body
                   if isinstance(node, ast.FunctionDef)}
    except SyntaxError:      # Python 2 code: the grader reports that; judge what is defined
        defined = {name: True for name in re.findall(r"^def (\w+)", text, re.M)}
    present, aliases = [], []
    for ours, candidates in OLD_NAMES.items():
        found = next((name for name in candidates if name in defined), None)
        if found and defined[found]:
            present.append(ours)
            if found != ours:
                aliases.append(f"{ours} = {found}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "layers.py").write_text(text + "\n\n# measure.py: course names\n" + "\n".join(aliases) + "\n")
    return present


def run(command, timeout):
    try:
        done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=timeout)
        return done.stdout
    except subprocess.TimeoutExpired:
        return ""


def measure_one(source, work):
    folder = work / source.stem
    present = adapt(source, folder)
    judge_out = run([sys.executable, str(HERE / "judge.py"), str(folder / "layers.py"),
                     json.dumps(present)], GRADE_TIMEOUT)
    results_path = folder / "results.json"
    grade = [sys.executable, "-m", "autograder", "grade", str(folder), "--part", "layers",
             "--results", str(results_path)]
    run(grade, GRADE_TIMEOUT)
    if INFRASTRUCTURE_FAILURE in (results_path.read_text() if results_path.exists() else ""):
        run(grade, GRADE_TIMEOUT)     # e.g. a fork refused (EAGAIN) on a loaded machine: once more
    try:
        verdicts = json.loads(judge_out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        verdicts = {name: "judge failed" for name in present}
    try:
        tests = json.loads(results_path.read_text())["tests"]
    except (OSError, json.JSONDecodeError, KeyError):
        tests = []
    by_function = collections.defaultdict(list)
    for test in tests:
        by_function[test["name"].split(" ")[0].rstrip(",")].append(test)
    rows = []
    for name in present:
        graded = by_function.get(name)
        if not graded:
            rows.append({"file": source.stem, "function": name, "judge": verdicts.get(name), "grader": "missing"})
            continue
        full = all(abs(t["score"] - t["max_score"]) < 1e-9 for t in graded)
        output = "\n".join(t.get("output", "") for t in graded)
        rows.append({"file": source.stem, "function": name, "judge": verdicts.get(name),
                     "grader": "full" if full else "charged", "explained": explanation(output),
                     "output": output})
    return rows


def explanation(output):
    if re.search(r"likely mistake", output, re.I):
        return "named"
    if re.search(r"raised \w+|took longer|crashed|returned", output):
        return "error"
    return "shape/number"


def summarize(rows, verbose):
    right = [r for r in rows if r["judge"] == "right"]
    false_fails = [r for r in right if r["grader"] != "full"]
    false_passes = [r for r in rows if r["judge"] == "wrong" and r["grader"] == "full"]
    charged = [r for r in rows if r["judge"] == "wrong" and r["grader"] == "charged"]
    borderline = [r for r in rows if r["judge"] == "borderline"]
    kinds = collections.Counter(r["explained"] for r in charged)
    share = lambda k: f"{kinds[k]} ({100 * kinds[k] / max(1, len(charged)):.0f}%)"
    print(f"files {len({r['file'] for r in rows})}, functions {len(rows)} "
          f"(judge: {len(right)} right, {len(rows) - len(right)} wrong)")
    print(f"false fails {len(false_fails)}, false passes {len(false_passes)}; "
          f"{len(borderline)} right but within a factor 2 of the time limit (not counted): "
          + ", ".join(f"{r['file']} {r['function']} ({r['grader']})" for r in borderline))
    print(f"rightly charged {len(charged)}: named mistake {share('named')}, error {share('error')}, "
          f"shape/number only {share('shape/number')}")
    for label, group in (("FALSE FAIL", false_fails), ("FALSE PASS", false_passes)):
        for r in group:
            print(label, r["file"], r["function"], "|", r.get("output", "")[:300].replace("\n", " / "))
    if verbose:
        for r in charged:
            text = r["output"]
            named = re.search(r"likely mistake[^:]*: ([^\n]*)", text, re.I)
            print(r["explained"].upper(), r["file"], r["function"], "|",
                  (named.group(1) if named else text)[:240].replace("\n", " / "))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--out", type=Path, default=Path("/tmp/real_code_measure"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    sources = sorted(args.corpus.glob("*.py"))
    if not sources:
        parser.error(f"{args.corpus}: no .py files")
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = [row for rows in pool.map(lambda s: measure_one(s, args.out), sources) for row in rows]
    (args.out / "rows.json").write_text(json.dumps(rows, indent=1))
    summarize(rows, args.verbose)


if __name__ == "__main__":
    main()
