"""Opening the ledger database: SQLite (aiosqlite, WAL) by default, PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from watcher.shared.redact import mask_url

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def normalize_database_url(text: str) -> str:
    """Accept the async URLs, their plain forms (`sqlite:///x.db`, `postgresql://...`) and a
    plain file path for SQLite (`~/ledgers/test.db`, as the default is shown)."""
    plain = text.strip()
    if "://" not in plain and (
        plain.startswith(("/", "~", "./", "../")) or plain.endswith((".db", ".sqlite", ".sqlite3"))
    ):
        return f"sqlite+aiosqlite:///{Path(plain).expanduser().resolve()}"
    try:
        url = make_url(text.strip())
    except ArgumentError:
        raise ValueError(f"{text!r} is not a database URL") from None
    backend, _, driver = url.drivername.partition("+")
    if backend not in _DRIVERS:
        raise ValueError(f"{text!r}: only sqlite and postgresql databases are supported")
    wanted = _DRIVERS[backend]
    if driver and f"{_DRIVERS[backend].split('+')[0]}+{driver}" != wanted:
        raise ValueError(f"{text!r}: use the {wanted} driver")
    url = url.set(drivername=wanted)
    if wanted.startswith("sqlite") and url.database in (None, "", ":memory:"):
        raise ValueError(f"{text!r}: the ledger must be a file, not an in-memory database")
    return url.render_as_string(hide_password=False)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def describe(url: str) -> str:
    """The URL with its user and password masked, for messages and logs."""
    return mask_url(make_url(url).render_as_string(hide_password=False))


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if is_sqlite(url):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_size", 5)
    # After the server or the network dropped connections, the pool tests each one at
    # checkout and replaces the dead ones, so the first query after a blip does not fail
    # on a stale connection (a connection cut under a statement is invalidated anyway).
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


# How long a SQLite writer waits for another process's write lock before the statement
# fails with "database is locked" (the service then retries it with backoff). The URL's
# `?timeout=<seconds>` (pysqlite's own parameter) overrides it.
SQLITE_BUSY_TIMEOUT = 30.0


def _busy_timeout_ms(url: str) -> int:
    value = make_url(url).query.get("timeout")
    if not isinstance(value, str):
        return int(SQLITE_BUSY_TIMEOUT * 1000)
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"timeout={value!r} in the database URL is not a number") from None
    return max(int(seconds * 1000), 0)


def _sqlite_engine(url: str, **kwargs: Any) -> AsyncEngine:
    busy_ms = _busy_timeout_ms(url)
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer; NORMAL sync is durable across process
        # crashes (only an OS crash may lose the last commits, never corrupt).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        # Writers take the lock up front: a deferred transaction that reads, then writes,
        # fails with SQLITE_BUSY when another process wrote in between, and busy_timeout
        # cannot help it. `watcher replay` and `watcher run` may share one file.
        mode = "DEFERRED" if connection.get_execution_options().get("read_only") else "IMMEDIATE"
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
