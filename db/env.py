"""Alembic environment for the watcher ledger.

`watcher db upgrade` (and `run`/`replay` on the embedded default) pass an open connection
in `config.attributes["connection"]`; the `alembic` command line connects by itself, to
the URL in WATCHER_DATABASE_URL or the embedded default.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from watcher.adapters.ledger.database import create_engine, normalize_database_url
from watcher.adapters.ledger.schema import Base
from watcher.runtime.config import default_database_url

target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    url = normalize_database_url(os.environ.get("WATCHER_DATABASE_URL") or default_database_url())
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(run_with)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")

shared = context.config.attributes.get("connection")
if shared is not None:
    run_with(shared)
else:
    asyncio.run(run_standalone())
