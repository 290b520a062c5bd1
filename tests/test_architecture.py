"""The layering of docs/architecture.md, checked on the source: every import of every module of emoaudit
(at module level, inside functions, under TYPE_CHECKING) goes to its own package or one below it, and
neither packages nor modules import each other in a cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "emoaudit"
DOC = ROOT / "docs" / "architecture.md"


def layers() -> list[list[str]]:
    """The numbered list under "## Layers" in docs/architecture.md, bottom first: each item's packages."""
    section = DOC.read_text(encoding="utf-8").split("## Layers", 1)[1].split("\n## ", 1)[0]
    items = re.findall(r"^\d+\. (.+)$", section, flags=re.MULTILINE)
    return [re.findall(r"`([\w.]+)`", item.split(":", 1)[0]) for item in items]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path) for path in PACKAGE.rglob("*.py")}


def package_of(module: str) -> str:
    """`emoaudit.model.load` -> `model`; `emoaudit.errors` -> `errors`; the root package -> `emoaudit`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "emoaudit"


def imports(path: Path, source: str | None = None) -> set[str]:
    """Every emoaudit module `path` (or `source`, read as if it were `path`) imports, wherever the import
    statement stands."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    text = path.read_text(encoding="utf-8") if source is None else source
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from pkg import module` imports the module; `from pkg import name`, pkg itself.
            submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULES
            found.update(submodules or {target})
            if len(submodules) < len(node.names):
                found.add(target)
    # Every module runs its parent packages' __init__ first: not an import of its own making.
    parents = {".".join(module.split(".")[:n]) for n in range(1, module.count(".") + 1)}
    return {name for name in found if name in MODULES and name != module and name not in parents}


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, as the nodes along it, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_package_has_a_layer() -> None:
    written = [name for layer in layers() for name in layer]
    assert len(written) == len(set(written)), f"a package is named twice in {DOC.name}"
    packages = {package_of(module) for module in graph()}
    assert packages == set(written), f"in the code, not in {DOC.name}: {packages - set(written)}; " + (
        f"in {DOC.name}, not in the code: {set(written) - packages}"
    )


def upward(edges: dict[str, set[str]], order: list[list[str]]) -> list[str]:
    """Each import of `edges` (module -> modules) that goes to a package not below the importer's."""
    rank = {name: level for level, layer in enumerate(order) for name in layer}
    return [
        f"{module} imports {target} ({package_of(target)} is not below {package_of(module)})"
        for module, targets in edges.items()
        for target in sorted(targets)
        if package_of(target) != package_of(module) and rank[package_of(target)] >= rank[package_of(module)]
    ]


def test_imports_only_go_down() -> None:
    found = upward(graph(), layers())
    assert not found, "\n".join(found)


def test_an_upward_or_sideways_import_is_caught() -> None:
    order = [["errors"], ["results"], ["memory", "storage"]]
    edges = {"emoaudit.results.x": {"emoaudit.storage"}, "emoaudit.memory": {"emoaudit.storage", "emoaudit.errors"}}
    assert upward(edges, order) == [
        "emoaudit.results.x imports emoaudit.storage (storage is not below results)",
        "emoaudit.memory imports emoaudit.storage (storage is not below memory)",
    ]


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for module, targets in graph().items():
        edges.setdefault(package_of(module), set()).update(
            package_of(t) for t in targets if package_of(t) != package_of(module)
        )
    assert cycle(edges) is None, " -> ".join(cycle(edges) or [])


def test_no_import_cycle_between_modules() -> None:
    """Within a package too (model/load.py and model/runtime.py once imported each other)."""
    found = cycle(graph())
    assert found is None, " -> ".join(found or [])


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    from emoaudit.report import render\n", {"emoaudit.report.render"}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import emoaudit.cli\n", {"emoaudit.cli"}),
        ("from .. import storage\n", {"emoaudit.storage"}),
    ],
)
def test_imports_are_found_wherever_they_stand(source: str, expected: set[str]) -> None:
    """The check sees imports inside functions, under TYPE_CHECKING and relative ones."""
    assert imports(PACKAGE / "results" / "probe.py", source) >= expected


def test_a_cycle_is_caught() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert cycle(edges) == ["a", "b", "c", "a"]
