"""FakeProvider lives in the package for every service's tests, but nothing that runs in
production imports it: a test double must never answer for the cloud."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "watcher"
FAKE = "watcher.adapters.cloud.fake"


def imports_the_fake(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == FAKE for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            if FAKE in names:
                return True
    return False


def test_no_module_of_the_package_imports_the_fake_provider() -> None:
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "adapters" / "cloud" / "fake.py"
        and imports_the_fake(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == []
    # The check itself sees an import of the fake.
    assert imports_the_fake(ast.parse("from watcher.adapters.cloud.fake import FakeProvider"))
    assert imports_the_fake(ast.parse("from watcher.adapters.cloud import fake"))
