"""The package's layout holds: no import cycle, nothing that ships imports a
staff folder (it would be missing on Gradescope and in the handout), the
grader never imports the untrusted side, and the provided code has no circle."""
import ast
from pathlib import Path

from autograder.layout import PACKAGE, REFERENCE_DIR, STAFF_ONLY, WORKER_DIR

ROOT = PACKAGE.parent


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules():
    """{module name: path} of the grader package, the worker folder aside (run by path)."""
    return {module_name(path): path for path in PACKAGE.rglob("*.py")
            if WORKER_DIR not in path.parents and "__pycache__" not in path.parts}


def imported(path, known):
    """Package modules that path imports, at any depth (function-level imports included)."""
    def resolve(name):
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(resolve(alias.name) for alias in node.names if alias.name.startswith("autograder"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("autograder"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else resolve(node.module))
    found.discard("")
    return found


def import_graph():
    modules = package_modules()
    return {name: imported(path, modules) - {name} for name, path in modules.items()}


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 50
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_that_ships_imports_a_staff_folder():
    staff = tuple(f"autograder.{folder}" for folder in STAFF_ONLY)
    shipped = {name: deps for name, deps in import_graph().items() if not name.startswith(staff)}
    offenders = {name: sorted(dep for dep in deps if dep.startswith(staff))
                 for name, deps in shipped.items()}
    # cli.py names the staff commands by string only, and says so when they are absent
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_the_grader_never_imports_the_untrusted_side():
    importers = [name for name, path in package_modules().items()
                 if "autograder.worker" in path.read_text(encoding="utf-8")]
    assert importers == []
    assert not (WORKER_DIR / "__init__.py").exists()     # not a package: run by path only
    for path in WORKER_DIR.glob("*.py"):
        assert not [dep for dep in imported(path, package_modules()) if dep.startswith("autograder")], path


def test_the_provided_code_has_no_import_circle():
    models = ast.parse((REFERENCE_DIR / "models.py").read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(models) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(models) if isinstance(node, ast.ImportFrom)}
    assert "train" not in names
