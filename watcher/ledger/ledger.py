"""The ledger: every write the follower makes, each in one database transaction.

Writers for one chain are serialized (PostgreSQL: a transaction-scoped advisory lock;
SQLite: BEGIN IMMEDIATE), so `watcher run` and `watcher replay` may share a database and
credit is always applied in chain order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_typing import ChecksumAddress
from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watcher.catalog import Catalog
from watcher.chain.source import BlockRef
from watcher.core.order import OrderState
from watcher.core.payment import Payment
from watcher.core.pricing import DEFAULT_MAX_ORDERS_PER_PAYMENT, NewOrder, Plan, credit_payments
from watcher.ledger import events, queries
from watcher.ledger.bulk import DbValues, bulk_insert
from watcher.ledger.schema import (
    BlockRecord,
    ChainCursor,
    CreditRecord,
    OrderRecord,
    PaymentRecord,
    ProvisionJobRecord,
)

_CHUNK = 500
_PAYMENT_COLUMNS = (
    "chain_id",
    "tx_hash",
    "log_index",
    "block_number",
    "block_hash",
    "payer",
    "amount",
    "recorded_at",
)
_ORDER_COLUMNS = (
    "order_id",
    "chain_id",
    "tx_hash",
    "log_index",
    "unit",
    "block_number",
    "payer",
    "amount",
    "plan",
    "instance_type",
    "state",
    "reorged",
    "created_at",
    "updated_at",
    "paid_at",
)
_JOB_COLUMNS = ("order_id", "state", "attempts", "available_at", "created_at")
JOB_QUEUED = "queued"


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last block whose payments are all in the ledger."""

    number: int
    hash: str


class CursorMoved(Exception):
    """Another writer advanced or rewound the cursor since this one read it."""


@dataclass(frozen=True)
class Recorded:
    payments: list[Payment]
    duplicates: int
    orders: list[NewOrder]


