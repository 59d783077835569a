"""No import cycle between the project's modules, counting imports inside functions too.

A cycle that "works" because one import sits inside a function still ties two
modules together: each needs the other to be understood and changed. The
arrows must go one way (docs/ARCHITECTURE.md).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("othello_env", "setcomp_env", "agents", "train")


def project_modules() -> dict:
    """``{"train.trainer": path, "train": path to train/__init__.py, ...}``."""
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
    tree = ast.parse("def f():\n    from train import trainer\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))


def test_the_graph_holds_known_edges():
    g = import_graph()
    assert "agents.model" in g["agents.checkpoint"]
    assert "agents.checkpoint" in g["agents.policies"]  # `from agents import checkpoint`
    assert "train.trainer" in g["train.run"]  # imported inside run_training()


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
