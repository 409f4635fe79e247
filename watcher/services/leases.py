"""Leases over time: the scheduler moves due leases on (warnings, auto-renewals, the stop
at the end of paid time, the termination after grace), and the lease worker carries out
the stop, start and terminate jobs with the provisioner's guarantees.

The worker always looks at the cloud first and acts only on what it sees: the resource
already in the wanted state is confirmed without acting (a retry after a crash between
acting and recording does nothing twice); an error, or no answer about the resource at
all, is retried later and never read as "stopped" or "gone". A confirmation is the
cloud's own state, read after acting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from watcher.adapters.ledger.errors import DatabaseRetry
from watcher.adapters.ledger.lease_book import LeaseBook, LeaseJob
from watcher.domain.job import JobKind
from watcher.domain.provisioning import ErrorKind
from watcher.domain.resources import ResourceSpec
from watcher.ports.cloud import ENDED_STATES, Cloud, CloudError, Instance, Provider
from watcher.shared.logs import fields
from watcher.shared.waiting import pause, wait_any

log = logging.getLogger("watcher.services.leases")

# The lease states in which each job still has work to do.
_NEEDED: dict[JobKind, tuple[str, ...]] = {
    JobKind.STOP: ("stopping", "starting"),
    JobKind.START: ("starting",),
    JobKind.TERMINATE: ("terminating",),
}
# A terminate job whose instance the cloud no longer knows, and whose tag look-up finds
# nothing live, is confirmed after this many attempts (EC2 forgets terminated instances
# after about an hour; the attempts are spread by the retry backoff).
GONE_AFTER_ATTEMPTS = 3

# What the cloud says when a job's work is done.
_DONE: dict[JobKind, tuple[str, ...]] = {
    JobKind.STOP: ("stopped",),
    JobKind.START: ("running",),
    JobKind.TERMINATE: ENDED_STATES,
}


@dataclass
class LeaseScheduler:
    book: LeaseBook
    interval: float = 1.0
    batch: int = 500
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when a tick queued a job: the lease worker need not wait for its poll.
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def tick(self) -> int:
        """Move every lease that is due on, each once per tick; how many did something."""
        moved = 0
        seen: set[str] = set()
        while True:
            due = [o for o in await self.book.due_orders(self.batch) if o not in seen]
            for order_id in due:
                seen.add(order_id)
                effects = await self.book.advance(order_id)
                if effects:
                    moved += 1
                    self.wake.set()
            if not due:
                return moved

    async def run(self) -> None:
        retry = DatabaseRetry("lease-scheduler")
        while not self.stop.is_set():
            try:
                await self.tick()
            except Exception as exc:
                await retry.wait(exc, self.stop)
                continue
            retry.succeeded()
            await pause(self.stop, self.interval)


@dataclass
class LeaseWorker:
    book: LeaseBook
    cloud: Cloud
    # How long to wait for the cloud to reach the wanted state after acting, looking
    # every `look_every` seconds; then the job goes back to the queue, looked at again
    # after `retry_after` (never assumed done). Short, so that a worker is not held by
    # one slow stop while other leases wait: EC2 takes tens of seconds to stop.
    settle: float = 3.0
    look_every: float = 0.5
    retry_after: float = 5.0
    idle_poll: float = 1.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        retry = DatabaseRetry("lease-worker")
        while not self.stop.is_set():
            try:
                worked = await self.work_one()
            except Exception as exc:
                await retry.wait(exc, self.stop)
                continue
            retry.succeeded()
            if not worked:
                self.wake.clear()
                await wait_any(self.stop.wait(), self.wake.wait(), timeout=self.idle_poll)

    async def work_one(self) -> bool:
        job = await self.book.claim()
        if job is None:
            return False
        if job.lease_state not in _NEEDED[job.kind]:
            await self.book.drop(job, f"the lease is {job.lease_state}: nothing to do")
            return True
        if job.kind is JobKind.STOP and job.lease_state == "starting":
            # Extended while its stop waited: a paid lease is not stopped. The stop counts
            # as done; its confirmation asks for the start, which sees what runs.
            await self.book.confirm(job)
            return True
        try:
            done = await self._carry_out(job)
        except CloudError as exc:
            log.warning(
                fields(
                    "lease_job_retry",
                    order_id=job.order_id,
                    kind=job.kind.value,
                    error=str(exc)[:200],
                )
            )
            await self.book.release(job, self._delay(job), str(exc)[:500])
            return True
        if done:
            await self.book.confirm(job)
            log.info(fields("lease_job_done", order_id=job.order_id, kind=job.kind.value))
        else:
            await self.book.release(job, self._delay(job), "the cloud has not confirmed it yet")
        return True

    def _delay(self, job: LeaseJob) -> float:
        return float(min(self.retry_after * 2 ** min(job.attempts - 1, 6), 300.0))

    async def _carry_out(self, job: LeaseJob) -> bool:
        """Whether the cloud now shows the job's outcome. Looks first; acts only when
        the resource is seen, and not already as wanted."""
        if job.instance_id is None or job.resource is None:
            raise CloudError(
                ErrorKind.RETRY, None, f"order {job.order_id} has no resource recorded"
            )
        provider = self.cloud.provider(ResourceSpec.from_json(job.resource).kind)
        if provider is None:
            raise CloudError(ErrorKind.RETRY, None, "no provider here makes this order's resource")
        seen = await provider.describe(job.instance_id)
        if seen is None:
            # No answer about it: maybe not visible, maybe gone. Not "gone" on one answer:
            # a terminate is confirmed only after repeated answers and the tag look-up
            # agreeing that nothing of the order's is live.
            if job.kind is JobKind.TERMINATE and job.attempts >= GONE_AFTER_ATTEMPTS:
                tagged = await provider.find_instance(job.order_id)
                return tagged is None or tagged.ended
            return False
        wanted = _DONE[job.kind]
        if seen.state in wanted:
            return True
        if seen.ended:
            # Ended outside the watcher while its lease needed a stop or a start: the
            # reconciliation sweep settles that lease; nothing to do here.
            log.warning(fields("lease_resource_ended", order_id=job.order_id, kind=job.kind.value))
            return False
        await self._act(provider, job, seen)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle
        while loop.time() < deadline and not self.stop.is_set():
            await asyncio.sleep(self.look_every)
            if not await self.book.heartbeat(job):
                return False  # another worker has it now
            seen_now = await provider.describe(job.instance_id)
            if seen_now is not None and seen_now.state in wanted:
                return True
        return False

    async def _act(self, provider: Provider, job: LeaseJob, seen: Instance) -> None:
        assert job.instance_id is not None
        if job.kind is JobKind.STOP and seen.state in ("pending", "running"):
            await provider.stop(job.instance_id)
        elif job.kind is JobKind.START and seen.state in ("stopped",):
            await provider.start(job.instance_id)
        elif job.kind is JobKind.TERMINATE:
            await provider.terminate(job.instance_id)
        # Otherwise it is on its way (stopping, pending): wait for it.
