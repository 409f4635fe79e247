"""Read views of the ledger for the CLI, the API and tests. Reads take no write lock."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watcher.addresses import to_checksum_address
from watcher.core.payment import Payment
from watcher.core.provisioning import public_reason
from watcher.ledger import accounts
from watcher.ledger.accounts import Totals
from watcher.ledger.schema import (
    ChainCursor,
    CreditRecord,
    OrderRecord,
    PaymentRecord,
    ProvisionJobRecord,
)

# What the public API shows of an order's resource specification.
PUBLIC_RESOURCE_KEYS = ("kind", "instance_type")


@dataclass(frozen=True)
class OrderView:
    order_id: str
    chain_id: int
    tx_hash: str
    log_index: int
    unit: int
    block_number: int
    payer: str
    amount: int
    plan: str
    instance_type: str
    state: str
    instance_id: str | None
    launched_at: datetime | None
    paid_at: datetime | None
    reorged: bool
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    # How provisioning goes, from the order's job (None where the view was read without
    # it, as in the MQTT snapshots): attempts so far, why the last one failed, when the
    # next one is due, and whether the order waits longer than OVERDUE_AFTER.
    attempts: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    overdue: bool = False
    # The resource specification the order paid for (JSON text; None before 0005).
    resource: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "chain_id": self.chain_id,
            "tx_hash": self.tx_hash,
            "log_index": self.log_index,
            "unit": self.unit,
            "block_number": self.block_number,
            "payer": self.payer,
            "amount": str(self.amount),
            "plan": self.plan,
            "instance_type": self.instance_type,
            "state": self.state,
            "instance_id": self.instance_id,
            "launched_at": self.launched_at.isoformat() if self.launched_at else None,
            "paid_at": self.paid_at.isoformat() if self.paid_at else None,
            "reorged": self.reorged,
            "failure_reason": self.failure_reason,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "overdue": self.overdue,
            "resource": json.loads(self.resource) if self.resource else None,
        }

    def as_public_json(self) -> dict[str, Any]:
        """`as_json` for anyone who names the payer (the web API): why provisioning failed
        as a code and a class in plain words instead of the cloud's or the database's own
        text (account ids, ARNs, internal hosts), and of the resource only its kind and
        instance type (not the operator's AMI, subnet, security groups, key pair). The
        operator's views (`watcher orders`) keep everything."""
        shown = self.as_json()
        shown["last_error"] = public_reason(self.last_error)
        shown["failure_reason"] = public_reason(self.failure_reason)
        resource = shown["resource"]
        if isinstance(resource, dict):
            shown["resource"] = {key: resource.get(key) for key in PUBLIC_RESOURCE_KEYS}
        return shown


# A paid order whose job is still pending after this long is overdue ("stuck"): the pages
# say so, /api/health degrades, and deploy/alerts.yml's PaymentsNotFulfilled pages at the
# same 10 minutes.
OVERDUE_AFTER = timedelta(minutes=10)
# A pending job whose last attempt failed and that has been tried this often keeps failing:
# one throttled call is routine, three in a row (with backoff between them) are not.
FAILING_AFTER_ATTEMPTS = 3
# The job queue's states (watcher/ledger/jobs.py, which imports this module).
_QUEUED, _CLAIMED = "queued", "claimed"
_PENDING = (_QUEUED, _CLAIMED)


@dataclass(frozen=True)
class JobHealth:
    """The provisioning queue at a glance, for /api/health and the metrics."""

    pending: int  # queued (maybe in backoff) or claimed
    # The next three leave out orders flagged `reorged` (held on purpose; see job_health).
    overdue: int  # pending for longer than OVERDUE_AFTER
    retrying: int  # pending, and its last attempt failed
    failing: int  # retrying, tried at least FAILING_AFTER_ATTEMPTS times
    oldest_created_at: datetime | None  # of the pending jobs


@dataclass(frozen=True)
class CreditView:
    chain_id: int
    payer: str
    balance: int
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "payer": self.payer,
            "balance": str(self.balance),
            "updated_at": self.updated_at.isoformat(),
        }


