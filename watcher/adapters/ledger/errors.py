"""Which ledger database errors are worth waiting out, and the one retry policy for them.

    BaseException
     ├── transient (retried with capped exponential backoff and full jitter)
     │    connection  refused, reset, closed, cut mid-statement (SQLSTATE class 08, an
     │                OSError from SQLAlchemy or the driver, not one from the cloud or RPC)
     │    locked      SQLite's write lock held past the busy timeout by another process
     │    conflict    serialization failure (40001), deadlock detected (40P01)
     │    shutdown    administrator or crash shutdown, server starting up (57P01-57P03)
     │    capacity    too many connections, out of resources (class 53)
     │    timeout     statement or lock timeout (57014, 55P03), a connect that timed out
     ├── permanent (LedgerUnusable: the process stops with one line)
     │    credentials authentication failed, unknown role, no privilege (class 28, 42501)
     │    database    the database does not exist or is not a database (3D000)
     │    schema      missing table, column or schema (42P01, 42703, 3F000, "no such table")
     └── anything else: not a database fault we understand; the caller re-raises it

Every long-running task of `watcher run` (follower, provisioners, ledger gauges, MQTT
publisher) retries through `DatabaseRetry`, so they all wait the same way, log the same
line and count into one metric. Retrying is safe because each of them commits its work in
transactions that leave the ledger consistent when interrupted (see follower.py, jobs.py).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass, field

from watcher.domain.backoff import Backoff
from watcher.domain.errors import UserError
from watcher.shared import metrics
from watcher.shared.logs import fields
from watcher.shared.waiting import pause

log = logging.getLogger("watcher.adapters.ledger")

# SQLSTATE codes (PostgreSQL appendix A), exact codes first, then two-character classes.
_SQLSTATE = {
    "40001": ("conflict", True),
    "40P01": ("conflict", True),
    "57P01": ("shutdown", True),
    "57P02": ("shutdown", True),
    "57P03": ("shutdown", True),
    "57014": ("timeout", True),
    "55P03": ("timeout", True),
    "42501": ("credentials", False),
    "3D000": ("database", False),
    "42P01": ("schema", False),
    "42703": ("schema", False),
    "3F000": ("schema", False),
}
_SQLSTATE_CLASS = {
    "08": ("connection", True),
    "53": ("capacity", True),
    "28": ("credentials", False),
}
# SQLite reports everything as OperationalError: the message is all there is.
_SQLITE_MESSAGES = (
    ("database is locked", "locked", True),
    ("database table is locked", "locked", True),
    ("no such table", "schema", False),
    ("no such column", "schema", False),
    ("file is not a database", "database", False),
    ("unable to open database file", "database", False),
)


@dataclass(frozen=True)
class DatabaseFault:
    kind: str  #: one of the names in the module docstring, also the metric's label
    transient: bool
    reason: str  #: the driver's message, first line; never the URL


class LedgerUnusable(UserError):
    """The ledger cannot be used until an operator acts: wrong schema, bad credentials, no
    such database. Retrying would only repeat the error."""


# The packages whose exceptions, or whose frames an exception passed through, make it the
# ledger database's. asyncpg lets a refused or timed-out connect through SQLAlchemy as a
# bare OSError/TimeoutError with no cause: only its traceback says where it came from.
_DATABASE_PACKAGES = frozenset({"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg"})


def classify(exc: BaseException) -> DatabaseFault | None:
    """The fault behind `exc` (looking through SQLAlchemy's and the driver's wrappers), or
    None when it is not a database error this module knows. A network error (OSError,
    TimeoutError) is the database's only when it came from the database: through
    SQLAlchemy or a driver. The same error from the cloud or the RPC node is not, and
    must not be retried for ever as a database blip."""
    seen: set[int] = set()
    current: BaseException | None = exc
    through_database = False
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and not through_database:
            through_database = _from_database(current)
        fault = _classify_one(current, through_database)
        if fault is not None:
            return fault
        through_database = through_database or _is_database_exception(current)
        orig = getattr(current, "orig", None)
        # Only explicit causes: an unrelated bug raised while handling an OSError must not
        # pass for a database blip.
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return None


def _package(module: object) -> str:
    return module.partition(".")[0] if isinstance(module, str) else ""


def _is_database_exception(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) or _package(type(exc).__module__) in _DATABASE_PACKAGES


def _from_database(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from or while handling, is a database
    library's or was raised inside one (its traceback runs through a frame of one). An
    error raised inside `async with engine.begin()` passes through SQLAlchemy's frames on
    its way out: no cloud or RPC call is made with a transaction open, and none may be."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_database_exception(current):
            return True
        frame = current.__traceback__
        while frame is not None:
            if _package(frame.tb_frame.f_globals.get("__name__")) in _DATABASE_PACKAGES:
                return True
            frame = frame.tb_next
        current = current.__cause__ or current.__context__
    return False


def _classify_one(exc: BaseException, through_database: bool) -> DatabaseFault | None:
    reason = _first_line(exc)
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(state, str) and len(state) == 5:
        known = _SQLSTATE.get(state) or _SQLSTATE_CLASS.get(state[:2])
        if known is not None:
            return DatabaseFault(known[0], known[1], reason)
    if isinstance(exc, sqlite3.Error):
        message = str(exc).lower()
        for text, kind, transient in _SQLITE_MESSAGES:
            if text in message:
                return DatabaseFault(kind, transient, reason)
        return None
    if isinstance(exc, OSError) and not through_database:
        return None
    if isinstance(exc, TimeoutError):
        return DatabaseFault("timeout", True, reason or "timed out")
    if isinstance(exc, OSError):  # refused, reset, broken pipe, unreachable
        return DatabaseFault("connection", True, reason)
    if not _is_database_exception(exc):
        return None
    # SQLAlchemy marks the errors after which it threw the connection away (the pool
    # reconnects on the next checkout): a connection that went away under a statement.
    if getattr(exc, "connection_invalidated", False):
        return DatabaseFault("connection", True, reason)
    if type(exc).__name__ in ("ConnectionDoesNotExistError", "InterfaceError") and (
        "closed" in reason.lower() or "connection" in reason.lower()
    ):
        return DatabaseFault("connection", True, reason)
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # SQLAlchemy prefixes "(driver.Class) " and appends the statement and a help link.
    if text.startswith("(") and ") " in text:
        text = text.split(") ", 1)[1]
    return text.splitlines()[0][:300] if text else type(exc).__name__


@dataclass
class DatabaseRetry:
    """The retry policy of one long-running task for ledger errors: transient ones are
    waited out with capped exponential backoff and full jitter, for ever (the database
    coming back is the only way forward); permanent ones stop the process."""

    task: str
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.25, cap=15.0))

    async def wait(self, exc: Exception, stop: asyncio.Event | None = None) -> None:
        """Call from an `except` block. Transient: count it, log one line, sleep the backoff
        (cut short by `stop`). Permanent: raise LedgerUnusable. Anything else: re-raise."""
        fault = classify(exc)
        if fault is None:
            raise exc
        metrics.DATABASE_ERRORS.labels(kind=fault.kind).inc()
        if not fault.transient:
            raise LedgerUnusable(f"the ledger database cannot be used: {fault.reason}") from None
        delay = self.backoff.next_delay()
        log.warning(
            fields(
                "database_retry",
                task=self.task,
                kind=fault.kind,
                attempt=self.backoff.attempt,
                wait=f"{delay:.2f}s",
                reason=fault.reason,
            )
        )
        await pause(stop, delay)

    def succeeded(self) -> None:
        self.backoff.reset()
