"""Webhook deliveries in the ledger: each endpoint's cursor into the order events outbox
(the last event it has received) and the log of every attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger.queries import read_only
from watcher.adapters.ledger.schema import (
    OrderEventRecord,
    WebhookAttemptRecord,
    WebhookCursorRecord,
)


@dataclass(frozen=True)
class OutboxEvent:
    event_id: int
    payload: str  # the order's public JSON at that change
    created_at: datetime


@dataclass(frozen=True)
class Attempt:
    endpoint: str
    event_id: int
    attempt: int
    ok: bool
    status_code: int | None
    error: str | None
    redelivery: bool
    at: datetime


class WebhookLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def cursor(self, endpoint: str) -> int | None:
        """The last event delivered to the endpoint; None before its first delivery."""
        async with read_only(self.engine).connect() as conn:
            return (
                await conn.execute(
                    select(WebhookCursorRecord.last_event_id).where(
                        WebhookCursorRecord.endpoint == endpoint
                    )
                )
            ).scalar_one_or_none()

    async def start_at_newest(self, endpoint: str) -> None:
        """A new endpoint starts with the events from now on (not the whole history)."""
        async with self.engine.begin() as conn:
            newest = (
                await conn.execute(
                    select(OrderEventRecord.id).order_by(OrderEventRecord.id.desc()).limit(1)
                )
            ).scalar_one_or_none()
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            await conn.execute(
                dialect.insert(WebhookCursorRecord)
                .values(endpoint=endpoint, last_event_id=newest or 0, updated_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=["endpoint"])
            )

    async def after(self, event_id: int, limit: int = 100) -> list[OutboxEvent]:
        async with read_only(self.engine).connect() as conn:
            rows = await conn.execute(
                select(OrderEventRecord.id, OrderEventRecord.payload, OrderEventRecord.created_at)
                .where(OrderEventRecord.id > event_id)
                .order_by(OrderEventRecord.id)
                .limit(limit)
            )
            return [OutboxEvent(r.id, r.payload, r.created_at) for r in rows.all()]

    async def event(self, event_id: int) -> OutboxEvent | None:
        found = await self.after(event_id - 1, limit=1)
        return found[0] if found and found[0].event_id == event_id else None

    async def record(self, attempt: Attempt) -> None:
        """Log the attempt (a delivered one counts as delivered: see `delivered`)."""
        async with self.engine.begin() as conn:
            await conn.execute(insert(WebhookAttemptRecord).values(**attempt.__dict__))

    async def delivered(self, endpoint: str, after: int) -> set[int]:
        """The events after `after` already delivered to the endpoint (not counting
        redeliveries on request)."""
        async with read_only(self.engine).connect() as conn:
            rows = await conn.execute(
                select(WebhookAttemptRecord.event_id).where(
                    WebhookAttemptRecord.endpoint == endpoint,
                    WebhookAttemptRecord.event_id > after,
                    WebhookAttemptRecord.ok.is_(True),
                    WebhookAttemptRecord.redelivery.is_(False),
                )
            )
            return {int(r[0]) for r in rows.all()}

    async def move_cursor(self, endpoint: str, event_id: int, at: datetime) -> None:
        """Every event up to `event_id` is delivered and settled: never moves back."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(WebhookCursorRecord)
                .where(
                    WebhookCursorRecord.endpoint == endpoint,
                    WebhookCursorRecord.last_event_id < event_id,
                )
                .values(last_event_id=event_id, updated_at=at)
            )

    async def tries(self, endpoint: str, event_id: int) -> int:
        """How often the event was sent to the endpoint so far."""
        async with read_only(self.engine).connect() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count()).where(
                            WebhookAttemptRecord.endpoint == endpoint,
                            WebhookAttemptRecord.event_id == event_id,
                        )
                    )
                ).scalar_one()
            )

    async def attempts(self, endpoint: str | None = None, limit: int = 50) -> list[Attempt]:
        """The newest attempts first."""
        query = select(WebhookAttemptRecord).order_by(WebhookAttemptRecord.id.desc()).limit(limit)
        if endpoint is not None:
            query = query.where(WebhookAttemptRecord.endpoint == endpoint)
        async with read_only(self.engine).connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Attempt(
                r.endpoint, r.event_id, r.attempt, r.ok, r.status_code, r.error, r.redelivery, r.at
            )
            for r in rows
        ]
