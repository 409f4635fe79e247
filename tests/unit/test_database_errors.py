"""The one classification of ledger database errors: transient ones are retried, permanent
ones stop the process with one line, anything else is not the database's."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.errors import DatabaseRetry, LedgerUnusable, classify
from watcher.shared import metrics


def wrapped(orig: BaseException) -> DBAPIError:
    """As SQLAlchemy raises it: the driver's error as `orig`."""
    return DBAPIError("SELECT 1", {}, orig)  # type: ignore[arg-type]


def sqlite_locked(tmp_path: Path) -> sqlite3.OperationalError:
    path = tmp_path / "ledger.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        holder.close()
        other.close()
    raise AssertionError("the lock was not held")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (wrapped(ConnectionResetError(104, "Connection reset by peer")), "connection"),
        (wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("closed")), "connection"),
        (wrapped(asyncpg.exceptions.AdminShutdownError("terminating")), "shutdown"),
        (wrapped(asyncpg.exceptions.SerializationError("could not serialize")), "conflict"),
        (wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock detected")), "conflict"),
        (wrapped(asyncpg.exceptions.TooManyConnectionsError("too many")), "capacity"),
        (wrapped(asyncpg.exceptions.QueryCanceledError("statement timeout")), "timeout"),
        (wrapped(TimeoutError()), "timeout"),
    ],
)
def test_transient_errors(error: BaseException, kind: str) -> None:
    fault = classify(error)
    assert fault is not None and fault.transient and fault.kind == kind


async def raised_by(call: Callable[[], Awaitable[object]]) -> BaseException:
    """What `call` raises, caught the way the service's tasks catch it."""
    try:
        await call()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


@pytest.fixture
async def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A local port that accepts connections and never answers: a connect times out."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_a_refused_or_timed_out_database_connect_is_transient(
    closed_port: int, silent_port: int
) -> None:
    # asyncpg lets these through SQLAlchemy as a bare OSError / TimeoutError, no cause.
    refused_url = f"postgresql+asyncpg://watcher@127.0.0.1:{closed_port}/ledger"
    engine = create_engine(refused_url)
    try:
        refused = await raised_by(lambda: _select_one(engine))
    finally:
        await engine.dispose()
    assert type(refused) is ConnectionRefusedError and refused.__cause__ is None
    fault = classify(refused)
    assert fault is not None and (fault.kind, fault.transient) == ("connection", True)
    direct = await raised_by(
        lambda: asyncpg.connect(host="127.0.0.1", port=closed_port, user="watcher")
    )
    assert isinstance(direct, ConnectionRefusedError)
    assert classify(direct) == fault
    silent = await raised_by(
        lambda: asyncpg.connect(host="127.0.0.1", port=silent_port, user="watcher", timeout=0.2)
    )
    assert isinstance(silent, TimeoutError)
    fault = classify(silent)
    assert fault is not None and (fault.kind, fault.transient) == ("timeout", True)


async def _select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _connect_elsewhere(port: int, timeout: float | None = None) -> None:
    """Not the database: a plain socket, as the cloud's or the RPC node's client opens,
    waiting at most `timeout` for the first answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.wait_for(reader.read(1), timeout)
    finally:
        writer.close()


async def test_network_errors_from_outside_the_database_are_not_the_databases(
    closed_port: int, silent_port: int
) -> None:
    # An AWS or RPC call that cannot connect is not a ledger blip: retrying it for ever
    # under database_retry would hide it (the cloud and chain code have their own retries).
    refused = await raised_by(lambda: _connect_elsewhere(closed_port))
    assert isinstance(refused, ConnectionRefusedError)
    assert classify(refused) is None
    timed_out = await raised_by(lambda: _connect_elsewhere(silent_port, timeout=0.2))
    assert isinstance(timed_out, TimeoutError)
    assert classify(timed_out) is None
    assert classify(ConnectionRefusedError(111, "Connect call failed")) is None
    assert classify(TimeoutError()) is None
    # Raised from a database error, it is the database's again.
    try:
        try:
            await _connect_elsewhere(closed_port)
        except OSError as exc:
            raise ConnectionResetError(104, "reset") from wrapped(exc)
    except OSError as exc:
        fault = classify(exc)
    assert fault is not None and fault.kind == "connection"


def test_sqlite_locked_past_the_busy_timeout_is_transient(tmp_path: Path) -> None:
    fault = classify(OperationalError("BEGIN IMMEDIATE", {}, sqlite_locked(tmp_path)))
    assert fault is not None and fault.transient and fault.kind == "locked"
    assert fault.reason == "database is locked"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (wrapped(asyncpg.exceptions.InvalidPasswordError("password failed")), "credentials"),
        (wrapped(asyncpg.exceptions.InvalidAuthorizationSpecificationError("role")), "credentials"),
        (wrapped(asyncpg.exceptions.InvalidCatalogNameError("no db")), "database"),
        (
            ProgrammingError("SELECT", {}, asyncpg.exceptions.UndefinedTableError("no relation")),
            "schema",
        ),
        (OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x")), "schema"),
    ],
)
def test_permanent_errors(error: BaseException, kind: str) -> None:
    fault = classify(error)
    assert fault is not None and not fault.transient and fault.kind == kind


def test_other_errors_are_not_the_databases() -> None:
    assert classify(ValueError("bug")) is None
    assert classify(KeyError("x")) is None


async def test_the_retry_waits_out_transient_counts_them_and_stops_on_permanent() -> None:
    retry = DatabaseRetry("test")
    before = metrics.DATABASE_ERRORS.labels(kind="shutdown")._value.get()
    stop = asyncio.Event()
    stop.set()  # the wait ends at once: only the decision is under test
    await retry.wait(wrapped(asyncpg.exceptions.AdminShutdownError("x")), stop)
    assert metrics.DATABASE_ERRORS.labels(kind="shutdown")._value.get() == before + 1
    assert retry.backoff.attempt == 1
    with pytest.raises(LedgerUnusable, match="the ledger database cannot be used: no db"):
        await retry.wait(wrapped(asyncpg.exceptions.InvalidCatalogNameError("no db")), stop)
    bug = ValueError("bug")
    with pytest.raises(ValueError, match="bug") as raised:
        await retry.wait(bug, stop)
    assert raised.value is bug
