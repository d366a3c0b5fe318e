"""Generating the handout from solutions/ (the stubs, the rendered README,
the copies), then writing it: assignments/ replaced in one move and
dist/handout.zip, only after the TA checks and the leak check pass; and
check_sync, whether assignments/ is what would be written."""
import os
import shutil
import tempfile
from pathlib import Path

from autograder.authoring import markers, shipping
from autograder.authoring.handout_leaks import PUBLISHED_LINES, find_leaks, occurs, texts, zip_texts
from autograder.authoring.handout_plan import (KEPT_ON_REBUILD, Handout, HandoutError, display,
                                               file_plan, read_text)
from autograder.authoring.handout_rubric import RUBRIC_FILE, TA_CHECKS, render_readme
from autograder.authoring.handout_zip import zip_bytes
from autograder.layout import PACKAGE as GRADER_DIR


def generate(solutions_dir, grader_dir=GRADER_DIR):
    """Read solutions_dir and return the Handout (nothing is written).

    Raises HandoutError naming every problem: unknown or missing files, marker
    mistakes, a bad rubric file.
    """
    solutions_dir = Path(solutions_dir)
    errors = []
    files, secrets, public = {}, {}, []
    functions, notebook_stubs = {}, {}
    for relative, action in file_plan(solutions_dir, errors):
        source = solutions_dir / relative
        try:
            files[relative], file_public, stubbed = _generate_file(source, action, grader_dir)
        except (markers.MarkerError, HandoutError) as exc:
            errors.append(str(exc))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(f"{display(source)}: cannot read it ({exc})")
            continue
        public.extend(file_public)
        if stubbed is None:
            continue
        for line, where in stubbed.secrets:
            secrets.setdefault(line, where)
        if action == "stub":
            functions[source.name] = list(dict.fromkeys(stubbed.functions))
        else:
            notebook_stubs[source.name] = set(stubbed.stub_messages)
    if errors:
        raise HandoutError("\n".join(errors))
    public_text = "\n".join(public)
    secrets = {line: where for line, where in secrets.items()
               if line not in PUBLISHED_LINES and not occurs(line, public_text)}
    return Handout(files, secrets, functions, notebook_stubs)


def _generate_file(source, action, grader_dir):
    """(its bytes in assignments/, its public texts, the markers' Stubbed or None)
    of one file of solutions/, as file_plan's action says."""
    if action == "copy":
        return source.read_bytes(), [source.read_text(encoding="utf-8")], None
    if action == "readme":
        text = render_readme(read_text(source), grader_dir)
        return text.encode("utf-8"), [text], None
    name = display(source)
    if action == "stub":
        stubbed = markers.stub_source(read_text(source), markers.Location(name, source.name))
    else:
        stubbed = markers.stub_notebook(read_text(source), name, source.name)
    return stubbed.text.encode("utf-8"), stubbed.public, stubbed


def ta_check_problems(grader_dir=GRADER_DIR):
    """What in grader_dir's TA checks stops a build (autograder/ta/suite.py build_problems)."""
    from autograder.ta import suite as ta_suite
    from autograder.rubric import RubricError, load_rubric

    folder = Path(grader_dir) / TA_CHECKS
    if not any(folder.glob(ta_suite.PATTERN)):
        return []
    try:
        reserved = [entry.number for entry in load_rubric(Path(grader_dir) / RUBRIC_FILE)]
    except RubricError as exc:
        return [str(exc)]
    return ta_suite.build_problems(folder, reserved)


def build(solutions_dir, assignments_dir, zip_path, grader_dir=GRADER_DIR):
    """Generate, leak-check, then replace assignments_dir and zip_path.

    On any problem raise HandoutError and leave both untouched.
    """
    assignments_dir, zip_path = Path(assignments_dir), Path(zip_path)
    problems = ta_check_problems(grader_dir)
    if problems:
        raise HandoutError("TA checks (autograder/ta_checks):\n  " + "\n  ".join(problems))
    handout = generate(solutions_dir, grader_dir)
    archive = zip_bytes(handout, grader_dir)
    leaks = (find_leaks(handout.secrets, {f"{display(assignments_dir)}/{path}": text for path, text
                                          in texts(handout.files).items()})
             + find_leaks(handout.secrets, zip_texts(archive, label=display(zip_path))))
    if leaks:
        raise HandoutError("solution lines would leak into the handout:\n  " + "\n  ".join(leaks))

    assignments_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{assignments_dir.name}-", suffix=".tmp",
                                    dir=assignments_dir.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; it becomes assignments/
    try:
        for path, data in handout.files.items():
            (staging / path).parent.mkdir(parents=True, exist_ok=True)
            (staging / path).write_bytes(data)
        _swap_in(staging, assignments_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(zip_path.name + ".tmp")
    partial.write_bytes(archive)
    os.replace(partial, zip_path)
    return handout


def _swap_in(new_dir, target):
    """Replace folder target by new_dir, moving KEPT_ON_REBUILD entries over."""
    if not target.exists():
        os.rename(new_dir, target)
        return
    old = target.with_name(f".{target.name}-old.tmp")
    if old.exists():
        raise HandoutError(f"{display(old)}: left by an interrupted build; move out anything "
                           f"you want to keep (such as {', '.join(KEPT_ON_REBUILD)}), delete it "
                           "and build again")
    os.rename(target, old)
    os.rename(new_dir, target)
    for kept in KEPT_ON_REBUILD:
        if (old / kept).exists():
            (target / kept).parent.mkdir(parents=True, exist_ok=True)
            os.rename(old / kept, target / kept)
    shutil.rmtree(old)


def check_sync(handout, assignments_dir):
    """Differences between the generated handout and assignments_dir, one line each."""
    on_disk = shipping.tree_files(Path(assignments_dir), KEPT_ON_REBUILD)
    problems = []
    for path in sorted(set(handout.files) | set(on_disk)):
        if path not in on_disk:
            problems.append(f"missing: {path}")
        elif path not in handout.files:
            problems.append(f"not generated from solutions/ (remove it): {path}")
        elif on_disk[path] != handout.files[path]:
            problems.append(f"differs: {path}")
    if problems:
        problems.append("run `make handout` (python -m autograder handout) to regenerate")
    return problems
