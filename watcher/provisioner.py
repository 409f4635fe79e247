"""Provisioner: drains the job queue, turning each order into exactly one EC2 instance.

Phases, after Stripe's idempotency keys, each recorded before the next side effect:

    queued -> launching -> launched (instance id stored) -> running

`launching` is written before RunInstances. A worker that finds an order already in
`launching` (its predecessor died, or the call failed without an answer) looks the
order's instance up by its OrderId tag first and launches only if there is none. The
RunInstances call itself carries a ClientToken derived from the order id as well, but moto
ignores it and AWS honours it only for a while, so the look-up is what makes a retry safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from watcher import metrics
from watcher.catalog import Catalog
from watcher.cloud.ec2 import Cloud, CloudError, Instance, LaunchRequest
from watcher.core.order import OrderState
from watcher.core.provisioning import ErrorKind, client_token, instance_tags
from watcher.ledger.jobs import JobQueue, ProvisionJob
from watcher.logs import fields

log = logging.getLogger("watcher.provisioner")

_GONE = ("shutting-down", "terminated")


@dataclass(frozen=True)
class ProvisionerConfig:
    capacity_attempts: int = 5
    retry_base: float = 1.0
    retry_cap: float = 300.0
    running_wait: float = 120.0
    idle_poll: float = 1.0


class LeaseLost(Exception):
    """Another worker owns the job now (ours expired): stop touching it."""


@dataclass
class Provisioner:
    queue: JobQueue
    cloud: Cloud
    catalog: Catalog
    config: ProvisionerConfig = field(default_factory=ProvisionerConfig)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    rng: random.Random = field(default_factory=random.Random)

    async def run(self) -> None:
        """Work until `stop`: one job at a time; idle, wait for a wake-up or a poll."""
        while not self.stop.is_set():
            if not await self.work_one():
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.idle_poll):
                        await _first(self.stop.wait(), self.wake.wait())

    async def drain(self, max_wait: float) -> int:
        """Work until no job is left (waiting out backoffs, at most `max_wait` seconds);
        return how many are still pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while not self.stop.is_set():
            if await self.work_one():
                continue
            pending = await self.queue.pending()
            if pending == 0 or loop.time() >= deadline:
                return pending
            await asyncio.sleep(min(self.config.idle_poll, max(deadline - loop.time(), 0)))
        return await self.queue.pending()

    async def work_one(self) -> bool:
        job = await self.queue.claim()
        if job is None:
            return False
        heartbeat = asyncio.create_task(self._heartbeat(job), name=f"lease-{job.order_id[:8]}")
        try:
            await self._provision(job)
        except LeaseLost:
            log.warning(fields("lease_lost", order_id=job.order_id))
        except CloudError as exc:
            await self._cloud_error(job, exc)
        except asyncio.CancelledError:
            # Shutting down mid-job: give it back at once; the recorded phase tells the next
            # worker where to pick up.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.queue.release(job.order_id, 0, "worker stopped"))
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return True

    async def _provision(self, job: ProvisionJob) -> None:
        state, instance_id = job.order_state, job.instance_id
        if state is OrderState.QUEUED:
            self._must(await self.queue.mark_launching(job.order_id))
            metrics.ORDER_TRANSITIONS.labels(state="launching").inc()
            log.info(
                fields(
                    "order_state", order_id=job.order_id, state="launching", attempt=job.attempts
                )
            )
            instance = await self._launch(job, look_first=False)
            state, instance_id = OrderState.LAUNCHED, instance.instance_id
        elif state is OrderState.LAUNCHING:
            instance = await self._launch(job, look_first=True)
            state, instance_id = OrderState.LAUNCHED, instance.instance_id
        if state is OrderState.LAUNCHED:
            assert instance_id is not None
            await self._await_running(job, instance_id)
        elif state in (OrderState.RUNNING, OrderState.FAILED):
            # Finished by a worker whose lease ran out just before it recorded the end.
            await self.queue.release(job.order_id, 0, None)

    async def _launch(self, job: ProvisionJob, look_first: bool) -> Instance:
        plan = self.catalog.plan(job.plan)
        instance = await self.cloud.find_instance(job.order_id) if look_first else None
        if instance is not None:
            log.info(
                fields("instance_found", order_id=job.order_id, instance_id=instance.instance_id)
            )
        else:
            request = LaunchRequest(
                order_id=job.order_id,
                client_token=client_token(job.order_id),
                plan=plan,
                tags=instance_tags(job.order_id, job.payer, job.tx_hash, plan),
            )
            instance = await self.cloud.launch(request)
        self._must(
            await self.queue.record_launched(
                job.order_id, instance.instance_id, instance.launched_at
            )
        )
        metrics.ORDER_TRANSITIONS.labels(state="launched").inc()
        log.info(
            fields(
                "order_state",
                order_id=job.order_id,
                state="launched",
                instance_id=instance.instance_id,
                instance_type=plan.instance_type,
            )
        )
        return instance

    async def _await_running(self, job: ProvisionJob, instance_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.running_wait
        delay = 0.5
        while True:
            instance = await self.cloud.describe(instance_id)
            if instance is None or instance.state in _GONE:
                state = "gone" if instance is None else instance.state
                await self._fail(job, f"instance {instance_id} is {state} before it ran")
                return
            if instance.state == "running":
                self._must(await self.queue.record_running(job.order_id))
                metrics.ORDER_TRANSITIONS.labels(state="running").inc()
                if job.paid_at is not None:
                    metrics.PROVISIONING_SECONDS.observe(
                        (datetime.now(UTC) - job.paid_at).total_seconds()
                    )
                log.info(
                    fields(
                        "order_state",
                        order_id=job.order_id,
                        state="running",
                        instance_id=instance_id,
                    )
                )
                return
            if loop.time() >= deadline:
                await self.queue.release(
                    job.order_id, 5.0, f"instance {instance_id} still {instance.state}"
                )
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _cloud_error(self, job: ProvisionJob, exc: CloudError) -> None:
        metrics.AWS_ERRORS.labels(kind=exc.kind.value, code=exc.code or "no_answer").inc()
        permanent = exc.kind is ErrorKind.PERMANENT or (
            exc.kind is ErrorKind.CAPACITY and job.attempts >= self.config.capacity_attempts
        )
        if permanent:
            await self._fail(job, str(exc))
            return
        ceiling = min(
            self.config.retry_cap, self.config.retry_base * 2 ** min(job.attempts - 1, 30)
        )
        delay = self.rng.uniform(0, ceiling)
        await self.queue.release(job.order_id, delay, str(exc))
        log.warning(
            fields(
                "provision_retry",
                order_id=job.order_id,
                kind=exc.kind.value,
                code=exc.code,
                attempt=job.attempts,
                wait=f"{delay:.2f}s",
            )
        )

    async def _fail(self, job: ProvisionJob, reason: str) -> None:
        if await self.queue.fail(job.order_id, reason):
            metrics.ORDER_TRANSITIONS.labels(state="failed").inc()
            log.error(
                fields(
                    "order_state",
                    order_id=job.order_id,
                    state="failed",
                    refunded=job.amount,
                    reason=reason,
                )
            )

    async def _heartbeat(self, job: ProvisionJob) -> None:
        interval = max(self.queue.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            if not await self.queue.heartbeat(job.order_id):
                return

    @staticmethod
    def _must(recorded: bool) -> None:
        if not recorded:
            raise LeaseLost


async def _first(*awaitables: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
