"""The import graph of `mnist_fc` and `study`, read from the source (AST), lazy imports included.

- no cycle inside either package (a cycle means two modules cannot be understood, or loaded, apart);
- `mnist_fc` is a plain training library: it never imports `study` or `optuna`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("mnist_fc", "study")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((REPO / package).rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module `path` imports, anywhere in the file (top level or inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{mod}.{alias.name}"
                out.add(sub if sub in known else mod)
    return out


def graph(package: str) -> dict[str, set[str]]:
    known = set(_modules("mnist_fc")) | set(_modules("study"))
    return {name: _imports(path, name, known) for name, path in _modules(package).items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle among the nodes of `edges` (edges to other nodes ignored), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node] & edges.keys()):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def _without_package_inits(edges: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    """The package's __init__ re-exports its public API: an edge from it is the top of the graph, and
    a module importing `package.x` loads the package first by Python's rules, not by a written import."""
    return {k: {m for m in v if m != package} for k, v in edges.items()}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package: str) -> None:
    edges = _without_package_inits(graph(package), package)
    assert len(edges) > 5  # the walk found the package's modules
    assert find_cycle(edges) is None, f"import cycle: {' -> '.join(find_cycle(edges) or [])}"


def test_mnist_fc_imports_neither_study_nor_optuna() -> None:
    bad = {
        (mod, imp)
        for mod, imps in graph("mnist_fc").items()
        for imp in imps
        if imp.split(".")[0] in ("study", "optuna", "optuna_dashboard")
    }
    assert not bad, f"mnist_fc must not import the study layer or Optuna: {sorted(bad)}"


def test_nothing_in_mnist_fc_imports_the_dispatcher() -> None:
    users = {mod for mod, imps in graph("mnist_fc").items() if "mnist_fc.trainer" in imps}
    assert users <= {"mnist_fc"}, f"only the package's public face may import mnist_fc.trainer: {sorted(users)}"


def test_the_cycle_finder_finds_cycles_including_lazy_imports(tmp_path: Path) -> None:
    """The checker itself: a lazy import inside a function closes a cycle and is found."""
    a = tmp_path / "a.py"
    a.write_text("import b\n")
    b = tmp_path / "b.py"
    b.write_text("def f():\n    from a import x\n    return x\n")
    edges = {"a": _imports(a, "a", {"a", "b"}), "b": _imports(b, "b", {"a", "b"})}
    assert find_cycle(edges) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
