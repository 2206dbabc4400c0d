"""Issue 18's checkable structure: imports run one way, modules stay readable, one module reads
the environment. Read from the source (ast), so nothing here imports numba."""
from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "numlin"
MAX_LINES = 600


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = ("numlin",) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module -> the numlin modules it imports, at module level or inside functions alike (a
    function-level import is still a dependency: it only hides the circle until run time)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    pkg = ".".join(base + ([node.module] if node.module else []))
                else:
                    pkg = node.module or ""
                targets = [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in mods else pkg for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t.startswith("numlin") and t != mod:
                    graph[mod].add(t)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_among_numlin_modules():
    graph = import_graph()
    assert graph["numlin"], "the graph must see numlin/__init__'s imports"
    assert circles(graph) == []


def test_kernels_never_import_front_ends_or_dispatch():
    graph = import_graph()
    bad = {m: sorted(t for t in deps if not t.startswith(("numlin.kernels", "numlin._config", "numlin._validate",
                                                             "numlin._strided", "numlin._geometry")))
           for m, deps in graph.items() if m.startswith("numlin.kernels")}
    assert {m: d for m, d in bad.items() if d} == {}


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_600_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines"


def test_the_environment_is_read_only_in_the_config_module():
    readers = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                     if p.name != "_config.py" and re.search(r"os\.environ|os\.getenv", p.read_text()))
    assert readers == []


def _numba_imports(path: pathlib.Path, module_level_only: bool) -> list[str]:
    """The ``numba`` names ``path`` imports (``from numba... import x`` as ``numba...:x``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and not node.level and node.module.split(".")[0] == "numba":
            found += [f"{node.module}:{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "numba"]
    return found


CPU = ROOT / "kernels" / "cpu"


@pytest.mark.parametrize("path", sorted(CPU.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_cpu_kernels_take_numbas_decorators_from_jit(path):
    """``_cache.install()`` must precede the first cached kernel: the decorators come from ``_jit``."""
    if path.name == "_jit.py":
        return
    decorators = {"numba:njit", "numba:jit", "numba:vectorize", "numba.extending:intrinsic", "numba:intrinsic"}
    assert not decorators & set(_numba_imports(path, module_level_only=False)), path


@pytest.mark.parametrize("name", ["__init__.py", "elementwise.py", "_threads.py", "buffers.py", "blocking.py"])
def test_the_numba_free_cpu_modules_import_no_numba_at_module_level(name):
    """The façade, the elementwise entry points, the threads and the tiles load without Numba."""
    assert not _numba_imports(CPU / name, module_level_only=True), name
