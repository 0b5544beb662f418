"""Imports run one way: entry points -> pipelines -> connectors -> core (docs/architecture.md).

A static check over every module of the four packages, function-level imports included (an import
inside a function is still a dependency; hiding one there to dodge a cycle is what this forbids).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping

import pytest

from tests.paths import REPO

#: Each top-level package and the packages it may import, lowest layer last.
LAYERS = ("newswire", "pipelines", "connectors", "core")


def imports_of(source: str) -> Iterable[str]:
    """Every module an import statement anywhere in ``source`` names (absolute imports only)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def package_edges(modules: Mapping[str, str]) -> set[tuple[str, str, str]]:
    """(importing package, imported package, module) for imports between our top-level packages;
    ``modules`` maps a module's dotted name to its source."""
    edges = set()
    for name, source in modules.items():
        top = name.split(".")[0]
        for imported in imports_of(source):
            target = imported.split(".")[0]
            if target in LAYERS and target != top:
                edges.add((top, target, name))
    return edges


def violations(modules: Mapping[str, str]) -> list[str]:
    """Imports against the layering (an upward import; any cycle between packages is one)."""
    rank = {pkg: n for n, pkg in enumerate(LAYERS)}
    return sorted(f"{module} ({src}) imports {dst}: {dst} is above {src}"
                  for src, dst, module in package_edges(modules) if rank[dst] < rank[src])


def project_modules() -> dict[str, str]:
    out = {}
    for pkg in LAYERS:
        for path in sorted((REPO / pkg).rglob("*.py")):
            out[".".join(path.relative_to(REPO).with_suffix("").parts)] = path.read_text(encoding="utf-8")
    return out


def test_imports_follow_the_layers() -> None:
    modules = project_modules()
    assert len(modules) > 50  # the walk found the project
    assert violations(modules) == []


def test_no_module_hides_an_import_of_its_own_package_layer_above() -> None:
    """The check sees imports inside functions (where cycles used to hide)."""
    hidden = {"connectors.fake": "def f():\n    from pipelines.io import Delivery\n    return Delivery\n"}
    assert violations(hidden) == ["connectors.fake (connectors) imports pipelines: pipelines is above connectors"]


@pytest.mark.parametrize("modules, expected", [
    # a reintroduced cycle: connectors -> pipelines and pipelines -> connectors
    ({"pipelines.io": "from connectors.kafka import make_consumer\n",
      "connectors.redis": "from pipelines.stages.dedup.logic import judge\n"},
     ["connectors.redis (connectors) imports pipelines: pipelines is above connectors"]),
    # core importing anything of ours
    ({"core.records": "import connectors.kafka\n"}, ["core.records (core) imports connectors: connectors is above core"]),
    # an entry point may import every layer below it
    ({"newswire.cli": "import core.settings\nimport connectors.kafka\nfrom pipelines import run\n"}, []),
])
def test_the_check_catches_upward_imports_and_cycles(modules: dict[str, str], expected: list[str]) -> None:
    assert violations(modules) == expected


def test_every_package_is_listed() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages == set(LAYERS), "a new top-level package needs a place in LAYERS and docs/architecture.md"


