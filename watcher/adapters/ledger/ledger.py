"""The ledger: every write the follower makes, each in one database transaction.

Writers for one chain are serialized (PostgreSQL: a transaction-scoped advisory lock;
SQLite: BEGIN IMMEDIATE), so `watcher run` and `watcher replay` may share a database and
credit is always applied in chain order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from eth_typing import ChecksumAddress
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watcher.adapters.ledger import events, queries
from watcher.adapters.ledger.accounts import apply as accounts_apply
from watcher.adapters.ledger.accounts import balances as accounts_balances
from watcher.adapters.ledger.accounts import set_balances as accounts_set
from watcher.adapters.ledger.bulk import DbValues, bulk_insert
from watcher.adapters.ledger.drafts import OPEN as DRAFT_OPEN
from watcher.adapters.ledger.schema import (
    BlockRecord,
    ChainCursor,
    ChainRecord,
    DraftRecord,
    LeaseChargeRecord,
    OrderRecord,
    PaymentRecord,
)
from watcher.domain.amounts import format_amount
from watcher.domain.blocks import BlockRef
from watcher.domain.catalog import Catalog
from watcher.domain.checkout import Decision, Placement, decide
from watcher.domain.errors import ChainError, UserError
from watcher.domain.kinds import summary
from watcher.domain.leases import LeaseTerms
from watcher.domain.order import OrderState
from watcher.domain.payment import Payment
from watcher.domain.pricing import (
    DEFAULT_MAX_ORDERS_PER_PAYMENT,
    Named,
    NewOrder,
    OrderTerms,
    Plan,
    UnfundedOrder,
    credit_order_id,
    credit_payments,
    match_unfunded,
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
    "resource",
    "state",
    "reorged",
    "created_at",
    "updated_at",
    "paid_at",
    "lease_terms",
    "reference",
    "periods",
    "ssh_key",
    "name",
)


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last block whose payments are all in the ledger."""

    number: int
    hash: str


class ChainMismatch(UserError):
    """The node serves another chain, or the settings name another token, than the one
    this ledger has followed."""


class CursorMoved(Exception):
    """Another writer advanced or rewound the cursor since this one read it."""


@dataclass(frozen=True)
class Recorded:
    payments: list[Payment]
    duplicates: int
    orders: list[NewOrder]


@dataclass(frozen=True)
class FlaggedOrder:
    order_id: str
    state: OrderState


@dataclass(frozen=True)
class Rewound:
    ancestor: Cursor | None
    payments_removed: int
    orders_removed: int
    orders_flagged: list[FlaggedOrder]


