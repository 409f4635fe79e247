"""Drafted orders in the ledger database: written when a signed-in owner asks for one, read
back by their owner (and, once checkout payments are followed, by the follower, which
places the order a payment names)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger.queries import read_only
from watcher.adapters.ledger.schema import DraftRecord
from watcher.domain.drafts import DraftTerms, Quote, new_reference
from watcher.domain.pricing import credit_order_id

OPEN = "open"


@dataclass(frozen=True)
class Draft:
    reference: str
    chain_id: int
    owner: str
    plan: str
    resource: str
    periods: int
    unit_price: int
    price: int
    ssh_key: str
    ssh_fingerprint: str
    name: str | None
    state: str
    order_id: str | None
    created_at: datetime
    expires_at: datetime
    # What the last payment naming it did, when it did not place it.
    note: str | None = None
    # The plan's lease terms when drafted (LeaseTerms.to_json).
    lease_terms: str | None = None

    def expired(self, now: datetime) -> bool:
        """An open draft whose quote ran out: paying it now makes credit, not an order."""
        return self.state == OPEN and now >= self.expires_at


_FIELDS = tuple(Draft.__dataclass_fields__)


class Drafts:
    def __init__(self, engine: AsyncEngine, chain_id: int) -> None:
        self.engine = engine
        self.chain_id = chain_id

    async def create(self, owner: str, terms: DraftTerms, quote: Quote, now: datetime) -> Draft:
        draft = Draft(
            reference=new_reference(),
            chain_id=self.chain_id,
            owner=owner,
            plan=terms.plan.name,
            resource=terms.plan.resource(),
            periods=terms.periods,
            unit_price=quote.unit_price,
            price=quote.price,
            ssh_key=terms.ssh_key.line(),
            ssh_fingerprint=terms.ssh_key.fingerprint,
            name=terms.name,
            state=OPEN,
            order_id=None,
            created_at=now,
            expires_at=quote.expires_at,
            lease_terms=terms.plan.lease.to_json(),
        )
        async with self.engine.begin() as conn:
            await conn.execute(insert(DraftRecord).values(**draft.__dict__))
        return draft

    async def of_owner(self, owner: str) -> list[Draft]:
        """The owner's drafts, newest first."""
        query = (
            select(*(getattr(DraftRecord, name) for name in _FIELDS))
            .where(DraftRecord.chain_id == self.chain_id, DraftRecord.owner == owner)
            .order_by(DraftRecord.created_at.desc())
        )
        async with read_only(self.engine).connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Draft(**row._asdict()) for row in rows]

    async def open_count(self, owner: str, now: datetime) -> int:
        """The owner's drafts still waiting for payment (open, quote not run out)."""
        query = select(func.count()).where(
            DraftRecord.chain_id == self.chain_id,
            DraftRecord.owner == owner,
            DraftRecord.state == OPEN,
            DraftRecord.expires_at > now,
        )
        async with read_only(self.engine).connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def get(self, reference: str) -> Draft | None:
        query = select(*(getattr(DraftRecord, name) for name in _FIELDS)).where(
            DraftRecord.reference == reference.lower(), DraftRecord.chain_id == self.chain_id
        )
        async with read_only(self.engine).connect() as conn:
            row = (await conn.execute(query)).first()
        return Draft(**row._asdict()) if row is not None else None


async def copy_unplaced(source: AsyncEngine, target: AsyncEngine, chain_id: int) -> int:
    """Every draft of `source`, as it was before any payment (open, no order, no note),
    into `target`: what a replay from the chain needs to place them again as the ledger
    did (drafts are not on chain). `watcher audit` replays into such a copy. A draft its
    owner bought from credit stays placed: no payment placed it, and one naming it later
    found it paid."""
    query = select(*(getattr(DraftRecord, name) for name in _FIELDS)).where(
        DraftRecord.chain_id == chain_id
    )
    async with read_only(source).connect() as conn:
        rows = (await conn.execute(query)).all()
    fresh = [
        {**row._asdict(), "state": OPEN, "order_id": None, "note": None}
        if row.order_id != credit_order_id(chain_id, row.reference)
        else {**row._asdict(), "note": None}
        for row in rows
    ]
    if fresh:
        async with target.begin() as conn:
            await conn.execute(insert(DraftRecord), fresh)
    return len(fresh)
