"""The order-event outbox: state changes written with the change itself, published later.

MQTT outages never block or lose ledger work: the ledger only appends rows here, in the
same transaction as the change they describe; the publisher (watcher/services/notify.py) sends them
in id order once the broker answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from watcher.adapters.ledger import queries
from watcher.adapters.ledger.bulk import DbValues, bulk_insert
from watcher.adapters.ledger.schema import OrderEventRecord, OrderRecord

# A retained message with an empty payload deletes the retained state: an order a reorg
# removed (it was never started) disappears from its payer's topic.
REMOVED = "removed"
_COLUMNS = ("chain_id", "order_id", "payer", "state", "payload", "created_at")


def _payload(order: dict[str, Any]) -> str:
    return json.dumps(order, separators=(",", ":"))


async def append(conn: AsyncConnection, orders: Iterable[dict[str, Any]], now: datetime) -> None:
    """Record the given order snapshots (as `OrderView.as_public_json()` renders them)."""
    db = DbValues(conn)
    at = db.time(now)
    rows = [(o["chain_id"], o["order_id"], o["payer"], o["state"], _payload(o), at) for o in orders]
    await bulk_insert(conn, OrderEventRecord.__table__, _COLUMNS, rows)  # type: ignore[arg-type]


async def append_current(conn: AsyncConnection, order_ids: list[str], now: datetime) -> None:
    """Record the orders' states as they stand in this transaction."""
    if not order_ids:
        return
    rows = (
        await conn.execute(select(OrderRecord).where(OrderRecord.order_id.in_(order_ids)))
    ).all()
    # MQTT topics are read by wallets: the public view (classified reasons, no cloud
    # internals), as the API shows it.
    await append(conn, (queries.order_view(row).as_public_json() for row in rows), now)


async def append_removed(
    conn: AsyncConnection, removed: Iterable[tuple[int, str, str]], now: datetime
) -> None:
    await append(
        conn,
        (
            {"chain_id": chain_id, "order_id": order_id, "payer": payer, "state": REMOVED}
            for chain_id, order_id, payer in removed
        ),
        now,
    )
