"""The tree's architecture, checked from the imports themselves (every import statement, also those
inside functions): no import cycles anywhere in components/ and pipelines/; components/ import neither
Ray, MLflow nor pipelines/; Ray is imported only under pipelines/distributed/ and MLflow only under
pipelines/tracking/."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    out = {}
    for p in [*REPO.glob("components/**/*.py"), *REPO.glob("pipelines/**/*.py")]:
        name = ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        out[name] = p
    return out


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement of ``path`` (``from a import b`` names a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


MODULES = _modules()
IMPORTS = {name: _imports(path) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {m: {t for t in IMPORTS[m] if t in MODULES and t != m} for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    assert len(MODULES) > 100 and "pipelines.dqn.run" in IMPORTS["pipelines.dqn.train"]
    assert "ray" in IMPORTS["pipelines.distributed.ray_wiring"]  # module-level and in-function alike


def test_no_import_cycles():
    assert _cycles() == []


def _importers(prefix: str) -> set[str]:
    return {
        m for m, names in IMPORTS.items() if any(n == prefix or n.startswith(prefix + ".") for n in names)
    }


def test_components_run_without_ray_mlflow_or_pipelines():
    components = {m for m in MODULES if m.startswith("components")}
    assert not components & (_importers("ray") | _importers("mlflow") | _importers("pipelines"))


def test_ray_only_in_the_distributed_layer_and_mlflow_only_in_tracking():
    assert {m for m in _importers("ray") if not m.startswith("pipelines.distributed")} == set()
    assert {m for m in _importers("mlflow") if not m.startswith("pipelines.tracking")} == set()


def _unexplained_local_imports(path: Path) -> list[str]:
    """Imports inside functions with no comment saying why, on their line or on the line just above
    their group: each one hides an edge of the graph from readers and tools, so each needs a reason
    (start-up time, an optional package, a module that is heavy and rarely needed)."""
    text = path.read_text()
    lines = text.splitlines()
    found = []
    for fn in ast.walk(ast.parse(text)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if "#" in "".join(lines[node.lineno - 1 : node.end_lineno]):
                continue
            above = node.lineno - 2  # up through the group of imports it belongs to
            while above >= 0 and lines[above].strip().startswith(("import ", "from ", ")")):
                above -= 1
            if above < 0 or not lines[above].strip().startswith("#"):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return sorted(set(found))


def test_every_import_inside_a_function_says_why():
    assert [u for p in MODULES.values() for u in _unexplained_local_imports(p)] == []
