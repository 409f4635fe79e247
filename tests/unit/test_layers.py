"""No lower layer imports a higher one (issue 9). The package's folders are its layers,
from the bottom up: shared (logs, metrics, redaction, waiting), domain (pure), ports,
adapters (chain, cloud, ledger, mqtt), services, runtime, interfaces; dev tools beside them,
imported by none (tests/unit/test_dev_tools_apart.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "watcher"

# What each folder may import from the package (beyond itself), every import included,
# the lazy ones inside functions too. Adapters of one kind do not use each other.
BELOW = {
    "shared": set(),
    "domain": set(),
    "ports": {"watcher.domain", "watcher.shared"},
    "adapters/chain": {"watcher.domain", "watcher.shared"},
    "adapters/cloud": {"watcher.domain", "watcher.shared", "watcher.ports"},
    "adapters/ledger": {"watcher.domain", "watcher.shared"},
    "services": {
        "watcher.domain",
        "watcher.shared",
        "watcher.ports",
        "watcher.adapters",
        "watcher.__version__",
    },
    "runtime": {
        "watcher.domain",
        "watcher.shared",
        "watcher.ports",
        "watcher.adapters",
        "watcher.services",
    },
    "interfaces": {
        "watcher.domain",
        "watcher.shared",
        "watcher.ports",
        "watcher.adapters",
        "watcher.services",
        "watcher.runtime",
        "watcher.interfaces",
        "watcher.__version__",
        # The dev commands (`watcher demo`, `watcher dev-chain`...), imported lazily.
        "watcher.dev",
    },
}


def _modules(folder: str) -> list[Path]:
    path = PACKAGE / folder
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "watcher":
            found.update(f"watcher.{a.name}" for a in node.names)  # from watcher import metrics
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("watcher"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("watcher"))
    return found


@pytest.mark.parametrize("layer", sorted(BELOW))
def test_a_layer_imports_only_what_is_below_it(layer: str) -> None:
    allowed = BELOW[layer] | {"watcher." + layer.replace("/", ".")}
    offending = {
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in _modules(layer)
        for module in imports_of(path)
        if not any(module == a or module.startswith(a + ".") for a in allowed)
    }
    assert not offending, sorted(offending)


def test_every_module_is_in_a_layer() -> None:
    layered = {path for layer in BELOW for path in _modules(layer)}
    dev = set((PACKAGE / "dev").rglob("*.py"))
    top = {PACKAGE / "__init__.py", PACKAGE / "__main__.py", PACKAGE / "adapters/__init__.py"}
    loose = set(PACKAGE.rglob("*.py")) - layered - dev - top
    assert not loose, sorted(str(p.relative_to(PACKAGE)) for p in loose)
