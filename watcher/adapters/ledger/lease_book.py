"""Leases over time, in the ledger: which leases are due, each moved on by the pure state
machine (watcher/domain/leases.py) in one transaction with what it asks for (a stop, start
or terminate job, an auto-renewal from credit, an event), and the stop/start/terminate
jobs' claims and confirmations.

Time is the database's on PostgreSQL (several watchers share one clock; a skewed host
cannot expire a lease early) and the host's on SQLite (one process). A lease is moved on
under its order row's lock (PostgreSQL: FOR UPDATE; SQLite: its single writer), so a
renewal, an extension and the expiry see each other's result: never a price charged twice,
never a paid lease stopped. One pending job per order and kind is the database's rule
(uq_jobs_pending_order_kind), so a tick that runs twice queues nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watcher.adapters.ledger import accounts, events, queries
from watcher.adapters.ledger.leases import columns, lease_of
from watcher.adapters.ledger.schema import (
    PENDING_JOB,
    ChainCursor,
    JobRecord,
    LeaseChargeRecord,
    OrderRecord,
)
from watcher.domain.amounts import format_amount
from watcher.domain.errors import UserError
from watcher.domain.job import JobKind, JobState
from watcher.domain.leases import (
    Credit,
    Effect,
    IllegalTransition,
    Lease,
    LeaseState,
    LeaseTerms,
    Start,
    Stop,
    Terminate,
    cancel,
    due,
    ended_outside,
    extend,
    started,
    stopped,
    terminated,
)
from watcher.domain.order import OrderState

LEASE_JOBS = (JobKind.STOP.value, JobKind.START.value, JobKind.TERMINATE.value)
# How soon a lease whose auto-renewal its credit could not pay is looked at again.
RENEWAL_RETRY = timedelta(minutes=1)
# Lease states in which the lease's resource should exist.
_HOLDING = ("active", "expiring", "stopping", "stopped", "starting")
_EFFECT_JOBS: dict[type, str] = {
    Stop: JobKind.STOP.value,
    Start: JobKind.START.value,
    Terminate: JobKind.TERMINATE.value,
}


class LeaseRefused(UserError):
    """An owner's request the lease does not allow now; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LeaseChange:
    """A lease after its owner's request: what it took from credit and gave back."""

    lease: Lease
    charged: int
    refunded: int


@dataclass(frozen=True)
class LeaseJob:
    """A claimed stop, start or terminate job and what it acts on."""

    job_id: int
    order_id: str
    kind: JobKind
    attempts: int
    instance_id: str | None
    resource: str | None
    # The lease's state when the job was claimed: a job it no longer needs is dropped.
    lease_state: str | None = None