async def lock_chain(conn: AsyncConnection, chain_id: int) -> None:
    """Serialize the writers of one chain's payments and credit for this transaction
    (PostgreSQL; SQLite's BEGIN IMMEDIATE already lets one writer in at a time)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 0x57A7C4 ^ chain_id})


def _reader(engine: AsyncEngine) -> AsyncConnection:
    return read_only(engine).connect()


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """An engine whose transactions read one consistent snapshot and take no write lock:
    REPEATABLE READ on PostgreSQL (READ COMMITTED would let a total mix two commits);
    a deferred transaction on SQLite, which in WAL mode reads one snapshot."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(read_only=True, isolation_level="REPEATABLE READ")
    return engine.execution_options(read_only=True)


async def orders(
    engine: AsyncEngine, chain_id: int | None = None, payer: str | None = None
) -> list[OrderView]:
    """Orders with how their provisioning goes (attempts, last error, next try, overdue)."""
    job = ProvisionJobRecord
    query = select(
        OrderRecord,
        job.state.label("job_state"),
        job.attempts,
        job.available_at,
        job.last_error,
        job.created_at.label("job_created_at"),
    ).outerjoin(job, job.order_id == OrderRecord.order_id)
    if chain_id is not None:
        query = query.where(OrderRecord.chain_id == chain_id)
    if payer is not None:
        query = query.where(OrderRecord.payer == payer)
    query = query.order_by(
        OrderRecord.chain_id, OrderRecord.block_number, OrderRecord.log_index, OrderRecord.unit
    )
    async with _reader(engine) as conn:
        rows = (await conn.execute(query)).all()
    now = datetime.now(UTC)
    return [_with_job(order_view(r), r, now) for r in rows]


def _with_job(order: OrderView, r: Any, now: datetime) -> OrderView:
    """Add the order's job (an outer-joined `provision_jobs` row in `r`) to its view."""
    if r.job_state is None:
        return order
    pending = r.job_state in _PENDING
    return replace(
        order,
        attempts=r.attempts,
        last_error=r.last_error,
        # A claimed job is being worked on now; a finished one has no next attempt.
        next_attempt_at=r.available_at if r.job_state == _QUEUED else None,
        # Held for a reorg, an order is not stuck: see job_health.
        overdue=pending and not order.reorged and _as_utc(r.job_created_at) < now - OVERDUE_AFTER,
    )


def _as_utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def order_view(r: Any) -> OrderView:
    """An OrderView from an `orders` row."""
    return OrderView(
        order_id=r.order_id,
        chain_id=r.chain_id,
        tx_hash=r.tx_hash,
        log_index=r.log_index,
        unit=r.unit,
        block_number=r.block_number,
        payer=r.payer,
        amount=r.amount,
        plan=r.plan,
        instance_type=r.instance_type,
        state=r.state,
        instance_id=r.instance_id,
        launched_at=r.launched_at,
        paid_at=r.paid_at,
        reorged=r.reorged,
        failure_reason=r.failure_reason,
        created_at=r.created_at,
        updated_at=r.updated_at,
        resource=r.resource,
    )


async def job_health(engine: AsyncEngine, chain_id: int | None = None) -> JobHealth:
    """Pending, overdue, retrying and failing provisioning jobs (of one chain, or all).

    An order whose payment a reorg orphaned (`reorged`) is pending but counts as none of
    the other three: its job is held on purpose until the payment is mined again, and is
    released with a reason every few seconds meanwhile. Counted, it would keep /api/health
    degraded for ever; it has its own alert (ProvisionedOrderReorged) instead."""
    job = ProvisionJobRecord
    overdue_before = datetime.now(UTC) - OVERDUE_AFTER
    funded = OrderRecord.reorged.is_(False)
    retrying = funded & job.last_error.is_not(None)

    def count(condition: Any) -> Any:
        # SUM(CASE) rather than COUNT(*) FILTER: one spelling for both databases.
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    query = (
        select(
            func.count(),
            count(funded & (job.created_at < overdue_before)),
            count(retrying),
            count(retrying & (job.attempts >= FAILING_AFTER_ATTEMPTS)),
            func.min(job.created_at),
        )
        .join(OrderRecord, OrderRecord.order_id == job.order_id)
        .where(job.state.in_(_PENDING))
    )
    if chain_id is not None:
        query = query.where(OrderRecord.chain_id == chain_id)
    async with _reader(engine) as conn:
        pending, overdue, retrying_count, failing, oldest = (await conn.execute(query)).one()
    return JobHealth(
        pending=int(pending),
        overdue=int(overdue),
        retrying=int(retrying_count),
        failing=int(failing),
        oldest_created_at=_as_utc(oldest) if oldest is not None else None,
    )


