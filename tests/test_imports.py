"""Every module imports on its own; the import graph, function-level imports included, has no cycle;
only the entry point uses hydra.main, and nothing imports it."""

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = (ROOT / "sherlocked", ROOT / "hydra_plugins" / "sherlocked_launcher")


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the project (a package's __init__ under the package's name)."""
    found = {}
    for package in PACKAGES:
        for path in package.rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":  # runs the program when imported: not a module to import
                continue
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports anywhere in it (inside functions too), with their parent packages."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    edges = set()
    for name in names:
        parts = name.split(".")
        edges |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & known
    return edges


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    found = sorted(modules())
    assert {"sherlocked.engine", "sherlocked.config", "sherlocked.report.runs", "sherlocked.train"} <= set(found)
    started = {
        name: subprocess.Popen([sys.executable, "-c", f"import {name}"], stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for name in found
    }
    failed = {name: p.communicate()[1].strip().splitlines()[-1:] for name, p in started.items() if p.wait() != 0}
    assert failed == {}


def test_the_import_graph_has_no_cycle():
    edges = graph()
    try:
        order = list(TopologicalSorter(edges).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None
    assert order.index("sherlocked.report.runs") < order.index("sherlocked.report.plots")


def test_a_cycle_would_be_found(tmp_path):
    """The check above can fail: two files that import each other inside functions are a cycle."""
    (tmp_path / "a.py").write_text("def f():\n    from sherlocked.b import x\n")
    (tmp_path / "b.py").write_text("import sherlocked.a\n")
    known = {"sherlocked.a", "sherlocked.b"}
    edges = {"sherlocked.a": imports(tmp_path / "a.py", known), "sherlocked.b": imports(tmp_path / "b.py", known)}
    try:
        list(TopologicalSorter(edges).static_order())
    except CycleError:
        return
    raise AssertionError("the cycle a -> b -> a was not found")


def test_only_the_entry_point_uses_hydra_main_and_nothing_imports_it():
    found = modules()
    users = {name for name, path in found.items() if "hydra.main" in path.read_text()}
    assert users == {"sherlocked.train"}
    assert [name for name, targets in graph().items() if "sherlocked.train" in targets] == []
