"""The dev tools (watcher/dev/: dev chain, moto's server, the demo) stay out of the runtime's
import path: no runtime module imports them, so a production install needs neither Node nor
moto, and moto is an optional extra, not a dependency."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "watcher"
# The fake cloud provider is a test double beside the EC2 adapter, not runtime code.
NOT_RUNTIME = {"watcher.adapters.cloud.fake"}
# The commands that start the dev tools import them when they run, never at import time.
CLI_DEV_COMMANDS = {"devchain", "demo"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_modules() -> list[str]:
    names = [module_name(path) for path in sorted(PACKAGE.rglob("*.py"))]
    return [
        name
        for name in names
        if not is_dev(name) and name not in NOT_RUNTIME and name != "watcher.__main__"
    ]


def is_dev(module: str) -> bool:
    return module == "watcher.dev" or module.startswith("watcher.dev.")


def dev_imports(tree: ast.AST) -> list[tuple[int, list[str]]]:
    """(line, enclosing functions) of every import of watcher.dev in the tree."""
    found: list[tuple[int, list[str]]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            scope = [*scope, node.name]
        if isinstance(node, ast.Import) and any(is_dev(alias.name) for alias in node.names):
            found.append((node.lineno, scope))
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            if is_dev(node.module) or any(is_dev(name) for name in names):
                found.append((node.lineno, scope))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(tree, [])
    return found


def test_runtime_modules_do_not_import_the_dev_tools() -> None:
    """Every import of watcher.dev outside it, found in the source (lazy ones too), is one
    of the CLI commands that start a dev tool."""
    misplaced = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if is_dev(module) or module in NOT_RUNTIME:
            continue
        for line, scope in dev_imports(ast.parse(path.read_text(), str(path))):
            if not (module == "watcher.interfaces.cli" and scope and scope[0] in CLI_DEV_COMMANDS):
                misplaced.append(f"{path.relative_to(ROOT)}:{line} ({'.'.join(scope) or '-'})")
    assert misplaced == []


def test_importing_every_runtime_module_loads_neither_dev_tools_nor_moto() -> None:
    """In a fresh interpreter (this one has the dev chain loaded by conftest), what the
    imports really pull in, through every module they import in turn."""
    modules = runtime_modules()
    assert "watcher.interfaces.cli" in modules and "watcher.services.follower" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert [name for name in loaded if is_dev(name)] == []
    assert [name for name in loaded if name == "moto" or name.startswith("moto.")] == []


def test_moto_is_an_optional_extra_not_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [dep for dep in project["dependencies"] if dep.startswith("moto")]
    assert any(dep.startswith("moto[server]") for dep in project["optional-dependencies"]["demo"])
    # The tests run moto's server, so the dev extra brings the demo extra along.
    assert "watcher[demo]" in project["optional-dependencies"]["dev"]
