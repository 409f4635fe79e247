"""Bulk inserts straight through the database driver, for the follower's hot path.

SQLAlchemy's per-row parameter processing costs more than SQLite's own work when a
replay writes tens of thousands of payments, orders and jobs. Inside the same
transaction, these rows go to the driver directly: `executemany` on SQLite, `COPY` on
PostgreSQL. Values are converted here exactly as the column types (TokenAmount,
UtcDateTime) would; tests read every bulk-written row back through SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from watcher.ledger.types import TokenAmount, UtcDateTime


async def bulk_insert(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    postgres = conn.dialect.name == "postgresql"
    converters = [_converter(table.c[name].type, postgres) for name in columns]
    records = [
        tuple(convert(row[name]) for convert, name in zip(converters, columns, strict=True))
        for row in rows
    ]
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    if postgres:
        await driver.copy_records_to_table(table.name, records=records, columns=columns)
    else:
        placeholders = ", ".join("?" for _ in columns)
        await driver.executemany(
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608 - names from our schema
            records,
        )


def _converter(column_type: Any, postgres: bool) -> Any:
    if isinstance(column_type, TokenAmount):
        return (
            (lambda v: None if v is None else Decimal(v))
            if postgres
            else (lambda v: None if v is None else str(v))
        )
    if isinstance(column_type, UtcDateTime):
        return _pg_time if postgres else _sqlite_time
    if not postgres and column_type.python_type is bool:
        return lambda v: None if v is None else int(v)
    return _same


def _same(value: Any) -> Any:
    return value


def _pg_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


_last: tuple[datetime | None, str | None] = (None, None)


def _sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DATETIME text, in UTC. One timestamp serves a whole batch, so
    the last one is remembered."""
    global _last
    if value is None:
        return None
    if _last[0] is value:
        return _last[1]
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    _last = (value, text)
    return text
