"""The provisioning job queue, in the ledger database (no extra broker).

A job has its own id and a kind (`launch` today); an order may have many over its life,
at most one pending per kind (a partial unique index). An order's first launch job is
the order's own `queued` state: its jobs row is written when a worker first claims it,
so the follower writes no row per order (see Ledger._insert_orders). A worker claims a job
(PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several `watcher run` processes share one
database; SQLite: its single writer), keeps the claim alive with heartbeats, and records
each provisioning phase of the order in its own transaction, each guarded by the claim: a
worker that lost its claim (it stalled, someone took over) changes nothing. A job whose
worker died is claimable again once its claim expires. ("Lease" is the word for an
order's paid time; a worker's hold on a job is a claim.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watcher.adapters.ledger import accounts, events, leases, queries
from watcher.adapters.ledger.schema import PENDING_JOB, JobRecord, OrderRecord
from watcher.domain.job import PENDING_JOB_STATES, JobKind, JobState
from watcher.domain.order import OrderState

# Short names for the job states (the values are what the table stores).
QUEUED, CLAIMED, DONE, FAILED = (s.value for s in JobState)
LAUNCH = JobKind.LAUNCH.value
_KNOWN_STATES = frozenset(state.value for state in OrderState)


@dataclass(frozen=True)
class ProvisionJob:
    """A claimed job and the order it provisions."""

    job_id: int
    order_id: str
    chain_id: int
    attempts: int
    order_state: OrderState
    instance_id: str | None
    payer: str
    tx_hash: str | None  # None: bought from credit
    amount: int
    plan: str
    # The resource specification the order was paid for (None before migration 0005).
    resource: str | None
    instance_type: str
    # A reorg orphaned the payment: the order is unfunded until it is mined again.
    reorged: bool
    created_at: datetime
    paid_at: datetime | None
    claim_expires_at: datetime
    # The buyer's SSH public key line (drafted orders; None: the plan's key pair only).
    ssh_key: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class JobQueue:
    def __init__(
        self, engine: AsyncEngine, worker_id: str, claim_seconds: float, events: bool = False
    ) -> None:
        self.engine = engine
        self.events = events
        self.worker_id = worker_id
        self.claim_for = timedelta(seconds=claim_seconds)

    async def claim(self) -> ProvisionJob | None:
        """Take the oldest available job: queued and due, or claimed by a worker whose
        claim ran out; else the oldest queued order whose launch job has no row yet."""
        now = _now()
        expires = now + self.claim_for
        claimable = or_(
            and_(JobRecord.state == QUEUED, JobRecord.available_at <= now),
            and_(JobRecord.state == CLAIMED, JobRecord.claim_expires_at < now),
        )
        postgres = self.engine.dialect.name == "postgresql"
        async with self.engine.begin() as conn:
            query = (
                select(JobRecord.id, JobRecord.order_id, JobRecord.attempts)
                .where(claimable, JobRecord.kind == LAUNCH)
                .order_by(JobRecord.available_at)
                .limit(1)
            )
            if postgres:
                query = query.with_for_update(skip_locked=True)
            row = (await conn.execute(query)).first()
            if row is not None:
                job_id, order_id, attempts = row
                await conn.execute(
                    update(JobRecord)
                    .where(JobRecord.id == job_id)
                    .values(
                        state=CLAIMED,
                        attempts=attempts + 1,
                        claimed_by=self.worker_id,
                        claim_expires_at=expires,
                    )
                )
            else:
                first = await self._claim_unwritten(conn, postgres, expires)
                if first is None:
                    return None
                job_id, order_id, attempts = first
            order = (
                await conn.execute(select(OrderRecord).where(OrderRecord.order_id == order_id))
            ).one()
            if order.state not in _KNOWN_STATES:
                # Edited by hand, or written by a newer release: put it aside where the
                # operator sees it, rather than stop every worker on it.
                await conn.execute(
                    update(JobRecord)
                    .where(JobRecord.id == job_id)
                    .values(
                        state=QUEUED,
                        available_at=now + timedelta(seconds=300),
                        claimed_by=None,
                        claim_expires_at=None,
                        last_error=f"internal error: unknown order state {order.state!r}",
                    )
                )
                return None
        return ProvisionJob(
            job_id=job_id,
            order_id=order_id,
            chain_id=order.chain_id,
            attempts=attempts + 1,
            order_state=OrderState(order.state),
            instance_id=order.instance_id,
            payer=order.payer,
            tx_hash=order.tx_hash,
            amount=order.amount,
            plan=order.plan,
            resource=order.resource,
            instance_type=order.instance_type,
            reorged=order.reorged,
            created_at=order.created_at,
            paid_at=order.paid_at,
            ssh_key=order.ssh_key,
            claim_expires_at=expires,
        )

    async def _claim_unwritten(
        self, conn: AsyncConnection, postgres: bool, expires: datetime
    ) -> tuple[int, str, int] | None:
        """Write the claimed launch job of the oldest queued order that has none yet
        (the partial index ix_orders_queued). On PostgreSQL the order row is locked with
        SKIP LOCKED so that workers take different orders; should two still meet on one
        (one's snapshot predates the other's commit), the pending-job unique index lets
        only one insert, and the other looks again (each statement sees the other's
        commit by then)."""
        has_launch_job = (
            select(JobRecord.id)
            .where(JobRecord.order_id == OrderRecord.order_id, JobRecord.kind == LAUNCH)
            .exists()
        )
        query = (
            select(OrderRecord.order_id, OrderRecord.created_at)
            .where(OrderRecord.state == OrderState.QUEUED.value, ~has_launch_job)
            .order_by(OrderRecord.created_at)
            .limit(1)
        )
        if postgres:
            query = query.with_for_update(skip_locked=True)
        for _ in range(3):
            order = (await conn.execute(query)).first()
            if order is None:
                return None
            written = await self._write_claimed(conn, postgres, order, expires)
            if written is not None:
                return written, order.order_id, 0
        return None

    async def _write_claimed(
        self, conn: AsyncConnection, postgres: bool, order: Any, expires: datetime
    ) -> int | None:
        """The id of the claimed launch job written for `order`; None if another worker's
        came first."""
        dialect = postgresql if postgres else sqlite
        written = (
            await conn.execute(
                dialect.insert(JobRecord)
                .values(
                    order_id=order.order_id,
                    kind=LAUNCH,
                    state=CLAIMED,
                    attempts=1,
                    # The job has been due since the order was paid for: its age is the
                    # order's (overdue, oldest pending job).
                    available_at=order.created_at,
                    created_at=order.created_at,
                    claimed_by=self.worker_id,
                    claim_expires_at=expires,
                )
                .on_conflict_do_nothing(
                    index_elements=[JobRecord.order_id, JobRecord.kind],
                    # The index's own predicate, as text: PostgreSQL infers a partial
                    # index only from the same expression, not from bound parameters.
                    index_where=PENDING_JOB,
                )
                .returning(JobRecord.id)
            )
        ).first()
        return None if written is None else int(written[0])

    async def heartbeat(self, order_id: str) -> bool:
        """Extend the claim; False if it is no longer ours."""
        async with self.engine.begin() as conn:
            return await self._extend(conn, order_id, _now())

    async def mark_launching(self, order_id: str) -> bool:
        """The recovery point before RunInstances: from here on, a retry looks the order's
        instance up by tag before it launches anything, and a reorg flags the order instead
        of deleting it."""
        return await self._advance(order_id, OrderState.QUEUED, OrderState.LAUNCHING)

    async def funded(self, order_id: str) -> bool:
        """Whether the order is still paid for (no reorg orphaned its payment)."""
        async with queries.read_only(self.engine).connect() as conn:
            flagged = await conn.execute(
                select(OrderRecord.reorged).where(OrderRecord.order_id == order_id)
            )
            return flagged.scalar_one_or_none() is False

    async def record_launched(
        self, order_id: str, instance_id: str, launched_at: datetime | None
    ) -> bool:
        return await self._advance(
            order_id,
            OrderState.LAUNCHING,
            OrderState.LAUNCHED,
            instance_id=instance_id,
            launched_at=launched_at or _now(),
        )

    async def record_running(
        self,
        order_id: str,
        instance_id: str,
        public_ip: str | None = None,
        public_dns: str | None = None,
    ) -> bool:
        """The order is fulfilled, reachable at its public address: its job is done. The
        instance id is the running one's (found by its tag, it may differ from the one a
        lost answer left recorded)."""
        return await self._advance(
            order_id,
            OrderState.LAUNCHED,
            OrderState.RUNNING,
            done=True,
            instance_id=instance_id,
            public_ip=public_ip,
            public_dns=public_dns,
        )

    async def release(self, order_id: str, delay: float, error: str | None) -> None:
        """Give the job back to the queue, due after `delay` seconds (a retry's backoff, or
        0 when shutting down)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(JobRecord)
                .where(
                    JobRecord.order_id == order_id,
                    JobRecord.kind == LAUNCH,
                    JobRecord.claimed_by == self.worker_id,
                    JobRecord.state == CLAIMED,
                )
                .values(
                    state=QUEUED,
                    available_at=_now() + timedelta(seconds=delay),
                    claimed_by=None,
                    claim_expires_at=None,
                    last_error=error,
                )
            )

    async def close(self, order_id: str) -> None:
        """End the job of an order that needs nothing more (it already ended)."""
        async with self.engine.begin() as conn:
            if await self._extend(conn, order_id, _now()):
                await self._finish(conn, order_id, DONE, None)

    async def fail(self, order_id: str, reason: str) -> int | None:
        """End the order as failed and return its price to the payer's credit, in one
        transaction: paid tokens are never lost. Returns the amount refunded (0 for an
        order a reorg left unfunded: nobody paid for it), or None if the order was not
        ours to fail."""
        now = _now()
        async with self.engine.begin() as conn:
            order = (
                await conn.execute(
                    select(OrderRecord.chain_id).where(OrderRecord.order_id == order_id)
                )
            ).first()
            if order is None:
                return None
            # The chain's writer lock first, as the follower takes it: never the other way
            # round, or a rewind and a refund could wait for each other. Read the order
            # (its `reorged` flag above all) only once the lock is held.
            await queries.lock_chain(conn, order.chain_id)
            if not await self._extend(conn, order_id, now):
                return None
            ended = (
                await conn.execute(
                    update(OrderRecord)
                    .where(
                        OrderRecord.order_id == order_id,
                        OrderRecord.state.in_(
                            [
                                OrderState.QUEUED.value,
                                OrderState.LAUNCHING.value,
                                OrderState.LAUNCHED.value,
                            ]
                        ),
                    )
                    .values(
                        state=OrderState.FAILED.value, failure_reason=reason[:2000], updated_at=now
                    )
                    .returning(OrderRecord.payer, OrderRecord.amount, OrderRecord.reorged)
                )
            ).first()
            if ended is None:
                return None
            refunded = 0 if ended.reorged else ended.amount
            if refunded:
                await accounts.refund(conn, order.chain_id, ended.payer, refunded, now)
            await self._finish(conn, order_id, FAILED, reason)
            if self.events:
                await events.append_current(conn, [order_id], now)
        return refunded

    async def end_terminated(self, order_id: str, reason: str) -> bool:
        """The order's instance was terminated outside the watcher after it was delivered:
        the order ends `terminated`, not refunded (the buyer had it)."""
        return await self._advance_from(
            order_id,
            (OrderState.LAUNCHING, OrderState.LAUNCHED, OrderState.RUNNING),
            OrderState.TERMINATED,
            done=True,
            failure_reason=reason[:2000],
        )

    async def pending(self) -> int:
        """Jobs not yet done or failed (queued, in backoff, or claimed)."""
        return (await queries.job_health(self.engine)).pending

    # --- internals ---

    async def _advance(
        self,
        order_id: str,
        before: OrderState,
        after: OrderState,
        done: bool = False,
        **values: object,
    ) -> bool:
        """Move the order from `before` to `after` (and end the job with `done`), if the
        claim is still ours."""
        return await self._advance_from(order_id, (before,), after, done, **values)

    async def _advance_from(
        self,
        order_id: str,
        before: tuple[OrderState, ...],
        after: OrderState,
        done: bool = False,
        **values: object,
    ) -> bool:
        now = _now()
        async with self.engine.begin() as conn:
            if not await self._extend(conn, order_id, now):
                return False
            if after is OrderState.RUNNING:
                values = {**values, **await self._first_run(conn, order_id, now)}
            changed = await conn.execute(
                update(OrderRecord)
                .where(
                    OrderRecord.order_id == order_id,
                    OrderRecord.state.in_([state.value for state in before]),
                )
                .values(state=after.value, updated_at=now, **values)
            )
            if changed.rowcount != 1:
                return False
            if done:
                await self._finish(conn, order_id, DONE, None)
            if self.events:
                await events.append_current(conn, [order_id], now)
            return True

    async def _first_run(
        self, conn: AsyncConnection, order_id: str, now: datetime
    ) -> dict[str, object]:
        """The lease's columns when the order first runs: its paid time starts now. None
        for an order sold before leases (no terms: no end), or one whose lease exists."""
        row = (
            await conn.execute(
                select(
                    OrderRecord.lease_terms,
                    OrderRecord.lease_state,
                    OrderRecord.periods,
                    OrderRecord.amount,
                ).where(OrderRecord.order_id == order_id)
            )
        ).first()
        if row is None or row.lease_terms is None or row.lease_state is not None:
            return {}
        # Paid time by the database's clock, which every watcher shares (the scheduler's).
        return leases.first_run(row.lease_terms, row.periods, row.amount, await queries.clock(conn))

    async def _extend(self, conn: AsyncConnection, order_id: str, now: datetime) -> bool:
        """Renew our claim inside the caller's transaction; False if it is not ours."""
        changed = await conn.execute(
            update(JobRecord)
            .where(
                JobRecord.order_id == order_id,
                JobRecord.kind == LAUNCH,
                JobRecord.claimed_by == self.worker_id,
                JobRecord.state == CLAIMED,
            )
            .values(claim_expires_at=now + self.claim_for)
        )
        return changed.rowcount == 1

    async def _finish(
        self, conn: AsyncConnection, order_id: str, state: str, error: str | None
    ) -> None:
        await conn.execute(
            update(JobRecord)
            .where(
                JobRecord.order_id == order_id,
                JobRecord.kind == LAUNCH,
                JobRecord.state.in_(PENDING_JOB_STATES),
            )
            .values(state=state, claimed_by=None, claim_expires_at=None, last_error=error)
        )


async def record_host_keys(engine: AsyncEngine, order_id: str, instance_id: str, keys: str) -> bool:
    """Keep the host key fingerprints (JSON) read from the console of the order's
    instance, if that is still its instance; True when kept."""
    async with engine.begin() as conn:
        done = await conn.execute(
            update(OrderRecord)
            .where(OrderRecord.order_id == order_id, OrderRecord.instance_id == instance_id)
            .values(host_keys=keys)
        )
    return bool(done.rowcount)
