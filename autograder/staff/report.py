"""The class report of a regrade (a TA tool, not shipped): one self-contained
HTML file, readable offline (plots are PNG images inside it), with the score
distribution, a pass rate per test, the most frequent named mistakes, the
accuracy and grading-time distributions, the submissions that hit a grading
limit, those the accuracy-integrity check flagged (when the results
carry it) and the pairs that share a checkpoint (checkpoint_similarity.py). Student-controlled text in it is HTML-escaped and its control
characters made visible (autograder/staff/safe_text.py)."""
import base64
import io
import re
import statistics
from collections import Counter

from autograder.pictures.html import as_text
from autograder.staff.safe_text import html_text, plot_label

MISTAKE = re.compile(r"likely mistake(?: in [\w.]+)?: (.+)$")
TOP_MISTAKES = 25


def histogram_png(values, bins, value_range, xlabel, title, marks=()):
    """A histogram as PNG bytes; marks: x positions drawn as dashed lines (thresholds).
    Labels are plain text: a "$" in one is a dollar sign, not mathtext."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.6))
    axes.hist(values, bins=bins, range=value_range, color="tab:blue", edgecolor="white")
    for mark in marks:
        axes.axvline(mark, color="tab:red", linestyle="--", linewidth=1)
    axes.set_xlabel(plot_label(xlabel), parse_math=False)
    axes.set_ylabel("submissions")
    axes.set_title(plot_label(title), parse_math=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _image(png):
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header, rows):
    head = "".join(f"<th>{html_text(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html_text(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary(values, unit=""):
    if not values:
        return "none"
    return (f"n = {len(values)}, mean {statistics.mean(values):.3g}{unit}, median "
            f"{statistics.median(values):.3g}{unit}, min {min(values):.3g}{unit}, max {max(values):.3g}{unit}")


def pass_rates(graded, tests):
    """[(number, name, points, share with full points, mean score)] over graded results."""
    rows = []
    for number, name, points in tests:
        scores = [t["score"] for results in graded for t in results["tests"] if t["number"] == number]
        full = sum(1 for s in scores if s >= points - 1e-9)
        rows.append((number, name, f"{points:g}", f"{full}/{len(scores)}" + (f" ({full / len(scores):.0%})"
                                                                             if scores else ""),
                     f"{statistics.mean(scores):.2f}" if scores else ""))
    return rows


def named_mistakes(graded):
    """Counter of (test, likely mistake) over the first feedback line of every test."""
    found = Counter()
    for results in graded:
        for test in results["tests"]:
            match = MISTAKE.search(as_text(test["output"], test.get("output_format", "text")).split("\n", 1)[0])
            if match:
                found[(f"{test['number']} {test['name']}", match.group(1).strip())] += 1
    return found


def render(entries, tests, max_score, tiers=(), fcnet_threshold=None, title="Regrade report", copies=None):
    """The report's HTML. entries: [{submission, who, status, results (dict or
    None), gradescope_score}]; tests: [(number, name, points)]; copies:
    checkpoint_similarity.Findings (None: not looked for). Every text from an
    entry is shown as text (autograder/staff/safe_text.py)."""
    graded = [e["results"] for e in entries if e["results"] is not None]
    parts = [f"<h1>{html_text(title)}</h1>",
             f"<p>{len(entries)} submissions, {len(graded)} graded; scores out of {max_score:g}.</p>"]
    parts += _problems_section(entries)
    parts += _scores_section(entries, graded, max_score)
    parts += ["<h2>Pass rate per test</h2>", "<p>Passed: the test's full points.</p>",
              _table(["#", "test", "points", "passed", "mean score"], pass_rates(graded, tests))]
    parts += _mistakes_section(graded)
    parts += _accuracy_section(graded, tiers, fcnet_threshold)
    parts += _timing_section(graded)
    parts += _limits_section(entries)
    parts += _integrity_section(entries)
    parts += _copies_section(entries, copies)
    return _page(title, parts)


def _problems_section(entries):
    problems = [(e["submission"], e["who"], e["status"]) for e in entries if e["status"] != "ok"]
    return ["<h2>Submissions without a clean grade</h2>", _table(["submission", "who", "status"], problems)] \
        if problems else []


def _scores_section(entries, graded, max_score):
    """The score histogram and the scores that differ from Gradescope's."""
    scores = [r["score"] for r in graded]
    parts = ["<h2>Score distribution</h2>", f"<p>{_summary(scores)}</p>"]
    if scores:
        parts.append(_image(histogram_png(scores, 20, (0, max_score), f"score (out of {max_score:g})",
                                          f"{len(scores)} graded submissions")))
    changed = [(e["submission"], e["who"], f"{e['gradescope_score']:g}", f"{e['results']['score']:g}")
               for e in entries if e["results"] is not None and e["gradescope_score"] != ""
               and abs(e["gradescope_score"] - e["results"]["score"]) > 1e-6]
    recorded = sum(1 for e in entries if e["gradescope_score"] != "")
    parts.append(f"<p>{len(changed)} of the {recorded} scores Gradescope recorded differ from this grade.</p>")
    if changed:
        parts.append(_table(["submission", "who", "Gradescope's score", "this grade"], changed))
    return parts


