"""The import graph: every module imports on its own; no cycle, function-level imports included; the layers
import downward (sherlocked/__init__.py); the report and a sweep's checks import no torch; only the Hydra
adapter reaches into Hydra's internals; only the entry point uses hydra.main, and nothing imports it."""

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = (ROOT / "sherlocked", ROOT / "hydra_plugins" / "sherlocked_launcher")
TORCH = {"torch", "lightning", "torchvision", "torchmetrics"}  # what a torch-free module may not reach
INTERNALS = ("hydra._internal", "omegaconf._utils")
# The layers (sherlocked/__init__.py) and the layers each may import from: the base is four folders, each importing
# only the ones before it (runtime, spec, records, hydra_side); training, report and the sweep stand on it.
MAY_IMPORT = {
    "runtime": {"runtime"},
    "spec": {"runtime", "spec"},
    "records": {"runtime", "spec", "records"},
    "hydra_side": {"runtime", "spec", "records", "hydra_side"},
    "training": {"runtime", "spec", "records", "training"},
    "report": {"runtime", "spec", "records", "report"},
    # training: only inside functions (test below); report: the answer at a sweep's end (sweep/finish.py)
    "sweep": {"runtime", "spec", "records", "hydra_side", "sweep", "training", "report"},
    "plugins": {"runtime", "spec", "records", "hydra_side", "sweep", "plugins"},
    "entry": {"runtime", "spec", "records", "hydra_side", "training"},
    "bench": {"runtime", "spec", "records", "training", "sweep", "bench"},
    "package": set(),  # sherlocked/__init__.py: its docstring only
}
ENTRY_POINTS = ("sherlocked.train", "sherlocked.board")  # python -m sherlocked.train, python -m sherlocked.board


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


def layer(module: str) -> str:
    """A module's layer: its folder under sherlocked/ (every module but the entry points is in one)."""
    parts = module.split(".")
    if parts[0] == "hydra_plugins":
        return "plugins"
    if module in ENTRY_POINTS:
        return "entry"
    return parts[1] if len(parts) > 1 else "package"


def imported_names(path: Path, functions: bool = True) -> set[str]:
    """Every module name a file imports (inside functions too, unless `functions` is false)."""
    names = set()
    nodes = ast.walk(ast.parse(path.read_text())) if functions else module_level(ast.parse(path.read_text()))
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def module_level(tree: ast.AST):
    """The nodes a module runs when it is imported: everything but the bodies of its functions."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        yield node
        yield from module_level(node)


def imports(path: Path, known: set[str], functions: bool = True) -> set[str]:
    """The project modules a file imports (inside functions too, unless not asked), with their parent packages."""
    edges = set()
    for name in imported_names(path, functions):
        parts = name.split(".")
        edges |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & known
    return edges


def graph(functions: bool = True) -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found), functions) - {name} for name, path in found.items()}


def reach(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += edges.get(name, ())
    return seen


def torch_users(functions: bool = True) -> set[str]:
    return {
        name for name, path in modules().items() if {n.split(".")[0] for n in imported_names(path, functions)} & TORCH
    }


# One interpreter imports what the project's modules import at their top that is not the project's (torch,
# Lightning, Hydra: seconds each), then forks a child per project module, which imports that module first: a child
# starts with none of the project's modules loaded, as a fresh interpreter does, in a fraction of its time.
FORKED = """
import importlib, os, sys, traceback
for name in sys.argv[2].split(","):
    try:
        importlib.import_module(name)
    except Exception:
        pass  # not installed: the modules that import it fail in their child, as in a fresh interpreter
assert not [m for m in sys.modules if m.split(".")[0] in ("sherlocked", "hydra_plugins")], "project loaded early"
for name in sys.argv[1].split(","):
    child = os.fork()
    if child == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            print(name + ":", traceback.format_exc().strip().splitlines()[-1], flush=True)
            os._exit(1)
        os._exit(0)
    os.waitpid(child, 0)
"""


@pytest.mark.slow
def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    found = modules()
    assert {
        "sherlocked.training.engine",
        "sherlocked.spec.config",
        "sherlocked.report.runs",
        "sherlocked.train",
    } <= set(found)
    theirs = {name.split(".")[0] for path in found.values() for name in imported_names(path, functions=False)}
    theirs -= {"sherlocked", "hydra_plugins", "__future__"}
    command = [sys.executable, "-c", FORKED, ",".join(sorted(found)), ",".join(sorted(theirs))]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == ""  # a line for each module that failed to import


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


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a layer its layer may not import from."""
    allowed = {name: may | {"package"} for name, may in MAY_IMPORT.items()}  # sherlocked/__init__.py: a docstring
    return [f"{a} -> {b}" for a, targets in edges.items() for b in targets if layer(b) not in allowed[layer(a)]]


def test_the_layers_import_downward():
    edges = graph()
    assert {layer(name) for name in edges} == set(MAY_IMPORT)
    named = ("sherlocked.spec.config", "sherlocked.records.job", "sherlocked.training.engine", "sherlocked.board")
    assert [layer(m) for m in named] == ["spec", "records", "training", "entry"]
    assert upward(edges) == []
    wrong = {
        "sherlocked.training.engine": {"sherlocked.sweep.plan"},
        "sherlocked.spec.config": {"sherlocked.records.job"},
        "sherlocked.report.runs": {"sherlocked.records.job"},
    }
    assert upward(wrong) == [  # the check can fail
        "sherlocked.training.engine -> sherlocked.sweep.plan",
        "sherlocked.spec.config -> sherlocked.records.job",
    ]


