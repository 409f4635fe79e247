"""`watcher demo` without the `demo` extra: one line saying what to install, no traceback,
and nothing started."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.acceptance.test_cli_processes import hardhat_pids


def python_without_moto_server(folder: Path) -> Path:
    """A real virtual environment that sees this one's packages (watcher and its runtime
    dependencies) but has no moto_server beside its interpreter, as after a plain
    `pip install watcher`."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60
    )
    site_packages = next(folder.glob("lib/python3*/site-packages"))
    ours = sysconfig.get_paths()["purelib"]
    # addsitedir, not a bare path: it also runs the .pth files there (the editable install).
    (site_packages / "outer.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    python = folder / "bin" / "python"
    assert not (python.parent / "moto_server").exists()
    return python


def test_demo_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    python = python_without_moto_server(tmp_path / "env")
    before = hardhat_pids()
    result = subprocess.run(
        [str(python), "-m", "watcher", "demo"],
        # No moto_server on PATH either.
        env={**os.environ, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "watcher: error: moto's EC2 server is not installed: "
        "pip install 'watcher[demo]' (in a checkout: make demo)\n"
    )
    assert result.stdout == ""
    assert hardhat_pids() <= before
