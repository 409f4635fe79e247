"""Shared fixtures: one real Hardhat node per test session, a clean environment per test,
and a helper that runs the real CLI entry point in-process."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import HTTPProvider, Web3

from watcher.dev.devchain import DevChain, hardhat_project
from watcher.interfaces.cli import main
from watcher.shared.net import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WATCHER_* setting, watcher.toml or ledger of the developer's leaks into a test:
    the embedded default ledger lives under $XDG_DATA_HOME, here the test's own folder."""
    for name in list(os.environ):
        if name.startswith("WATCHER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def devchain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevChain]:
    log_path = tmp_path_factory.mktemp("devchain") / "hardhat.log"
    with log_path.open("wb") as log, DevChain(free_port(), hardhat_project(ROOT), log=log) as node:
        node.start()
        yield node


@pytest.fixture(scope="session")
def timechain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevChain]:
    """A second Hardhat node, for the tests that move the chain's clock (the market's):
    the shared one's block times must stay near the wall clock for the lease tests."""
    log_path = tmp_path_factory.mktemp("timechain") / "hardhat.log"
    with log_path.open("wb") as log, DevChain(free_port(), hardhat_project(ROOT), log=log) as node:
        node.start()
        yield node


@pytest.fixture(scope="session")
def w3(devchain: DevChain) -> Web3:
    """An independent view of the chain, for assertions (not our adapter)."""
    return Web3(HTTPProvider(devchain.url))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


# --- ledger databases: every ledger test runs on SQLite and on PostgreSQL ---

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    name = f"watcher_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (not migrated): a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def moto() -> Iterator[Any]:
    """moto's EC2 server over HTTP, for the session; reset it between tests yourself."""
    from tests.cloudhelpers import MotoServer

    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium for the browser tests (installed with apt-get when missing)."""
    from tests.browserhelpers import ensure_chromium

    return ensure_chromium()


@pytest.fixture(scope="session")
def moto_ami(moto: Any) -> str:
    from tests.cloudhelpers import ec2_client

    image: str = ec2_client(moto.url).describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return image
