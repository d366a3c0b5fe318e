"""``python -m autograder autograder-zip [--out FILE]`` (``make autograder-zip``):
build dist/autograder.zip, the file a TA uploads to Gradescope.

Layout (Gradescope unpacks it into /autograder/source):
    setup.sh, run_autograder      from autograder/gradescope/, at the root
    autograder/...                the grader package with its case data, hidden
                                  cases included, minus the staff folders
                                  (autograder/authoring/shipping.py)
    autograder/provided/          data.py and train.py, the provided code,
                                  copied from solutions/cnn (the grader's
                                  trusted copy, see autograder/provided.py)
The CIFAR-10 test set is not in the zip: setup.sh fetches the official archive
(MD5-checked) when Gradescope builds the image.

The zip is deterministic (sorted names, fixed dates and modes), and the build
fails when any solution line of solutions/ would be in it.
"""
import os
import sys
from pathlib import Path

from autograder.authoring import shipping
from autograder.layout import (ASSIGNMENT, DIST_DIR, GRADESCOPE_DIR as TEMPLATES_DIR, PACKAGE as GRADER_DIR, REPO,
                               SOLUTIONS_DIR)

DEFAULT_ZIP = DIST_DIR / "autograder.zip"


class BuildError(Exception):
    """The zip cannot be built; the message says what is wrong."""


def add_arguments(parser):
    parser.add_argument("--out", type=Path, default=DEFAULT_ZIP,
                        help=f"where to write the zip (default: {DEFAULT_ZIP.relative_to(REPO)})")


def run(args):
    from autograder.authoring import handout

    try:
        members = build(args.out)
    except (BuildError, handout.HandoutError) as exc:
        print(f"autograder-zip: {exc}", file=sys.stderr)
        return 1
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({len(members)} files, {size / 1e6:.1f} MB); leak check passed")
    return 0


def members(grader_dir=GRADER_DIR, solutions_dir=SOLUTIONS_DIR):
    """{name in the zip: bytes}: Gradescope's scripts at the root, the package
    as autograder/authoring/shipping.py decides under autograder/."""
    out = dict(shipping.gradescope_scripts(grader_dir))
    try:
        files = shipping.package_files("gradescope", grader_dir, Path(solutions_dir) / ASSIGNMENT)
    except shipping.ShippingError as exc:
        raise BuildError(str(exc)) from None
    out.update({f"autograder/{path}": data for path, data in files.items()})
    if "autograder/cases/hidden/cases.json" not in out:
        raise BuildError("autograder/authoring/autograder_zip.py: members: autograder/cases/hidden/cases.json is "
                         "missing; run `make cases` first (the official grade needs the hidden cases)")
    return dict(sorted(out.items()))


def refusals(grader_dir=GRADER_DIR, solutions_dir=SOLUTIONS_DIR):
    """Why the zip must not be built now: cases not built from the reference
    layers.py (`make autograder-zip` rebuilds them first), TA checks that stop
    a build. Empty when it may."""
    from autograder.authoring import build_cases, handout

    stale = build_cases.stale_problem(Path(solutions_dir) / ASSIGNMENT, Path(grader_dir) / "cases")
    found = [f"the zip ships the hidden cases, and {stale} (`make autograder-zip` runs it for you)"] if stale else []
    return found + [f"TA checks: {problem}" for problem in handout.ta_check_problems(grader_dir)]


def zip_bytes(files, grader_dir=GRADER_DIR):
    """The zip of members(): the root scripts executable, the rest 0644."""
    return shipping.zip_bytes(files, executable=set(shipping.gradescope_scripts(grader_dir)))


def find_leaks(archive, solutions_dir=SOLUTIONS_DIR, grader_dir=GRADER_DIR, label="autograder.zip"):
    """Solution lines of solutions_dir found in the zip's text files (arrays are data
    computed from the solution, never its code, and are not searched)."""
    from autograder.authoring import handout

    secrets = handout.generate(solutions_dir, grader_dir).secrets
    texts = {name: text for name, text in handout.zip_texts(archive, label=label).items()
             if not name.endswith(".npy")}
    return handout.find_leaks(secrets, texts)


def build(out=DEFAULT_ZIP, grader_dir=GRADER_DIR, solutions_dir=SOLUTIONS_DIR):
    """Write the zip to out (atomically) after the leak check; returns its member names."""
    refused = refusals(grader_dir, solutions_dir)
    if refused:
        raise BuildError("\n".join(refused))
    files = members(grader_dir, solutions_dir)
    archive = zip_bytes(files, grader_dir)
    leaks = find_leaks(archive, solutions_dir, grader_dir, label=Path(out).name)
    if leaks:
        raise BuildError("solution lines would leak into the Gradescope zip:\n  " + "\n  ".join(leaks))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".tmp")
    partial.write_bytes(archive)
    os.replace(partial, out)
    return list(files)