class LeaseBook:
    def __init__(
        self, engine: AsyncEngine, worker_id: str, claim_seconds: float, events: bool = False
    ) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.claim_for = timedelta(seconds=claim_seconds)
        self.events = events

    # --- the scheduler's side ---

    async def due_orders(self, limit: int = 500) -> list[str]:
        """The orders whose lease's next moment has come, oldest first (the partial index
        ix_orders_due: the work follows the leases that are due, not all leases)."""
        async with self.engine.connect() as conn:
            now = await queries.clock(conn)
            rows = await conn.execute(
                select(OrderRecord.order_id)
                .where(OrderRecord.due_at.is_not(None), OrderRecord.due_at <= now)
                .order_by(OrderRecord.due_at)
                .limit(limit)
            )
            return [r[0] for r in rows.all()]

    async def advance(self, order_id: str) -> list[Effect]:
        """Move the lease on to now (`due`), with its effects, in one transaction. Nothing
        when it is not due any more (another watcher, or an extension, got there first)."""
        async with self.engine.begin() as conn:
            row = await self._locked(conn, order_id, chain_first=True)
            if row is None or row.lease_state is None:
                return []
            now = await queries.clock(conn)
            lease, terms = lease_of(row)
            credit = 0
            if lease.auto_renew and not row.reorged:
                # An unfunded order (a reorg took its payment) renews nothing: its price
                # is in no payment, a renewal would be charged again when it is mined.
                found = await accounts.balances(conn, row.chain_id, [row.payer])
                credit = found.get(row.payer, 0)
            after, effects = due(lease, now, terms, credit)
            await self._write(conn, row, after, terms, effects, now)
            return effects

    # --- the owner's side ---

    async def extend(self, order_id: str, owner: str, periods: int) -> LeaseChange:
        """More periods of the owner's lease, paid from their credit (one request; the
        caller checked who asks). In grace, the resource starts again."""
        return await self._owner_change(order_id, owner, "extend", periods)

    async def cancel(
        self, order_id: str, owner: str, expected_refund: int | None = None
    ) -> LeaseChange:
        """End the owner's lease now: whole periods not begun back to credit (the plan's
        rule), the resource terminated. With `expected_refund` (what the owner was shown),
        refused if a period began meanwhile and the refund is another."""
        return await self._owner_change(order_id, owner, "cancel", 0, expected_refund)

    async def set_auto_renew(self, order_id: str, owner: str, on: bool) -> LeaseChange:
        """Renew from credit a period at a time, within the plan's cap, or stop doing so."""
        return await self._owner_change(order_id, owner, "auto_renew" if on else "manual", 0)

    async def _owner_change(
        self,
        order_id: str,
        owner: str,
        what: str,
        periods: int,
        expected_refund: int | None = None,
    ) -> LeaseChange:
        async with self.engine.begin() as conn:
            row = await self._locked(conn, order_id, chain_first=True)
            if row is None:
                raise LeaseRefused(f"no order {order_id}", 404)
            if row.payer != owner:
                raise LeaseRefused("this order belongs to another wallet", 403)
            if row.reorged:
                raise LeaseRefused(
                    "a chain reorganisation left this order unfunded: the operator settles it", 409
                )
            if row.lease_terms is None:
                raise LeaseRefused("this order was sold without an end: it has no lease", 409)
            if row.lease_state is None:
                raise LeaseRefused(
                    "its lease starts when it first runs: try again once it runs", 409
                )
            now = await queries.clock(conn)
            lease, terms = lease_of(row)
            try:
                if what == "extend":
                    cost = lease.period_price * periods
                    credit = (await accounts.balances(conn, row.chain_id, [owner])).get(owner, 0)
                    if credit < cost:
                        raise LeaseRefused(
                            f"your credit is {format_amount(max(credit, 0))} CTK and {periods} "
                            f"period(s) cost {format_amount(cost)} CTK: add credit first",
                            402,
                        )
                    after, effects = extend(lease, periods, now, terms)
                    effects = [*effects, Credit(-cost, f"extended by {periods} period(s)")]
                elif what == "cancel":
                    after, effects = cancel(lease, now, terms)
                    refund = sum(e.amount for e in effects if isinstance(e, Credit))
                    if expected_refund is not None and refund != expected_refund:
                        raise LeaseRefused(
                            f"cancelling now gives back {format_amount(refund)} CTK, not the "
                            f"{format_amount(expected_refund)} CTK shown (a period began): "
                            "look again before cancelling",
                            409,
                        )
                else:
                    if lease.state.ended or lease.state is LeaseState.TERMINATING:
                        raise IllegalTransition(
                            f"cannot change it: the lease is {lease.state.value}"
                        )
                    after, effects = replace(lease, auto_renew=what == "auto_renew"), []
            except IllegalTransition as exc:
                raise LeaseRefused(str(exc), 409) from None
            await self._write(conn, row, after, terms, effects, now)
            refunded = sum(e.amount for e in effects if isinstance(e, Credit) and e.amount > 0)
            charged = -sum(e.amount for e in effects if isinstance(e, Credit) and e.amount < 0)
            return LeaseChange(after, charged, refunded)

    # --- the sweep's side ---

    async def ended_outside(self, order_id: str, resource_id: str, state: str) -> list[Effect]:
        """Its resource was ended outside the watcher (the sweep saw it twice in a row):
        the lease ends, the whole periods not begun go back to credit, and the order is
        terminated with the reason. Nothing if the lease is not one a resource holds, or
        the order names another resource by now."""
        async with self.engine.begin() as conn:
            row = await self._locked(conn, order_id, chain_first=True)
            if (
                row is None
                or row.lease_state not in _HOLDING
                or row.instance_id != resource_id
                or row.state != OrderState.RUNNING.value
            ):
                return []
            now = await queries.clock(conn)
            lease, terms = lease_of(row)
            try:
                after, effects = ended_outside(lease, now, terms)
            except IllegalTransition:
                return []
            if row.reorged:
                # Unfunded (a reorg took its payment): its price is in no payment, nothing
                # of it comes back; the operator settles it, as for any reorged order.
                after, effects = replace(after, periods=lease.periods), []
            # The order's state first, so that the one event `_write` records shows both.
            await conn.execute(
                update(OrderRecord)
                .where(OrderRecord.order_id == order_id)
                .values(
                    state=OrderState.TERMINATED.value,
                    failure_reason=f"its instance was ended outside the watcher ({state})",
                )
            )
            await self._write(conn, row, after, terms, effects, now)
            return effects

    # --- the jobs' side ---

    async def claim(self) -> LeaseJob | None:
        """The oldest stop, start or terminate job that is due (or whose worker's claim
        ran out)."""
        async with self.engine.begin() as conn:
            now = await queries.clock(conn)
            query = (
                select(JobRecord.id, JobRecord.order_id, JobRecord.kind, JobRecord.attempts)
                .where(
                    JobRecord.kind.in_(LEASE_JOBS),
                    or_(
                        and_(
                            JobRecord.state == JobState.QUEUED.value,
                            JobRecord.available_at <= now,
                        ),
                        and_(
                            JobRecord.state == JobState.CLAIMED.value,
                            JobRecord.claim_expires_at < now,
                        ),
                    ),
                )
                .order_by(JobRecord.available_at)
                .limit(1)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            job = (await conn.execute(query)).first()
            if job is None:
                return None
            await conn.execute(
                update(JobRecord)
                .where(JobRecord.id == job.id)
                .values(
                    state=JobState.CLAIMED.value,
                    attempts=job.attempts + 1,
                    claimed_by=self.worker_id,
                    claim_expires_at=now + self.claim_for,
                )
            )
            order = (
                await conn.execute(
                    select(
                        OrderRecord.instance_id, OrderRecord.resource, OrderRecord.lease_state
                    ).where(OrderRecord.order_id == job.order_id)
                )
            ).one()
        return LeaseJob(
            job.id,
            job.order_id,
            JobKind(job.kind),
            job.attempts + 1,
            order.instance_id,
            order.resource,
            order.lease_state,
        )

    async def confirm(self, job: LeaseJob) -> list[Effect]:
        """The cloud confirmed the job's outcome: the lease moves on (stopped, started,
        terminated) and the job is done, in one transaction, if the claim is still ours."""
        async with self.engine.begin() as conn:
            if not await self._still_ours(conn, job):
                return []
            row = await self._locked(conn, job.order_id)
            if row is None or row.lease_state is None:  # deleted by a reorg meanwhile
                await self._finish(conn, job, JobState.DONE.value, "the order has no lease")
                return []
            now = await queries.clock(conn)
            lease, terms = lease_of(row)
            try:
                if job.kind is JobKind.STOP:
                    after, effects = stopped(lease, terms, now)
                elif job.kind is JobKind.START:
                    after, effects = started(lease), []
                else:
                    after, effects = terminated(lease), []
            except IllegalTransition:
                # The lease moved on meanwhile (cancelled while stopping...): the cloud's
                # state is what the job made it; the lease's own next step takes over.
                after, effects = lease, []
            await self._finish(conn, job, JobState.DONE.value, None)
            await self._write(conn, row, after, terms, effects, now)
            return effects

    async def release(self, job: LeaseJob, delay: float, error: str | None) -> None:
        """Back in the queue, due again after `delay` seconds (retried: never given up on
        an unknown answer)."""
        async with self.engine.begin() as conn:
            if not await self._still_ours(conn, job):
                return
            now = await queries.clock(conn)
            await conn.execute(
                update(JobRecord)
                .where(JobRecord.id == job.job_id)
                .values(
                    state=JobState.QUEUED.value,
                    available_at=now + timedelta(seconds=delay),
                    claimed_by=None,
                    claim_expires_at=None,
                    last_error=error,
                )
            )

    async def drop(self, job: LeaseJob, reason: str) -> None:
        """Done without acting: the lease no longer needs this job (cancelled while a stop
        was queued, extended again...)."""
        async with self.engine.begin() as conn:
            if await self._still_ours(conn, job):
                await self._finish(conn, job, JobState.DONE.value, reason)

    async def heartbeat(self, job: LeaseJob) -> bool:
        async with self.engine.begin() as conn:
            return await self._still_ours(conn, job)

    # --- inside ---

    async def _locked(self, conn: AsyncConnection, order_id: str, chain_first: bool = False) -> Any:
        """The order's row, locked for this transaction. With `chain_first` (a change that
        may move credit), the chain's writer lock is taken before the row's, in the order
        the follower and refunds take them, so that no two wait for each other."""
        if chain_first and conn.dialect.name == "postgresql":
            chain = (
                await conn.execute(
                    select(OrderRecord.chain_id).where(OrderRecord.order_id == order_id)
                )
            ).scalar_one_or_none()
            if chain is not None:
                await queries.lock_chain(conn, chain)
        query = select(OrderRecord).where(OrderRecord.order_id == order_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        return (await conn.execute(query)).first()

    async def _still_ours(self, conn: AsyncConnection, job: LeaseJob) -> bool:
        now = await queries.clock(conn)
        renewed = await conn.execute(
            update(JobRecord)
            .where(
                JobRecord.id == job.job_id,
                JobRecord.claimed_by == self.worker_id,
                JobRecord.state == JobState.CLAIMED.value,
            )
            .values(claim_expires_at=now + self.claim_for)
        )
        return renewed.rowcount == 1

    async def _finish(
        self, conn: AsyncConnection, job: LeaseJob, state: str, error: str | None
    ) -> None:
        await conn.execute(
            update(JobRecord)
            .where(JobRecord.id == job.job_id)
            .values(state=state, claimed_by=None, claim_expires_at=None, last_error=error)
        )

    async def _write(
        self,
        conn: AsyncConnection,
        row: Any,
        lease: Lease,
        terms: LeaseTerms,
        effects: list[Effect],
        now: datetime,
    ) -> None:
        """The lease's new columns and its effects: jobs queued (one pending per kind,
        by the database), credit taken or given back (through accounts, the one writer),
        the order's event."""
        values = columns(lease, terms)
        if values["due_at"] is not None and values["due_at"] <= now:
            # Due again at once but nothing moved it (an auto-renewal its credit cannot pay
            # yet): look again in a minute, or at its end, not at every tick.
            later = now + RENEWAL_RETRY
            values["due_at"] = min(later, lease.paid_until) if lease.paid_until else later
            if values["due_at"] <= now:
                values["due_at"] = later
        await conn.execute(
            update(OrderRecord)
            .where(OrderRecord.order_id == row.order_id)
            .values(**values, updated_at=now)
        )
        credit = sum(e.amount for e in effects if isinstance(e, Credit))
        if credit:
            await queries.lock_chain(conn, row.chain_id)
            await accounts.apply(conn, row.chain_id, {row.payer: credit}, now)
        charged = -sum(e.amount for e in effects if isinstance(e, Credit) and e.amount < 0)
        if charged:
            # Anchored at the ledger's block now: its credit came from payments at or
            # below it, which a reorg below it may take (Ledger.rewind).
            anchor = (
                await conn.execute(
                    select(ChainCursor.block_number).where(ChainCursor.chain_id == row.chain_id)
                )
            ).scalar_one_or_none()
            await conn.execute(
                insert(LeaseChargeRecord).values(
                    order_id=row.order_id,
                    chain_id=row.chain_id,
                    payer=row.payer,
                    periods=charged // lease.period_price,
                    amount=charged,
                    block_number=anchor if anchor is not None else -1,
                    created_at=now,
                )
            )
        for effect in effects:
            kind = _EFFECT_JOBS.get(type(effect))
            if kind is not None:
                await self._queue(conn, row.order_id, kind, now)
        if self.events and (values["lease_state"] != row.lease_state or effects):
            await events.append_current(conn, [row.order_id], now)

    async def _queue(self, conn: AsyncConnection, order_id: str, kind: str, now: datetime) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        await conn.execute(
            dialect.insert(JobRecord)
            .values(
                order_id=order_id,
                kind=kind,
                state=JobState.QUEUED.value,
                attempts=0,
                available_at=now,
                created_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=[JobRecord.order_id, JobRecord.kind], index_where=PENDING_JOB
            )
        )
