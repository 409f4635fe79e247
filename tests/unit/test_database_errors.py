"""The one classification of ledger database errors: transient ones are retried, permanent
ones stop the process with one line, anything else is not the database's."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from watcher import metrics
from watcher.ledger.errors import DatabaseRetry, LedgerUnusable, classify


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
        (ConnectionRefusedError(111, "Connect call failed"), "connection"),
        (wrapped(ConnectionResetError(104, "Connection reset by peer")), "connection"),
        (wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("closed")), "connection"),
        (wrapped(asyncpg.exceptions.AdminShutdownError("terminating")), "shutdown"),
        (wrapped(asyncpg.exceptions.SerializationError("could not serialize")), "conflict"),
        (wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock detected")), "conflict"),
        (wrapped(asyncpg.exceptions.TooManyConnectionsError("too many")), "capacity"),
        (wrapped(asyncpg.exceptions.QueryCanceledError("statement timeout")), "timeout"),
        (TimeoutError(), "timeout"),
    ],
)
def test_transient_errors(error: BaseException, kind: str) -> None:
    fault = classify(error)
    assert fault is not None and fault.transient and fault.kind == kind


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
