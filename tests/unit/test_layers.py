"""No lower layer imports a higher one (issue 9): the pure core imports only itself; the
ledger, chain and cloud adapters import no service, interface or configuration."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "watcher"

# What each layer may import from the package (beyond itself), every import included,
# the lazy ones inside functions too.
ALLOWED = {
    "core": {"watcher.core", "watcher.amounts", "watcher.addresses", "watcher.errors"},
    "ledger": {
        "watcher.core",
        "watcher.ledger",
        "watcher.amounts",
        "watcher.addresses",
        "watcher.errors",
        "watcher.logs",
        "watcher.metrics",
        "watcher.waiting",
        "watcher.catalog",
        "watcher.redact",
    },
    "chain": {
        "watcher.core",
        "watcher.chain",
        "watcher.amounts",
        "watcher.addresses",
        "watcher.errors",
        "watcher.redact",
        "watcher.logs",
    },
    "cloud": {
        "watcher.core",
        "watcher.cloud",
        "watcher.errors",
        "watcher.redact",
    },
}


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


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_is_below_it(layer: str) -> None:
    allowed = ALLOWED[layer]
    offending = {
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for module in imports_of(path)
        if not any(module == a or module.startswith(a + ".") for a in allowed)
    }
    assert not offending, sorted(offending)