@dataclass(frozen=True)
class Rewound:
    ancestor: Cursor | None
    payments_removed: int
    orders_removed: int
    orders_flagged: list[str]


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Ledger:
    def __init__(
        self,
        engine: AsyncEngine,
        chain_id: int,
        catalog: Catalog,
        reorg_history: int = 256,
        max_orders_per_payment: int = DEFAULT_MAX_ORDERS_PER_PAYMENT,
        events: bool = False,
    ) -> None:
        self.engine = engine
        self._read_engine = queries.read_only(engine)
        self.chain_id = chain_id
        self.catalog = catalog
        self.reorg_history = reorg_history
        self.max_orders_per_payment = max_orders_per_payment
        # Write order events to the outbox (only when MQTT is on: nobody drains it otherwise).
        self.events = events

    # --- reads ---

    async def cursor(self) -> Cursor | None:
        async with self._reader() as conn:
            return await self._cursor(conn)

    async def known_blocks(self, below: int) -> list[Cursor]:
        """Block hashes the ledger remembers at or below `below`, newest first: the
        candidates for the last block a reorg left in place. Each processed range leaves
        its end block and that block's parent; each payment leaves its block."""
        async with self._reader() as conn:
            blocks = (
                await conn.execute(
                    select(BlockRecord.number, BlockRecord.hash, BlockRecord.parent_hash).where(
                        BlockRecord.chain_id == self.chain_id, BlockRecord.number <= below
                    )
                )
            ).all()
            payment_blocks = (
                await conn.execute(
                    select(PaymentRecord.block_number, PaymentRecord.block_hash)
                    .where(
                        PaymentRecord.chain_id == self.chain_id,
                        PaymentRecord.block_number <= below,
                        PaymentRecord.block_number >= below - self.reorg_history,
                    )
                    .distinct()
                )
            ).all()
        known: dict[int, str] = {number - 1: parent for number, _, parent in blocks if number > 0}
        known.update({number: block_hash for number, block_hash in payment_blocks})
        known.update({number: block_hash for number, block_hash, _ in blocks})
        return [Cursor(number, known[number]) for number in sorted(known, reverse=True)]

    # --- writes ---

    async def record(
        self,
        payments: Sequence[Payment],
        *,
        advance_from: Cursor | None = None,
        advance_to: BlockRef | None = None,
        block_times: Mapping[int, datetime] | None = None,
    ) -> Recorded:
        """Record payments (in chain order) with their credit, orders and jobs; with
        `advance_to`, also move the cursor there, but only if it still is `advance_from`."""
        now = _now()
        async with self.engine.begin() as conn:
            await self._lock(conn)
            if advance_to is not None:
                current = await self._cursor(conn)
                if current != advance_from:
                    raise CursorMoved(f"cursor is {current}, expected {advance_from}")
            fresh = await self._insert_payments(conn, payments, now)
            orders: list[NewOrder] = []
            if fresh:
                flagged = await self._flagged_orders(conn)
                orders = await self._credit(conn, fresh, now, set(flagged), block_times or {})
                # A payment a reorg took away is back: its provisioned orders are whole again.
                keys = {(p.tx_hash, p.log_index) for p in fresh}
                back = [order_id for order_id, key in flagged.items() if key in keys]
                for ids in _chunks(back):
                    await conn.execute(
                        update(OrderRecord)
                        .where(OrderRecord.order_id.in_(ids))
                        .values(reorged=False, updated_at=now)
                    )
            if advance_to is not None:
                await self._advance(conn, advance_to, now)
        return Recorded(fresh, len(payments) - len(fresh), orders)

    async def rewind(self, ancestor: Cursor | None, floor: int = -1) -> Rewound:
        """Undo everything above `ancestor`, in one transaction: orphaned payments and their
        credit, and their orders whose provisioning has not started. Orders that had started
        are kept and flagged for the operator (their price stays owed)."""
        now = _now()
        async with self.engine.begin() as conn:
            await self._lock(conn)
            above = ancestor.number if ancestor is not None else floor
            orphaned = (
                await conn.execute(
                    select(PaymentRecord.payer, PaymentRecord.amount).where(
                        PaymentRecord.chain_id == self.chain_id, PaymentRecord.block_number > above
                    )
                )
            ).all()
            orphan_orders = and_(
                OrderRecord.chain_id == self.chain_id,
                OrderRecord.block_number > above,
                OrderRecord.reorged.is_(False),
            )
            # Delete only what has not started, with the state in the statement itself: on
            # PostgreSQL a worker may mark an order launching concurrently, and the row is
            # then re-checked against this condition, not against an earlier read.
            removable = (
                await conn.execute(
                    delete(OrderRecord)
                    .where(orphan_orders, OrderRecord.state == OrderState.QUEUED.value)
                    .returning(OrderRecord.order_id, OrderRecord.payer, OrderRecord.amount)
                )
            ).all()
            flagged = list(
                (
                    await conn.execute(
                        update(OrderRecord)
                        .where(orphan_orders)
                        .values(reorged=True, updated_at=now)
                        .returning(OrderRecord.order_id)
                    )
                ).scalars()
            )
            if self.events:
                removed = [(self.chain_id, o.order_id, o.payer) for o in removable]
                await events.append_removed(conn, removed, now)
                await events.append_current(conn, flagged, now)
            delta: dict[str, int] = defaultdict(int)
            for payer, amount in orphaned:
                delta[payer] -= amount
            for order in removable:
                delta[order.payer] += order.amount
            await conn.execute(
                delete(PaymentRecord).where(
                    PaymentRecord.chain_id == self.chain_id, PaymentRecord.block_number > above
                )
            )
            balances = await self._balances(conn, list(delta))
            still_paying = await self._payers_with_payments(conn, list(delta))
            for payer, change in delta.items():
                balance = balances[payer][0] + change
                where = (CreditRecord.chain_id == self.chain_id, CreditRecord.payer == payer)
                if balance == 0 and payer not in still_paying:
                    # A payer whose only payments were orphaned leaves no trace.
                    await conn.execute(delete(CreditRecord).where(*where))
                elif change:
                    await conn.execute(
                        update(CreditRecord).where(*where).values(balance=balance, updated_at=now)
                    )
            await conn.execute(
                delete(BlockRecord).where(
                    BlockRecord.chain_id == self.chain_id, BlockRecord.number > above
                )
            )
            if ancestor is not None:
                await self._set_cursor(conn, ancestor, now)
            else:
                await conn.execute(delete(ChainCursor).where(ChainCursor.chain_id == self.chain_id))
        return Rewound(ancestor, len(orphaned), len(removable), flagged)

    # --- internals ---

    def _reader(self) -> AsyncConnection:
        # Reads take no write lock on SQLite (see database.on_begin).
        return self._read_engine.connect()

    def _insert(self, conn: AsyncConnection, table: Any) -> Any:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    async def _lock(self, conn: AsyncConnection) -> None:
        # One writer per chain at a time, even before the cursor row exists.
        await queries.lock_chain(conn, self.chain_id)

    async def _cursor(self, conn: AsyncConnection) -> Cursor | None:
        row = (
            await conn.execute(
                select(ChainCursor.block_number, ChainCursor.block_hash).where(
                    ChainCursor.chain_id == self.chain_id
                )
            )
        ).first()
        return Cursor(row[0], row[1]) if row else None

    async def _insert_payments(
        self, conn: AsyncConnection, payments: Sequence[Payment], now: datetime
    ) -> list[Payment]:
        """Insert the payments the ledger lacks; return them. The writer lock is held, so a
        look-up of the block range then a plain bulk insert is race-free, and much faster
        than an upsert with RETURNING per row."""
        if not payments:
            return []
        low = min(p.block_number for p in payments)
        high = max(p.block_number for p in payments)
        known = {
            (tx_hash, log_index)
            for tx_hash, log_index in (
                await conn.execute(
                    select(PaymentRecord.tx_hash, PaymentRecord.log_index).where(
                        PaymentRecord.chain_id == self.chain_id,
                        PaymentRecord.block_number.between(low, high),
                    )
                )
            ).all()
        }
        fresh: list[Payment] = []
        for payment in payments:
            key = (payment.tx_hash, payment.log_index)
            if key not in known:
                known.add(key)  # the same log twice in one answer counts once
                fresh.append(payment)
        if fresh:
            db = DbValues(conn)
            at = db.time(now)
            await bulk_insert(
                conn,
                PaymentRecord.__table__,  # type: ignore[arg-type]
                _PAYMENT_COLUMNS,
                [
                    (
                        p.chain_id,
                        p.tx_hash,
                        p.log_index,
                        p.block_number,
                        p.block_hash,
                        p.payer,
                        db.amount(p.amount),
                        at,
                    )
                    for p in fresh
                ],
            )
        return fresh

    async def _balances(
        self, conn: AsyncConnection, payers: Sequence[str]
    ) -> dict[str, tuple[int, str]]:
        found: dict[str, tuple[int, str]] = {}
        for chunk in _chunks(list(payers)):
            query = select(CreditRecord.payer, CreditRecord.balance, CreditRecord.plan).where(
                CreditRecord.chain_id == self.chain_id, CreditRecord.payer.in_(chunk)
            )
            for payer, balance, plan in (await conn.execute(query)).all():
                found[payer] = (balance, plan)
        return found

    async def _payers_with_payments(self, conn: AsyncConnection, payers: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(payers)):
            query = (
                select(PaymentRecord.payer)
                .where(PaymentRecord.chain_id == self.chain_id, PaymentRecord.payer.in_(chunk))
                .distinct()
            )
            found.update((await conn.execute(query)).scalars())
        return found

    async def _credit(
        self,
        conn: AsyncConnection,
        payments: list[Payment],
        now: datetime,
        flagged: set[str],
        block_times: Mapping[int, datetime],
    ) -> list[NewOrder]:
        payers = list(dict.fromkeys(p.payer for p in payments))
        stored = await self._balances(conn, payers)
        plan_of: dict[ChecksumAddress, Plan] = {
            payer: self.catalog.plan(stored[payer][1])
            if payer in stored
            else self.catalog.default_plan
            for payer in payers
        }
        pricing = credit_payments(
            {p: stored[p][0] for p in payers if p in stored},
            payments,
            plan_of,
            self.max_orders_per_payment,
        )
        credit_rows = [
            {
                "chain_id": self.chain_id,
                "payer": payer,
                "balance": pricing.balances[payer],
                "plan": stored[payer][1] if payer in stored else plan_of[payer].name,
                "updated_at": now,
            }
            for payer in payers
        ]
        upsert = self._insert(conn, CreditRecord)
        await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["chain_id", "payer"],
                set_={"balance": upsert.excluded.balance, "updated_at": upsert.excluded.updated_at},
            ),
            credit_rows,
        )
        if pricing.orders:
            await self._insert_orders(conn, pricing.orders, now, flagged, block_times)
        return pricing.orders

    async def _flagged_orders(self, conn: AsyncConnection) -> dict[str, tuple[str, int]]:
        """Orders a reorg flagged (few, usually none), with their payment's key."""
        rows = await conn.execute(
            select(OrderRecord.order_id, OrderRecord.tx_hash, OrderRecord.log_index).where(
                OrderRecord.chain_id == self.chain_id, OrderRecord.reorged.is_(True)
            )
        )
        return {order_id: (tx_hash, log_index) for order_id, tx_hash, log_index in rows.all()}

    async def _insert_orders(
        self,
        conn: AsyncConnection,
        orders: list[NewOrder],
        now: datetime,
        flagged: set[str],
        block_times: Mapping[int, datetime],
    ) -> None:
        # An order id can only exist already if a reorg flagged it and its payment is back
        # (`record` then clears the flag): keep that order, with its instance.
        orders = [o for o in orders if o.order_id not in flagged]
        if not orders:
            return
        db = DbValues(conn)
        at, queued, no = db.time(now), OrderState.QUEUED.value, db.flag(False)
        paid = {number: db.time(moment) for number, moment in block_times.items()}
        await bulk_insert(
            conn,
            OrderRecord.__table__,  # type: ignore[arg-type]
            _ORDER_COLUMNS,
            [
                (
                    o.order_id,
                    o.payment.chain_id,
                    o.payment.tx_hash,
                    o.payment.log_index,
                    o.unit,
                    o.payment.block_number,
                    o.payment.payer,
                    db.amount(o.plan.price),
                    o.plan.name,
                    o.plan.instance_type,
                    queued,
                    no,
                    at,
                    at,
                    paid.get(o.payment.block_number),
                )
                for o in orders
            ],
        )
        await bulk_insert(
            conn,
            ProvisionJobRecord.__table__,  # type: ignore[arg-type]
            _JOB_COLUMNS,
            [(o.order_id, JOB_QUEUED, 0, at, at) for o in orders],
        )
        if self.events:
            await events.append_current(conn, [o.order_id for o in orders], now)

    async def _advance(self, conn: AsyncConnection, block: BlockRef, now: datetime) -> None:
        upsert = self._insert(conn, BlockRecord)
        await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["chain_id", "number"],
                set_={"hash": upsert.excluded.hash, "parent_hash": upsert.excluded.parent_hash},
            ),
            {
                "chain_id": self.chain_id,
                "number": block.number,
                "hash": block.hash,
                "parent_hash": block.parent_hash,
            },
        )
        await self._set_cursor(conn, Cursor(block.number, block.hash), now)
        await conn.execute(
            delete(BlockRecord).where(
                BlockRecord.chain_id == self.chain_id,
                BlockRecord.number < block.number - self.reorg_history,
            )
        )

    async def _set_cursor(self, conn: AsyncConnection, cursor: Cursor, now: datetime) -> None:
        upsert = self._insert(conn, ChainCursor)
        await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["chain_id"],
                set_={
                    "block_number": upsert.excluded.block_number,
                    "block_hash": upsert.excluded.block_hash,
                    "updated_at": upsert.excluded.updated_at,
                },
            ),
            {
                "chain_id": self.chain_id,
                "block_number": cursor.number,
                "block_hash": cursor.hash,
                "updated_at": now,
            },
        )
