"""The package layout reads by stage: each stage imports only the stages before it, no import circle, short modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "freqdiff"
STAGES = ["core", "data", "process", "models", "regularizers", "samplers", "pipeline", "train", "metrics",
          "analysis", "theory", "commands", "cli"]
# The one upward edge: a config resolves its component names in the registries (pipeline.components), imported on
# first use so that `freqdiff --help` does not load torch; nothing below pipeline imports config back through it.
ALLOWED_UPWARD = {("freqdiff.core.config", "freqdiff.commands.registries")}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every freqdiff module `path` imports, at the top or inside a function, resolved to a module that exists."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [f"{node.module}.{a.name}" for a in node.names] + [node.module] if isinstance(node, ast.ImportFrom) and \
            node.module and not node.level else []
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("freqdiff"):
                found.add(name)
    return found - {module_name(path)}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: imports_of(p, set(paths)) for m, p in paths.items()}


def stage(module: str) -> int:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 else -1  # freqdiff/__init__ stands below everything


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while not component or v not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(component)

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_each_stage_imports_only_the_stages_before_it() -> None:
    upward = sorted((a, b) for a, targets in graph().items() for b in targets
                    if stage(b) > stage(a) and (a, b) not in ALLOWED_UPWARD)
    assert upward == []


def test_the_checks_can_fail() -> None:
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [{"a", "b"}]
    assert stage("freqdiff.train.trainer") > stage("freqdiff.samplers.base")


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES
