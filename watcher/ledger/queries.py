"""Read views of the ledger for the CLI, the API and tests. Reads take no write lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watcher.addresses import to_checksum_address
from watcher.core.order import OrderState
from watcher.core.payment import Payment
from watcher.ledger.schema import CreditRecord, OrderRecord, PaymentRecord


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
        }


@dataclass(frozen=True)
class CreditView:
    chain_id: int
    payer: str
    balance: int
    plan: str
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "payer": self.payer,
            "balance": str(self.balance),
            "plan": self.plan,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class Totals:
    """Where every paid base unit is: paid == credit + ordered (a failed order's price is
    back in credit, so only orders that did not fail count as ordered)."""

    paid: int
    credit: int
    ordered: int


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
    query = select(OrderRecord)
    if chain_id is not None:
        query = query.where(OrderRecord.chain_id == chain_id)
    if payer is not None:
        query = query.where(OrderRecord.payer == payer)
    query = query.order_by(
        OrderRecord.chain_id, OrderRecord.block_number, OrderRecord.log_index, OrderRecord.unit
    )
    async with _reader(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [order_view(r) for r in rows]


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
    )


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
    return [CreditView(r.chain_id, r.payer, r.balance, r.plan, r.updated_at) for r in rows]


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
    async with _reader(engine) as conn:
        paid = (
            await conn.execute(
                select(PaymentRecord.amount).where(PaymentRecord.chain_id == chain_id)
            )
        ).scalars()
        paid_total = sum(paid)
        credit = (
            await conn.execute(
                select(CreditRecord.balance).where(CreditRecord.chain_id == chain_id)
            )
        ).scalars()
        credit_total = sum(credit)
        ordered = (
            await conn.execute(
                select(OrderRecord.amount).where(
                    OrderRecord.chain_id == chain_id, OrderRecord.state != OrderState.FAILED.value
                )
            )
        ).scalars()
        ordered_total = sum(ordered)
    return Totals(paid_total, credit_total, ordered_total)
