"""The curve step of the CNN part (the last worker job): train fresh
FCNet() and ConvNet() with the provided loop on the protocol's subset, build
their held-out loss curves from the logits (the labels stay here), judge the
four curve checks (curves.py) and draw the curves next to results.json.
"""
import sys

from autograder.parts import CheckResult
from autograder.parts.cnn import curves
from autograder.parts.cnn.data_protocol import (CURVE_PROTOCOL, DataUnavailable, evaluation_steps,
                                                load_curve_subset)
from autograder.parts.cnn.jobs import MODEL_NAMES, curves_job, error_text

CURVE_CHECKS = ("curves_fall", "curve_convnet_below_fcnet", "curve_convnet_area", "curve_convnet_band")


def grade_curves(ctx, settings, architecture_ok, protocol=CURVE_PROTOCOL, band_path=curves.BAND_PATH,
                 unbuilt=None):
    """The four curve checks: train fresh FCNet() and ConvNet() with the
    protocol (one worker job), compare the runs and draw them. unbuilt:
    {model: first line of its error} for models that could not even be built
    (an import error, a crash, a GPU call): the message names that cause, not
    the architecture rules."""
    unmet = rules_unmet(architecture_ok, unbuilt or {})
    if unmet:
        return {check: CheckResult(0.0, unmet) for check in CURVE_CHECKS}
    try:
        subset = load_curve_subset(ctx.data_dir, protocol)
    except DataUnavailable as exc:
        return {check: CheckResult(0.0, "not run: no CIFAR-10 training images for the curve checks",
                                   [str(exc)]) for check in CURVE_CHECKS}
    runs, failures = train(ctx, subset, protocol)
    band, band_problem = _band(band_path, protocol)
    plot_note = _plot(ctx, runs, band)
    numbers = [curve.describe() for curve in runs.values()] + ([plot_note] if plot_note else [])
    shown = _picture(runs, band)
    if failures:
        first = next(iter(failures.values()))
        details = [text for text in failures.values() if text != first] + numbers
        return {check: CheckResult(0.0, first, details, list(shown)) for check in CURVE_CHECKS}
    results = judge(runs, band, band_problem, settings, protocol["config"]["max_steps"])
    for result in results.values():
        result.details.extend(numbers)
        result.pictures.extend(shown)
    return results


def rules_unmet(architecture_ok, unbuilt):
    """Why the curves are not trained (a model breaks the rules or could not
    be built), or '' when both may train."""
    broken = [name for name in MODEL_NAMES if not architecture_ok.get(name)]
    if not broken:
        return ""
    crashed = [name for name in broken if name in unbuilt]
    ruled = [name for name in broken if name not in unbuilt]
    rules = (f"the curves are compared only for models that follow the architecture rules; fix "
             f"{' and '.join(ruled)} first (see the architecture tests)")
    if not crashed:
        return f"not run: {rules}"
    errors = {unbuilt[name] for name in crashed}
    cause = (f": {unbuilt[crashed[0]]}" if len(errors) == 1
             else "; " + "; ".join(f"{name}: {unbuilt[name]}" for name in crashed))
    return (f"not run: {' and '.join(f'{name}()' for name in crashed)} could not be built "
            f"and run{cause}. Fix this first (see the architecture tests)"
            + (f"; also, {rules}" if ruled else ""))


def train(ctx, subset, protocol):
    """Run the training job: ({model: curves.Curve}, {model: why it has none})."""
    job, steps = curves_job(ctx.sandbox, subset, protocol)
    held_out_labels = subset["y_val"]
    del subset
    outcome = ctx.run(job).results
    runs, failures = {}, {}
    eval_steps = evaluation_steps(protocol)
    for (name, _), step_id in steps.items():
        result = outcome[step_id]
        curve = (curves.Curve.from_value(name, result.value, held_out_labels, eval_steps)
                 if result.ok else None)
        if curve is None:
            failures[name] = (f"training {name}() with the provided loop failed: "
                              + (error_text(result) if not result.ok else "it returned no usable history"))
        else:
            runs[name] = curve
    return runs, failures


def _band(band_path, protocol):
    """(the reference band, None) or (None, why it is unusable)."""
    try:
        return curves.load_band(band_path, protocol), None
    except curves.BandError as exc:
        return None, str(exc)


def judge(runs, band, band_problem, settings, total_steps):
    """The four checks of two usable runs."""
    fcnet, convnet = runs["FCNet"], runs["ConvNet"]
    if band is not None or convnet.problem(total_steps):
        band_result = curves.judge_band(convnet, band, total_steps)
    else:
        band_result = CheckResult(0.0, "The autograder's reference band is unusable; please tell "
                                       "the course staff.", [band_problem])
    return {
        "curves_fall": curves.judge_fall([fcnet, convnet], settings, total_steps),
        "curve_convnet_below_fcnet": curves.judge_margin(fcnet, convnet, settings, total_steps),
        "curve_convnet_area": curves.judge_area(fcnet, convnet, total_steps),
        "curve_convnet_band": band_result,
    }


def _picture(runs, band):
    """[the curves as an inline picture], or [] when there is nothing to draw or drawing failed."""
    if not runs:
        return []
    try:
        return [curves.picture(runs.get("FCNet"), runs.get("ConvNet"), band)]
    except Exception as exc:  # a picture is a convenience: its failure must not cost the checks
        print(f"cnn part: could not draw the curves: {type(exc).__name__}: {exc}", file=sys.stderr)
        return []


def _plot(ctx, runs, band):
    """Draw the curves next to results.json; a note naming the file, or '' when
    nothing was drawn or the student cannot open it (graded on Gradescope)."""
    if not runs or ctx.output_dir is None:
        return ""
    try:
        path = curves.plot(ctx.output_file(curves.PLOT_NAME), runs.get("FCNet"), runs.get("ConvNet"), band)
    except Exception as exc:  # a plot is a convenience: its failure must not cost the checks
        print(f"cnn part: could not draw {curves.PLOT_NAME} in {ctx.output_dir}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return ""
    if ctx.staff_console:
        return ""      # on Gradescope students cannot open the file: the curve tests show the picture
    ctx.results.note(f"CNN part: loss curves of your FCNet and ConvNet plotted in {path}")
    return f"plot: {path.name} (next to results.json)"
