"""Bulk inserts straight through the database driver, for the follower's hot path.

SQLAlchemy's per-row parameter processing costs more than SQLite's own work when a
replay writes tens of thousands of payments, orders and jobs. Inside the same
transaction, these rows go to the driver directly: `executemany` on SQLite, `COPY` on
PostgreSQL. `DbValues` converts values exactly as the column types (TokenAmount,
UtcDateTime) would; tests read every bulk-written row back through SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection


class DbValues:
    """Python values as the connected database's driver stores them."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.postgres = conn.dialect.name == "postgresql"

    def amount(self, units: int) -> Any:
        return Decimal(units) if self.postgres else str(units)

    def time(self, moment: datetime) -> Any:
        utc = moment.astimezone(UTC)
        # SQLAlchemy's SQLite DATETIME text.
        return utc if self.postgres else utc.strftime("%Y-%m-%d %H:%M:%S.%f")

    def flag(self, value: bool) -> Any:
        return value if self.postgres else int(value)


async def bulk_insert(
    conn: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    for name in columns:
        table.c[name]
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    if conn.dialect.name == "postgresql":
        await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
    else:
        placeholders = ", ".join("?" for _ in columns)
        statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608 - names from our schema
        await driver.executemany(statement, rows)