def _mistakes_section(graded):
    mistakes = named_mistakes(graded)
    return ["<h2>Most frequent named mistakes</h2>",
            _table(["test", "likely mistake", "submissions"],
                   [(test, mistake, count) for (test, mistake), count in mistakes.most_common(TOP_MISTAKES)])
            if mistakes else "<p>No feedback named a likely mistake.</p>"]


def _accuracy_section(graded, tiers, fcnet_threshold):
    """Each model's accuracy histogram, its thresholds dashed."""
    parts = ["<h2>Test accuracy</h2>"]
    for model, marks in (("ConvNet", [100 * t for t in tiers]),
                         ("FCNet", [100 * fcnet_threshold] if fcnet_threshold else [])):
        values = [100 * r["extra_data"]["accuracy"][model] for r in graded
                  if model in r.get("extra_data", {}).get("accuracy", {})]
        parts.append(f"<p>{model}: {_summary(values, '%')}</p>")
        if values:
            parts.append(_image(histogram_png(values, 20, (0, 100), f"{model} test accuracy (%)",
                                              f"{model}: {len(values)} measured (dashed: thresholds)", marks)))
    return parts


def _timing_section(graded):
    times = [r["execution_time"] for r in graded if "execution_time" in r]
    parts = ["<h2>Grading time</h2>", f"<p>{_summary(times, ' s')}</p>"]
    if times:
        parts.append(_image(histogram_png(times, 20, (0, max(times) * 1.05 or 1), "seconds per submission",
                                          "grading time (execution_time)")))
    return parts


def _limits_section(entries):
    limited = [(e["submission"], e["who"], hit["limit"], hit["job"], hit["message"])
               for e in entries if e["results"] is not None
               for hit in e["results"].get("extra_data", {}).get("limits", [])]
    limited += [(e["submission"], e["who"], "regrade timeout", "grader", e["status"])
                for e in entries if "overran" in e["status"]]
    return ["<h2>Submissions that hit a grading limit</h2>",
            _table(["submission", "who", "limit", "job", "message"], limited) if limited
            else "<p>None hit a time, CPU, memory or file-size limit.</p>"]


def _integrity_section(entries):
    checked = [e for e in entries if e["results"] is not None
               and "integrity" in e["results"].get("extra_data", {})]
    if not checked:
        return ["<h2>Accuracy integrity</h2>", "<p>These results carry no integrity data.</p>"]
    flagged = [(e["submission"], e["who"], "; ".join(map(str, e["results"]["extra_data"]["integrity"].get("reasons", []))))
               for e in checked if e["results"]["extra_data"]["integrity"].get("flagged")]
    parts = ["<h2>Accuracy integrity</h2>", f"<p>{len(flagged)} of {len(checked)} checked submissions flagged.</p>"]
    return parts + ([_table(["submission", "who", "reasons"], flagged)] if flagged else [])


def _copies_section(entries, copies):
    """The pairs of submissions that share a checkpoint, with the evidence."""
    if copies is None:
        return []
    who = {e["submission"]: e["who"] for e in entries}
    parts = ["<h2>Shared checkpoints</h2>",
             "<p>A lead for the staff to look at, not a verdict: two submissions whose convnet.pt or "
             "fcnet.pt is the same file, or whose weights are far closer, layer by layer, than "
             "independently trained models of the same architecture ever come (README.md, "
             "\"Shared checkpoints\"). A pair compared by its displacements from the common seed-0 "
             "initialization is marked <em>review</em>: the rule's margin is smallest there.</p>",
             f"<p>{copies.compared} checkpoints compared, {copies.candidates} candidate pairs after the "
             f"fingerprints, {len(copies.pairs)} pairs flagged.</p>"]
    if copies.pairs:
        parts.append(_table(["model", "submission", "who", "shares with", "who", "evidence"],
                            [(p.model, p.first, who.get(p.first, ""), p.second, who.get(p.second, ""),
                              ("review: " if p.shared_init else "") + p.evidence) for p in copies.pairs]))
    if copies.problems:
        parts += ["<p>Checkpoints not compared:</p>",
                  _table(["submission", "file", "why"], copies.problems)]
    return parts


def _page(title, parts):
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html_text(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