async def cursor_block(engine: AsyncEngine, chain_id: int) -> int | None:
    """The last block whose payments are all in the ledger (None before the first step)."""
    query = select(ChainCursor.block_number).where(ChainCursor.chain_id == chain_id)
    async with _reader(engine) as conn:
        block: int | None = (await conn.execute(query)).scalar_one_or_none()
    return block


async def credits(
    engine: AsyncEngine, chain_id: int | None = None, payer: str | None = None
) -> list[CreditView]:
    query = select(CreditRecord)
    if chain_id is not None:
        query = query.where(CreditRecord.chain_id == chain_id)
    if payer is not None:
        query = query.where(CreditRecord.payer == payer)
    async with _reader(engine) as conn:
        rows = (await conn.execute(query.order_by(CreditRecord.chain_id, CreditRecord.payer))).all()
    return [CreditView(r.chain_id, r.payer, r.balance, r.updated_at) for r in rows]


async def payments(engine: AsyncEngine, chain_id: int) -> list[Payment]:
    query = (
        select(PaymentRecord)
        .where(PaymentRecord.chain_id == chain_id)
        .order_by(PaymentRecord.block_number, PaymentRecord.log_index)
    )
    async with _reader(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [
        Payment(
            r.chain_id,
            r.tx_hash,
            r.log_index,
            r.block_number,
            r.block_hash,
            to_checksum_address(r.payer),
            r.amount,
        )
        for r in rows
    ]


async def totals(engine: AsyncEngine, chain_id: int) -> Totals:
    """The money invariant's figures, read in one snapshot (see accounts.Totals)."""
    async with _reader(engine) as conn:
        return await accounts.totals(conn, chain_id)


@dataclass(frozen=True)
class LedgerSnapshot:
    """What `watcher audit` compares, read in one consistent snapshot (a busy `watcher run`
    beside it must not make a payment and its orders look apart)."""

    cursor: int | None
    payments: list[Payment]
    orders: list[OrderView]
    credit: dict[str, int]
    genesis_hash: str | None


async def ledger_snapshot(engine: AsyncEngine, chain_id: int) -> LedgerSnapshot:
    from watcher.ledger.schema import ChainRecord

    async with _reader(engine) as conn:
        cursor = (
            await conn.execute(
                select(ChainCursor.block_number).where(ChainCursor.chain_id == chain_id)
            )
        ).scalar_one_or_none()
        payment_rows = (
            await conn.execute(
                select(PaymentRecord)
                .where(PaymentRecord.chain_id == chain_id)
                .order_by(PaymentRecord.block_number, PaymentRecord.log_index)
            )
        ).all()
        order_rows = (
            await conn.execute(select(OrderRecord).where(OrderRecord.chain_id == chain_id))
        ).all()
        credit = dict(
            (
                await conn.execute(
                    select(CreditRecord.payer, CreditRecord.balance).where(
                        CreditRecord.chain_id == chain_id
                    )
                )
            ).all()
        )
        genesis = (
            await conn.execute(
                select(ChainRecord.genesis_hash).where(ChainRecord.chain_id == chain_id)
            )
        ).scalar_one_or_none()
    payments = [
        Payment(
            r.chain_id,
            r.tx_hash,
            r.log_index,
            r.block_number,
            r.block_hash,
            to_checksum_address(r.payer),
            r.amount,
        )
        for r in payment_rows
    ]
    return LedgerSnapshot(cursor, payments, [order_view(r) for r in order_rows], credit, genesis)