def test_the_report_and_a_sweeps_checks_import_no_torch():
    """Not even inside a function: a report on a laptop or a login node never waits for torch."""
    edges, users = graph(), torch_users()
    assert "sherlocked.training.module" in users and "sherlocked.spec.config" not in users  # the check can tell
    report = {name for name in edges if layer(name) == "report"}
    assert reach(report, edges) & users == set()
    checks = {"sherlocked.spec.checks", "sherlocked.spec.datasets", "sherlocked.spec.activations"}
    assert reach(checks, edges) & users == set()


@pytest.mark.slow
def test_a_sweeps_driver_imports_torch_only_inside_the_functions_that_train():
    """What a sweep's driver imports (its callback, plan, run, backends; the plugins Hydra scans) reaches no torch
    at import time: training is imported where a population trains, the device queried where it is asked."""
    edges, users = graph(functions=False), torch_users(functions=False)
    driver = {name for name in edges if layer(name) in ("sweep", "plugins")}
    assert reach(driver, edges) & users == set()
    code = (
        "import sys, sherlocked.report.cli, sherlocked.sweep.callback, sherlocked.sweep.run, sherlocked.sweep.finish, "
        "hydra_plugins.sherlocked_launcher.population_launcher, hydra_plugins.sherlocked_launcher.sherlocked_sweeper\n"
        "from hydra import compose, initialize_config_dir\n"
        "from sherlocked.spec.checks import validate\n"
        "from sherlocked.spec.datasets import on_disk\n"
        "from sherlocked.sweep.preflight import each_swept_value, parsed_overrides\n"
        "from omegaconf import open_dict\n"
        "with initialize_config_dir(config_dir=str(sherlocked.spec.config.CONFIG_DIR), version_base='1.3'):\n"
        "    config = compose('train', ['dataset=mnist_5k'], return_hydra_config=True)\n"
        "    with open_dict(config):\n"
        "        config.hydra.overrides.task = ['act2=relu,sigmoid', 'seed=0,1', 'dataset=mnist_5k']\n"
        "    checked = [validate(c) for c in each_swept_value(config, parsed_overrides(config))]\n"
        "assert len(checked) == 3 and on_disk(config.dataset)\n"
        f"assert not {{m.split('.')[0] for m in sys.modules}} & {TORCH!r}, sorted(sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]


def reaching(internals: str) -> set[str]:
    return {name for name, path in modules().items() if any(n.startswith(internals) for n in imported_names(path))}


def test_only_the_hydra_adapter_reaches_into_hydras_internals(tmp_path):
    assert reaching("hydra._internal") == {"sherlocked.hydra_side.adapter"}
    assert reaching("omegaconf._utils") == {
        "sherlocked.records.yaml_text"
    }  # OmegaConf's YAML representers, nothing else
    (tmp_path / "bad.py").write_text("def f():\n    from omegaconf._utils import get_omega_conf_dumper\n")
    assert any(n.startswith(INTERNALS) for n in imported_names(tmp_path / "bad.py"))  # the check can fail


def test_training_imports_nothing_of_the_hydra_adapter():
    """The engine trains job records; how Hydra's side of a job is written stays with the sweep's driver."""
    edges = graph()
    training = {name for name in edges if layer(name) == "training"}
    assert "sherlocked.training.engine" in training
    assert reach(training, edges) & {"sherlocked.hydra_side.adapter", "sherlocked.hydra_side.errors"} == set()
    wrong = {**edges, "sherlocked.training.trackers.tensorboard_runs": {"sherlocked.hydra_side.adapter"}}
    assert "sherlocked.hydra_side.adapter" in reach(training, wrong)  # the check can fail


ADAPTER_TYPES = {"HydraJob", "DerivedJob", "ComposedJob"}  # the adapter's records of a job's Hydra side


def names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    }


def test_only_the_adapter_knows_its_job_types(tmp_path):
    """Nothing outside the adapter names (let alone tests isinstance against) its job types: the plan keeps each
    job's Hydra side by index and calls its methods; the job record holds no Hydra object."""
    users = {name for name, path in modules().items() if names_used(path) & ADAPTER_TYPES}
    assert users == {"sherlocked.hydra_side.adapter"}
    (tmp_path / "bad.py").write_text("def f(job):\n    return isinstance(job, adapter.DerivedJob)\n")
    assert names_used(tmp_path / "bad.py") & ADAPTER_TYPES  # the check can fail
    job_fields = ast.parse((ROOT / "sherlocked" / "records" / "job.py").read_text())
    annotated = {n.target.id for n in ast.walk(job_fields) if isinstance(n, ast.AnnAssign)}
    assert "config" in annotated and "hydra" not in annotated


@pytest.mark.slow
def test_only_the_entry_point_uses_hydra_main_and_nothing_imports_it():
    found = modules()
    users = {name for name, path in found.items() if "hydra.main" in path.read_text()}
    assert users == {"sherlocked.train"}
    assert [name for name, targets in graph().items() if "sherlocked.train" in targets] == []


def test_no_function_is_longer_than_fifty_lines():
    """A function that does one thing fits on a screen: longer ones get split where they change subject."""
    long = [
        f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in (ROOT / "sherlocked").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 50
    ]
    assert long == []
