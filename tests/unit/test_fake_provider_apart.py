"""The fakes (FakeProvider, FakeInfra) live in the package for every service's tests, but
nothing that runs in production imports them: a test double must never answer for the
cloud."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "watcher"
FAKES = {
    "watcher.adapters.cloud.fake": PACKAGE / "adapters" / "cloud" / "fake.py",
    "watcher.adapters.cloud.infra_fake": PACKAGE / "adapters" / "cloud" / "infra_fake.py",
    "watcher.adapters.cloud.fake_kinds": PACKAGE / "adapters" / "cloud" / "fake_kinds.py",
}


def imports_the_fake(tree: ast.AST, fake: str) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == fake for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            if fake in names:
                return True
    return False


@pytest.mark.parametrize("fake", sorted(FAKES))
def test_no_module_of_the_package_imports_a_fake(fake: str) -> None:
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in FAKES.values() and imports_the_fake(ast.parse(path.read_text()), fake)
    ]
    assert offenders == []
    # The check itself sees an import of the fake.
    module, name = fake.rsplit(".", 1)
    assert imports_the_fake(ast.parse(f"from {fake} import Anything"), fake)
    assert imports_the_fake(ast.parse(f"from {module} import {name}"), fake)
