"""No import cycle between the project's modules, and imports that go down the layers only
(imports inside functions count).

A cycle that "works" because one import sits inside a function still ties two
modules together: each needs the other to be understood and changed. The
arrows must go one way (docs/ARCHITECTURE.md).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("othello_env", "setcomp_env", "agents", "train")


def project_modules() -> dict:
    """``{"train.training.trainer": path, "train": path to train/__init__.py, ...}``."""
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def imports_of(name: str, path: Path, mods: dict) -> set:
    """The project modules that ``name`` imports anywhere in its file (module or function level)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from .y import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:  # `import a.b.c` of a non-module attribute path
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph() -> dict:
    mods = project_modules()
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def find_cycle(graph: dict) -> list | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state = {}  # 1 = on the current path, 2 = done

    def visit(node, path):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_the_finder_sees_a_function_level_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    tree = ast.parse("def f():\n    from train.training import trainer\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))


def test_the_graph_holds_known_edges():
    g = import_graph()
    assert "agents.model" in g["agents.checkpoint"]
    assert "agents.checkpoint" in g["agents.policies"]  # `from agents import checkpoint`
    assert "train.training.trainer" in g["train.training.run"]  # imported inside run_training()


def test_no_import_cycle_between_project_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_agents_and_the_envs_never_import_train():
    g = import_graph()
    for name, deps in g.items():
        if not name.startswith("train"):
            assert not {d for d in deps if d.split(".")[0] == "train"}, name
        if name.split(".")[0] in ("othello_env", "setcomp_env"):
            assert not {d for d in deps if d.split(".")[0] == "agents"}, name


# The layers, lowest first: a module may import its own layer and the layers below it, never
# one above (commands -> study -> training -> analysis -> data -> agents -> envs).
LAYERS = (
    ("envs", ("othello_env", "setcomp_env")),
    ("agents", ("agents",)),
    ("base", ("train", "train.atomic", "train.errors", "train.progress", "train.signals")),
    ("data", ("train.data",)),
    ("analysis", ("train.analysis",)),
    ("training", ("train.training",)),
    ("study", ("train.study",)),
    ("commands", ("train.cli",)),
)


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the longest prefix that names ``module``'s package."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise KeyError(f"{module} is in no layer: add its package to LAYERS")
    return best


def upward_imports(graph: dict) -> list[str]:
    """Every ``a -> b`` of ``graph`` where ``b`` sits in a higher layer than ``a``."""
    return sorted(f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
                  for a, deps in graph.items() for b in deps if layer_of(b) > layer_of(a))


def test_the_layer_check_sees_an_upward_import():
    assert upward_imports({"train.data.tasks": {"train.training.config"}}) == [
        "train.data.tasks (data) -> train.training.config (training)"]
    assert upward_imports({"train.cli.eval": {"train.analysis.evaluate", "agents.model"}}) == []
    assert layer_of("train.atomic") < layer_of("train.data.tasks") < layer_of("train.cli.main")


def test_every_module_has_a_layer_and_imports_go_down_only():
    graph = import_graph()
    for name in graph:
        layer_of(name)
    bad = upward_imports(graph)
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(bad)
