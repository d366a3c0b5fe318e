"""TA command: ``python -m autograder build-cases`` regenerates
autograder/cases/public and autograder/cases/hidden from the reference
solutions/cnn/layers.py (see autograder/cases.py for the format).

Inputs come from seeded legacy RandomState streams (frozen across numpy
versions); expected values are what the reference returns; "variants" are
what a known wrong implementation returns, mostly obtained by calling the
reference on altered inputs (a flipped kernel, stride 1, no bias, ...), so
that feedback can name a student's likely mistake. The output is the same,
byte for byte, on every run. This package is a build tool: it imports the
reference and must not be shipped in the handout or the Gradescope zip.

The package is split by layer: builder.py holds the Builder and the shared
helpers, conv.py, pool.py, batchnorm.py and dropout.py each a layer's case
tables and build function; this module the command, build, and the
fingerprint. Each cases.json records ``built_from``, a fingerprint of what
the cases are computed from (the reference layers.py and every module of this
package), so that the commands that ship cases can tell stale ones in a moment
(stale_problem) and ``build-cases --if-stale`` rebuilds only then.
"""
import hashlib
import importlib.util
import json
from pathlib import Path

from autograder.authoring.build_cases.batchnorm import build_batchnorm, build_spatial_batchnorm
from autograder.authoring.build_cases.builder import Builder
from autograder.authoring.build_cases.conv import build_conv
from autograder.authoring.build_cases.dropout import build_dropout
from autograder.authoring.build_cases.pool import AVG_POOL_CASES, MAX_POOL_CASES, build_pool
from autograder.cases import CASES_DIR, FORMAT
from autograder.layout import REFERENCE_DIR as DEFAULT_SOLUTIONS

PACKAGE_DIR = Path(__file__).resolve().parent


def load_reference(solutions_dir):
    path = Path(solutions_dir) / "layers.py"
    if not path.is_file():
        raise SystemExit(f"build-cases: the reference {path} does not exist (--solutions DIR)")
    spec = importlib.util.spec_from_file_location("reference_layers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_fingerprint(solutions_dir=DEFAULT_SOLUTIONS):
    """What the cases are computed from, as 16 hex digits: the reference
    layers.py and every .py file of this package, sorted by name (line
    endings do not count), so that any change to the builder marks the cases stale."""
    digest = hashlib.sha256(f"cases format {FORMAT}\n".encode())
    builder_files = sorted(PACKAGE_DIR.glob("*.py"), key=lambda path: path.name)
    for path in [Path(solutions_dir) / "layers.py", *builder_files]:
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()[:16]


def built_from(cases_dir=CASES_DIR):
    """{visibility: the fingerprint its cases.json records, or None}."""
    found = {}
    for visibility in ("public", "hidden"):
        try:
            found[visibility] = json.loads((Path(cases_dir) / visibility / "cases.json").read_text()).get("built_from")
        except (OSError, ValueError, AttributeError):
            found[visibility] = None
    return found


def stale_problem(solutions_dir=DEFAULT_SOLUTIONS, cases_dir=CASES_DIR):
    """None when the cases in cases_dir were built from solutions_dir/layers.py
    as it is now (and by this builder), else what is wrong and the command to run."""
    wanted = source_fingerprint(solutions_dir)
    recorded = built_from(cases_dir)
    if all(value == wanted for value in recorded.values()):
        return None
    missing = [visibility for visibility, value in recorded.items() if value is None]
    what = (f"{cases_dir} has no {' or '.join(missing)} cases with a fingerprint" if missing
            else f"{cases_dir} was built from another {Path(solutions_dir) / 'layers.py'} (or by another autograder/authoring/build_cases/)")
    return f"{what}: run `make cases` (python -m autograder build-cases) first"


def build(solutions_dir=DEFAULT_SOLUTIONS, out_dir=CASES_DIR):
    builder = Builder(load_reference(solutions_dir), source_fingerprint(solutions_dir))
    build_conv(builder)
    ref = builder.ref
    build_pool(builder, "max_pool", MAX_POOL_CASES, ref.max_pool_forward, ref.max_pool_backward)
    build_pool(builder, "avg_pool", AVG_POOL_CASES, ref.avg_pool_forward, ref.avg_pool_backward)
    build_batchnorm(builder)
    build_spatial_batchnorm(builder)
    build_dropout(builder)
    builder.write(out_dir)
    return builder


def add_arguments(parser):
    parser.add_argument("--solutions", default=str(DEFAULT_SOLUTIONS),
                        help="folder with the reference layers.py (default: solutions/cnn)")
    parser.add_argument("--out", default=str(CASES_DIR),
                        help="where to write public/ and hidden/ (default: autograder/cases)")
    parser.add_argument("--if-stale", action="store_true",
                        help="rebuild only when the cases were not built from the current reference "
                             "layers.py (what `make handout` and `make autograder-zip` run first)")


def run(args):
    if args.if_stale and stale_problem(args.solutions, args.out) is None:
        print(f"{args.out}: up to date with {Path(args.solutions) / 'layers.py'} (not rebuilt)")
        return 0
    builder = build(args.solutions, args.out)
    counts = {visibility: sum(len(cases) for cases in groups.values())
              for visibility, groups in builder.cases.items()}
    print(f"wrote {counts['public']} public and {counts['hidden']} hidden cases "
          f"({len(builder.arrays)} arrays) to {args.out}")
    return 0