class NotPayable(UserError):
    """A draft its owner cannot buy from credit now; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BoughtFromCredit:
    order_id: str
    price: int
    credit_left: int


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
        vending: bool = True,
    ) -> None:
        self.engine = engine
        self._read_engine = queries.read_only(engine)
        self.chain_id = chain_id
        self.catalog = catalog
        self.reorg_history = reorg_history
        self.max_orders_per_payment = max_orders_per_payment
        # Write order events to the outbox (only when MQTT is on: nobody drains it otherwise).
        self.events = events
        # Every full price of credit buys the plan on offer (the thesis's vending machine).
        self.vending = vending

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

    async def bind_chain(
        self,
        genesis_hash: str,
        token_address: str,
        *,
        token_deployed: bool,
        block_hash: Callable[[int], Awaitable[str | None]],
        name: str = "",
    ) -> None:
        """Record which chain (its genesis block) and token this ledger follows, or refuse
        another one: a dev chain restarted with the same id, a fork or a different token
        would otherwise look like a deep reorg and erase every payment. `block_hash(n)`
        reads the node's block n: a ledger from before this record existed is bound only
        if the node still has its cursor block."""
        where = name or "see 'watcher config'"
        async with self.engine.begin() as conn:
            await self._lock(conn)
            known = (
                await conn.execute(
                    select(ChainRecord.genesis_hash, ChainRecord.token_address).where(
                        ChainRecord.chain_id == self.chain_id
                    )
                )
            ).first()
            if known is not None and known.genesis_hash.lower() != genesis_hash.lower():
                raise ChainMismatch(
                    f"this ledger follows chain {self.chain_id} with genesis block "
                    f"{known.genesis_hash[:18]}..., but the node serves a chain with genesis "
                    f"{genesis_hash[:18]}... (a restarted dev chain?): use a new ledger for "
                    f"the new chain (WATCHER_DATABASE_URL), or delete this one ({where})"
                )
            if not token_deployed:
                raise ChainError(
                    f"there is no contract at the token address {token_address} on chain "
                    f"{self.chain_id} (WATCHER_TOKEN_ADDRESS): deployed on another chain, or "
                    "to another address?"
                )
            if known is not None:
                if known.token_address.lower() != token_address.lower():
                    raise ChainMismatch(
                        f"this ledger follows the token {known.token_address} on chain "
                        f"{self.chain_id}, not {token_address}: use a new ledger "
                        f"(WATCHER_DATABASE_URL) for another token ({where})"
                    )
                return
            cursor = await self._cursor(conn)
            if cursor is not None and await block_hash(cursor.number) != cursor.hash:
                raise ChainMismatch(
                    f"this ledger's last block {cursor.number} is not on the chain the node "
                    f"serves (a restarted dev chain?): use a new ledger (WATCHER_DATABASE_URL) "
                    f"or delete this one ({where})"
                )
            await conn.execute(
                insert(ChainRecord).values(
                    chain_id=self.chain_id,
                    genesis_hash=genesis_hash,
                    token_address=token_address,
                    created_at=_now(),
                )
            )

    async def record(
        self,
        payments: Sequence[Payment],
        *,
        advance_from: Cursor | None = None,
        advance_to: BlockRef | None = None,
        block_times: Mapping[int, datetime] | None = None,
        named: Mapping[tuple[str, int], str] | None = None,
    ) -> Recorded:
        """Record payments (in chain order) with their credit and orders; with
        `advance_to`, also move the cursor there, but only if it still is `advance_from`.
        `named` maps (tx hash, log index) of payments made through the Checkout to the
        order reference they name; `block_times` must then hold their blocks' times."""
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
                orders = await self._credit(conn, fresh, now, block_times or {}, named or {})
            if advance_to is not None:
                await self._advance(conn, advance_to, now)
        return Recorded(fresh, len(payments) - len(fresh), orders)

    async def rewind(self, ancestor: Cursor | None, floor: int = -1) -> Rewound:
        """Undo everything above `ancestor`, in one transaction, so that the ledger is what
        a replay up to `ancestor` would have made: orphaned payments leave credit, their
        orders that hold nothing in the cloud (queued, or failed and refunded) are deleted.
        Orders whose provisioning had started are kept but flagged unfunded (`reorged`):
        their price goes back to the payer's credit's books as if never spent, and the
        operator is told. If the same payment is mined again, it pays for them again.

        Orders bought from credit above `ancestor` had no payment of their own: their
        price is charged again to what credit the payer has left once the orphaned
        payments are gone (see `_recharge_credit_orders`)."""
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
                OrderRecord.tx_hash.is_not(None),
            )
            # Delete only what holds nothing, with the state in the statement itself: on
            # PostgreSQL a worker may mark an order launching concurrently, and the row is
            # then re-checked against this condition, not against an earlier read. (A
            # refund takes this chain's lock, so no order fails while this runs.)
            removable = (
                await conn.execute(
                    delete(OrderRecord)
                    .where(
                        orphan_orders,
                        OrderRecord.state.in_([OrderState.QUEUED.value, OrderState.FAILED.value]),
                    )
                    .returning(
                        OrderRecord.order_id,
                        OrderRecord.payer,
                        OrderRecord.amount,
                        OrderRecord.state,
                    )
                )
            ).all()
            flagged = (
                await conn.execute(
                    update(OrderRecord)
                    .where(orphan_orders)
                    .values(reorged=True, updated_at=now)
                    .returning(
                        OrderRecord.order_id,
                        OrderRecord.payer,
                        OrderRecord.amount,
                        OrderRecord.state,
                    )
                )
            ).all()
            # A drafted order undone with its payment: the draft is open again, for the
            # payment, mined again, to place it anew.
            for ids in _chunks([o.order_id for o in removable]):
                await self._reopen_drafts(
                    conn, ids, now, "the payment that placed it was undone by a reorg"
                )
            delta: dict[str, int] = defaultdict(int)
            for payer, amount in orphaned:
                delta[payer] -= amount
            for order in removable:
                if order.state == OrderState.QUEUED.value:
                    delta[order.payer] += order.amount
                # A failed order's price is in credit already (its refund).
            for order in flagged:
                # Unfunded now: its price is no longer spent out of this payer's payments.
                delta[order.payer] += order.amount
            undone, unfunded = await self._recharge_credit_orders(conn, above, delta, now)
            await self._recharge_lease_charges(conn, above, delta, now)
            removable = [*removable, *undone]
            flagged = [*flagged, *unfunded]
            if self.events:
                removed = [(self.chain_id, o.order_id, o.payer) for o in removable]
                await events.append_removed(conn, removed, now)
                await events.append_current(conn, [o.order_id for o in flagged], now)
            await conn.execute(
                delete(PaymentRecord).where(
                    PaymentRecord.chain_id == self.chain_id, PaymentRecord.block_number > above
                )
            )
            await accounts_apply(conn, self.chain_id, delta, now, drop_empty=True)
            await conn.execute(
                delete(BlockRecord).where(
                    BlockRecord.chain_id == self.chain_id, BlockRecord.number > above
                )
            )
            if ancestor is not None:
                await self._set_cursor(conn, ancestor, now)
            else:
                await conn.execute(delete(ChainCursor).where(ChainCursor.chain_id == self.chain_id))
        return Rewound(
            ancestor,
            len(orphaned),
            len(removable),
            [FlaggedOrder(o.order_id, OrderState(o.state)) for o in flagged],
        )

    async def spend_credit(
        self, owner: str, reference: str, now: datetime | None = None
    ) -> BoughtFromCredit:
        """Place the owner's open draft with their credit, no payment: its quoted price
        leaves the credit and becomes the order, in one transaction with the chain's
        writer lock (so no payment, reorg or refund moves that credit meanwhile).

        The order has no payment of its own; its block is the cursor's now. The credit
        came from payments at or below that block, so a reorg below it may have taken
        them: the rewind then undoes this order like one paid in that block (queued:
        deleted, its price back to credit and the draft open again; started: flagged
        unfunded for the operator). Buying a draft twice is refused, never charged."""
        now = now or _now()
        async with self.engine.begin() as conn:
            await self._lock(conn)
            draft = (
                await conn.execute(
                    select(DraftRecord).where(
                        DraftRecord.chain_id == self.chain_id,
                        DraftRecord.reference == reference.lower(),
                    )
                )
            ).first()
            if draft is None:
                raise NotPayable(f"no draft {reference}", 404)
            if draft.owner != owner:
                # As GET /api/drafts/REF answers: the draft is another wallet's.
                raise NotPayable("this draft belongs to another wallet", 403)
            if draft.state != DRAFT_OPEN:
                raise NotPayable(f"draft {reference} is already paid: order {draft.order_id}", 409)
            if now >= draft.expires_at:
                raise NotPayable(
                    f"the quote of draft {reference} ran out at "
                    f"{draft.expires_at:%Y-%m-%d %H:%M:%S} UTC: draft the order again for a "
                    "fresh quote",
                    409,
                )
            cursor = await self._cursor(conn)
            balance = (await accounts_balances(conn, self.chain_id, [owner])).get(owner, 0)
            if cursor is None or balance < draft.price:
                raise NotPayable(
                    f"your credit is {format_amount(max(balance, 0))} CTK and the order costs "
                    f"{format_amount(draft.price)} CTK: pay the difference through the "
                    "Checkout (credit is applied first)",
                    402,
                )
            plan = Plan.from_order(draft.plan, draft.price, draft.resource, draft.lease_terms)
            new_id = credit_order_id(self.chain_id, draft.reference)
            db = DbValues(conn)
            at = db.time(now)
            await bulk_insert(
                conn,
                OrderRecord.__table__,  # type: ignore[arg-type]
                _ORDER_COLUMNS,
                [
                    (
                        new_id,
                        self.chain_id,
                        None,
                        None,
                        0,
                        cursor.number,
                        owner,
                        db.amount(draft.price),
                        plan.name,
                        summary(plan.spec),
                        plan.resource(),
                        OrderState.QUEUED.value,
                        db.flag(False),
                        at,
                        at,
                        at,
                        plan.lease.to_json(),
                        draft.reference,
                        draft.periods,
                        draft.ssh_key,
                        draft.name,
                    )
                ],
            )
            left = (await accounts_apply(conn, self.chain_id, {owner: -draft.price}, now))[owner]
            await conn.execute(
                update(DraftRecord)
                .where(DraftRecord.reference == draft.reference)
                .values(state="placed", order_id=new_id, note=None)
            )
            if self.events:
                await events.append_current(conn, [new_id], now)
        return BoughtFromCredit(new_id, draft.price, left)

    # --- internals ---

    async def _fund_flagged_credit_orders(
        self,
        conn: AsyncConnection,
        rows: Sequence[Any],
        payments: Sequence[Payment],
        balances: dict[ChecksumAddress, int],
        now: datetime,
    ) -> None:
        """Orders bought from credit that a reorg left unfunded (`_recharge_credit_orders`;
        `rows`, oldest first) are funded again from their payers' new credit when it
        covers them: no payment of theirs will be mined again to do it. `balances` is
        updated."""
        funded: list[str] = []
        for row in rows:
            if balances.get(row.payer, 0) >= row.amount:
                balances[row.payer] -= row.amount
                block = max(p.block_number for p in payments if p.payer == row.payer)
                await conn.execute(
                    update(OrderRecord)
                    .where(OrderRecord.order_id == row.order_id)
                    .values(reorged=False, block_number=block, updated_at=now)
                )
                funded.append(row.order_id)
        if self.events and funded:
            await events.append_current(conn, funded, now)

    async def _recharge_lease_charges(
        self, conn: AsyncConnection, above: int, delta: dict[str, int], now: datetime
    ) -> None:
        """Lease extensions and renewals paid from credit after the reorg's common block,
        charged again to the credit left (after the orphaned payments and the orders bought
        from credit): what it covers stays, anchored at `above`; the rest is undone, the
        newest first, the lease's paid time shortened by what was undone (the scheduler
        sees its new end at once, and warns before it). Updates `delta`."""
        charges = (
            await conn.execute(
                select(LeaseChargeRecord)
                .where(
                    LeaseChargeRecord.chain_id == self.chain_id,
                    LeaseChargeRecord.block_number > above,
                )
                .order_by(LeaseChargeRecord.id.desc())
            )
        ).all()
        if not charges:
            return
        payers = list(dict.fromkeys(c.payer for c in charges))
        balances = await accounts_balances(conn, self.chain_id, payers)
        short = {p: balances.get(p, 0) + delta.get(p, 0) for p in payers}
        for charge in charges:
            if short[charge.payer] >= 0:
                continue
            order = (
                await conn.execute(
                    select(OrderRecord).where(OrderRecord.order_id == charge.order_id)
                )
            ).first()
            undone = 0
            if order is not None and order.lease_terms is not None:
                period = LeaseTerms.from_json(order.lease_terms).period
                held = order.periods or 1
                # What the lease still holds of it: a cancellation since may have given
                # some back already; never below the period first bought.
                count = min(charge.periods, held - 1)
                undone = count * (order.amount // held)
                await conn.execute(
                    update(OrderRecord)
                    .where(OrderRecord.order_id == charge.order_id)
                    .values(
                        periods=held - count,
                        amount=order.amount - undone,
                        paid_until=order.paid_until - period * count
                        if order.paid_until is not None
                        else None,
                        due_at=now,
                        updated_at=now,
                    )
                )
            await conn.execute(delete(LeaseChargeRecord).where(LeaseChargeRecord.id == charge.id))
            short[charge.payer] += undone
            delta[charge.payer] += undone
        await conn.execute(
            update(LeaseChargeRecord)
            .where(
                LeaseChargeRecord.chain_id == self.chain_id,
                LeaseChargeRecord.block_number > above,
            )
            .values(block_number=above)
        )

    async def _recharge_credit_orders(
        self, conn: AsyncConnection, above: int, delta: dict[str, int], now: datetime
    ) -> tuple[list[Any], list[Any]]:
        """A reorg down to `above` took payments; orders bought from credit after it had
        their price from credit those payments may have made. Each payer's credit left
        (their balance plus `delta`, the rewind's change so far) pays for them again: if
        it covers them all, they stay, now anchored at `above` (a deeper reorg looks at
        them again). Otherwise they are undone until it does, those that hold nothing
        first (queued: deleted, the draft open again), then started ones (flagged unfunded
        for the operator, and funded again from credit by a later payment that covers
        them, `_refund_credit_orders`). Updates `delta`; returns (deleted, flagged) rows
        as the rewind reports them. Never a debt, never a price charged twice."""
        rows = (
            await conn.execute(
                select(
                    OrderRecord.order_id,
                    OrderRecord.payer,
                    OrderRecord.amount,
                    OrderRecord.state,
                )
                .where(
                    OrderRecord.chain_id == self.chain_id,
                    OrderRecord.block_number > above,
                    OrderRecord.reorged.is_(False),
                    OrderRecord.tx_hash.is_(None),
                    OrderRecord.state != OrderState.FAILED.value,  # its price is credit again
                )
                .order_by(OrderRecord.created_at.desc())
            )
        ).all()
        if not rows:
            return [], []
        payers = list(dict.fromkeys(r.payer for r in rows))
        balances = await accounts_balances(conn, self.chain_id, payers)
        short = {p: balances.get(p, 0) + delta.get(p, 0) for p in payers}
        deleted: list[Any] = []
        flagged: list[Any] = []
        # Holding nothing first; within each, the newest purchase first.
        for row in sorted(rows, key=lambda r: r.state != OrderState.QUEUED.value):
            if short[row.payer] >= 0:
                continue
            gone = None
            if row.state == OrderState.QUEUED.value:
                gone = (
                    await conn.execute(
                        delete(OrderRecord)
                        .where(
                            OrderRecord.order_id == row.order_id,
                            OrderRecord.state == OrderState.QUEUED.value,
                        )
                        .returning(
                            OrderRecord.order_id,
                            OrderRecord.payer,
                            OrderRecord.amount,
                            OrderRecord.state,
                        )
                    )
                ).first()
            if gone is not None:
                deleted.append(gone)
                await self._reopen_drafts(
                    conn,
                    [row.order_id],
                    now,
                    "a reorg took the payments the credit that bought it came from: the "
                    "credit is back as far as the chain still holds it",
                )
            else:  # started (or started meanwhile): it holds a resource; keep and flag it
                marked = (
                    await conn.execute(
                        update(OrderRecord)
                        .where(OrderRecord.order_id == row.order_id)
                        .values(reorged=True, updated_at=now)
                        .returning(
                            OrderRecord.order_id,
                            OrderRecord.payer,
                            OrderRecord.amount,
                            OrderRecord.state,
                        )
                    )
                ).one()
                flagged.append(marked)
            short[row.payer] += row.amount
            delta[row.payer] += row.amount
        kept = [
            r.order_id for r in rows if r.order_id not in {o.order_id for o in deleted + flagged}
        ]
        for ids in _chunks(kept):
            await conn.execute(
                update(OrderRecord).where(OrderRecord.order_id.in_(ids)).values(block_number=above)
            )
        return deleted, flagged

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

    async def _credit(
        self,
        conn: AsyncConnection,
        payments: list[Payment],
        now: datetime,
        block_times: Mapping[int, datetime],
        named: Mapping[tuple[str, int], str],
    ) -> list[NewOrder]:
        payers = list(dict.fromkeys(p.payer for p in payments))
        stored = await accounts_balances(conn, self.chain_id, payers)
        unfunded, unfunded_from_credit = await self._unfunded_orders(conn, payments)
        kept, replaced = match_unfunded(payments, unfunded)
        # Failed unfunded orders of these payments hold nothing: they are bought afresh
        # (a drafted one is open again, for its payment to place it anew).
        for ids in _chunks(replaced):
            await self._reopen_drafts(conn, ids, now, None)
            await conn.execute(delete(OrderRecord).where(OrderRecord.order_id.in_(ids)))
        mine: dict[tuple[str, int], str] = {}
        if named:  # only payments made through the Checkout name an order
            fresh_keys = {(p.tx_hash, p.log_index) for p in payments}
            mine = {key: ref for key, ref in named.items() if key in fresh_keys}
        decisions: dict[tuple[str, int], Decision] = {}
        decider = await self._decider(conn, mine, kept, block_times, decisions)
        pricing = credit_payments(
            {p: stored[p] for p in payers if p in stored},
            payments,
            self.catalog.default_plan,
            self.max_orders_per_payment,
            kept,
            decider,
            vending=self.vending,
        )
        await self._settle_drafts(conn, mine, decisions, pricing.orders)
        if unfunded_from_credit:
            await self._fund_flagged_credit_orders(
                conn, unfunded_from_credit, payments, pricing.balances, now
            )
        await accounts_set(
            conn,
            self.chain_id,
            {payer: pricing.balances[payer] for payer in payers},
            now,
        )
        kept_ids = {order_id for units in kept.values() for order_id, _ in units.values()}
        relinked = [o for o in pricing.orders if o.order_id in kept_ids]
        for order in relinked:
            # Funded again, by the payment as it is now mined: its block and log index
            # (a later reorg finds its orders by block).
            await conn.execute(
                update(OrderRecord)
                .where(OrderRecord.order_id == order.order_id)
                .values(
                    reorged=False,
                    log_index=order.payment.log_index,
                    block_number=order.payment.block_number,
                    paid_at=block_times.get(order.payment.block_number),
                    updated_at=now,
                )
            )
        new = [o for o in pricing.orders if o.order_id not in kept_ids]
        await self._insert_orders(conn, new, now, block_times)
        if self.events and relinked:
            await events.append_current(conn, [o.order_id for o in relinked], now)
        return pricing.orders

    async def _decider(
        self,
        conn: AsyncConnection,
        named: Mapping[tuple[str, int], str],
        kept: Mapping[tuple[str, int], object],
        block_times: Mapping[int, datetime],
        decisions: dict[tuple[str, int], Decision],
    ) -> Callable[[Payment, int], Named | None] | None:
        """What each payment naming an order does, decided by pricing in chain order with
        its payer's balance just before it (a second payment for the same draft finds it
        placed; credit covers a short one); each decision is kept in `decisions`. A
        payment mined again that already placed its order before a reorg keeps that order
        (pricing's `kept`): no new decision."""
        if not named:
            return None
        rows: list[Any] = []
        for refs in _chunks(sorted(set(named.values()))):
            rows += (
                await conn.execute(
                    select(DraftRecord).where(
                        DraftRecord.chain_id == self.chain_id, DraftRecord.reference.in_(refs)
                    )
                )
            ).all()
        drafts = {
            r.reference: Placement(
                plan=Plan.from_order(r.plan, r.price, r.resource, r.lease_terms),
                terms=OrderTerms(r.reference, r.periods, r.ssh_key, r.name),
                expires_at=r.expires_at,
                open=r.state == DRAFT_OPEN,
                owner=r.owner,
            )
            for r in rows
        }

        def decider(payment: Payment, balance: int) -> Named | None:
            key = (payment.tx_hash, payment.log_index)
            reference = named.get(key)
            if reference is None:
                return None
            if key in kept:
                decisions[key] = Decision(None, payment.amount, None)
                return decisions[key].named()
            paid_at = block_times.get(payment.block_number)
            if paid_at is None:
                raise ValueError(f"no time for block {payment.block_number} of a named payment")
            decision = decide(payment, reference, drafts, paid_at, balance)
            if decision.placement is not None:
                drafts[reference] = replace(decision.placement, open=False)
            decisions[key] = decision
            return decision.named()

        return decider

    async def _settle_drafts(
        self,
        conn: AsyncConnection,
        named: Mapping[tuple[str, int], str],
        decisions: Mapping[tuple[str, int], Decision],
        orders: Sequence[NewOrder],
    ) -> None:
        """Mark placed drafts with their order; note on the others why a payment naming
        them went to credit instead."""
        if not decisions:
            return
        placed = {o.terms.reference: o.order_id for o in orders if o.terms is not None}
        for reference, order in placed.items():
            await conn.execute(
                update(DraftRecord)
                .where(DraftRecord.reference == reference)
                .values(state="placed", order_id=order, note=None)
            )
        for key, decision in decisions.items():
            if decision.reason is None or named[key] in placed:
                continue  # a draft placed in this batch keeps no note of another payment
            await conn.execute(
                update(DraftRecord)
                .where(DraftRecord.reference == named[key])
                .values(note=f"{decision.reason}: credited to the payer")
            )

    async def _reopen_drafts(
        self, conn: AsyncConnection, order_ids: Sequence[str], now: datetime, note: str | None
    ) -> None:
        """Drafts whose orders are gone (a reorg undid the payment that placed them) are
        open again: the payment, mined again, places them anew."""
        await conn.execute(
            update(DraftRecord)
            .where(DraftRecord.order_id.in_(order_ids))
            .values(state=DRAFT_OPEN, order_id=None, note=note)
        )

    async def _unfunded_orders(
        self, conn: AsyncConnection, payments: Sequence[Payment]
    ) -> tuple[list[UnfundedOrder], list[Any]]:
        """Orders a reorg left unfunded (few, usually none; indexed: chain id, reorged):
        those these payments' transactions had bought, and those these payments' payers
        had bought from credit (rows, oldest first)."""
        rows = (
            await conn.execute(
                select(
                    OrderRecord.order_id,
                    OrderRecord.tx_hash,
                    OrderRecord.log_index,
                    OrderRecord.unit,
                    OrderRecord.payer,
                    OrderRecord.amount,
                    OrderRecord.state,
                )
                .where(OrderRecord.chain_id == self.chain_id, OrderRecord.reorged.is_(True))
                .order_by(OrderRecord.created_at)
            )
        ).all()
        if not rows:
            return [], []
        txs = {p.tx_hash.lower() for p in payments}
        payers = {p.payer for p in payments}
        from_credit = [
            r
            for r in rows
            if r.tx_hash is None and r.payer in payers and r.state != OrderState.FAILED.value
        ]
        return [
            UnfundedOrder(
                r.order_id,
                r.tx_hash,
                r.log_index,
                r.unit,
                r.payer,
                r.amount,
                r.state == OrderState.FAILED.value,
            )
            for r in rows
            # An order bought from credit has no payment to be mined again.
            if r.tx_hash is not None and r.tx_hash.lower() in txs
        ], from_credit

    async def _insert_orders(
        self,
        conn: AsyncConnection,
        orders: list[NewOrder],
        now: datetime,
        block_times: Mapping[int, datetime],
    ) -> None:
        if not orders:
            return
        db = DbValues(conn)
        at, queued, no = db.time(now), OrderState.QUEUED.value, db.flag(False)
        paid = {number: db.time(moment) for number, moment in block_times.items()}
        # What a plan puts in every order's row, worked out once per plan (a batch has
        # one or two plans and tens of thousands of orders).
        plans: dict[Plan, tuple[Any, str, str, str, str]] = {}
        for plan in {o.plan for o in orders}:
            plans[plan] = (
                db.amount(plan.price),
                plan.name,
                summary(plan.spec),
                plan.resource(),
                plan.lease.to_json(),
            )
        rows: list[tuple[Any, ...]] = []
        for o in orders:
            p = o.payment
            amount, name, shown, resource, lease_terms = plans[o.plan]
            rows.append(
                (
                    o.order_id,
                    p.chain_id,
                    p.tx_hash,
                    p.log_index,
                    o.unit,
                    p.block_number,
                    p.payer,
                    amount,
                    name,
                    shown,
                    resource,
                    queued,
                    no,
                    at,
                    at,
                    paid.get(p.block_number),
                    lease_terms,
                )
            )
        columns = _ORDER_COLUMNS[: len(rows[0])]
        if any(o.terms is not None for o in orders):
            # Drafted orders (few) add their terms; a batch without any binds four columns
            # fewer per row, which a replay of tens of thousands of orders notices.
            columns = _ORDER_COLUMNS
            rows = [
                (
                    *row,
                    *(
                        (t.reference, t.periods, t.ssh_key, t.name)
                        if (t := o.terms)
                        else (None,) * 4
                    ),
                )
                for row, o in zip(rows, orders, strict=True)
            ]
        await bulk_insert(conn, OrderRecord.__table__, columns, rows)  # type: ignore[arg-type]
        # No jobs row: a queued order is its own launch job until a worker claims it
        # (ledger/jobs.py). A row per order, with its three indexes and foreign key, was a
        # quarter of a replay's time on SQLite and a third on PostgreSQL (`make bench`).
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
