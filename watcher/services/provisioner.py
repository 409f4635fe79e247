"""Provisioner: drains the job queue, turning each order into exactly one EC2 instance.

Phases, after Stripe's idempotency keys, each recorded before the next side effect:

    queued -> launching -> launched (instance id stored) -> running

`launching` is written before RunInstances. Before every RunInstances the worker looks
the order's instance up by its OrderId tag and launches only if there is none, whatever
the ledger says: the cloud is the truth about whether the order's instance exists. The
call itself carries a ClientToken derived from the order id as well, but moto ignores it
and AWS honours it only for a while, so the look-up is what makes a retry safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from watcher.adapters.ledger.errors import DatabaseRetry, LedgerUnusable, classify
from watcher.adapters.ledger.jobs import JobQueue, ProvisionJob
from watcher.domain.backoff import ProvisionRetry, RetryPolicy
from watcher.domain.catalog import Catalog
from watcher.domain.kinds import ec2_instance, summary
from watcher.domain.order import OrderState
from watcher.domain.pricing import Plan
from watcher.domain.provisioning import ErrorKind, client_token, instance_tags
from watcher.domain.resources import ResourceSpec
from watcher.ports.cloud import Cloud, CloudError, Instance, LaunchRequest, Provider
from watcher.shared import metrics
from watcher.shared.logs import fields
from watcher.shared.waiting import wait_any

log = logging.getLogger("watcher.services.provisioner")

# EC2's StateReason codes for an instance that failed to start (documented in
# "Troubleshoot instance launch issues"): only these refund the order. Anything else, an
# unknown or missing reason included, is read as "ended after delivery": never refund on a
# reason we cannot name.
LAUNCH_FAILED = frozenset(
    {
        "Server.InsufficientInstanceCapacity",
        "Server.InternalError",
        "Client.InternalError",
        "Client.InvalidSnapshot.NotFound",
        "Client.VolumeLimitExceeded",
    }
)
# An order whose job keeps raising an unexpected error (a bug, a row edited by hand) is
# put aside this long, so the service and the other orders go on.
POISONED_WAIT = 300.0
UNFUNDED = "payment orphaned by a reorg: waiting for it to be mined again before launching"


@dataclass(frozen=True)
class ProvisionerConfig:
    capacity_attempts: int = 5
    retry_base: float = 1.0
    retry_cap: float = 300.0
    running_wait: float = 120.0
    # "Gone" needs this many NotFound answers spanning at least this long (EC2's eventual
    # consistency after RunInstances), and the tag look-up agreeing.
    gone_confirmations: int = 5
    gone_after: float = 60.0
    # How long an order whose payment a reorg orphaned waits before it is looked at again.
    unfunded_wait: float = 15.0
    idle_poll: float = 1.0


class ClaimLost(Exception):
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
        """Work until `stop`: one job at a time; idle, wait for a wake-up or a poll. A
        transient database error is waited out (the job it hit was released, or its claim
        runs out, and its recorded phase tells whoever takes it next where to go on)."""
        retry = DatabaseRetry("provisioner")
        while not self.stop.is_set():
            try:
                worked = await self.work_one()
            except Exception as exc:
                await retry.wait(exc, self.stop)
                continue
            retry.succeeded()
            if not worked:
                self.wake.clear()
                await wait_any(self.stop.wait(), self.wake.wait(), timeout=self.config.idle_poll)

    async def drain(self, max_wait: float) -> int:
        """Work until no job is left (waiting out backoffs, at most `max_wait` seconds);
        return how many are still pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        retry = DatabaseRetry("drain")
        while not self.stop.is_set():
            try:
                if await self.work_one():
                    retry.succeeded()
                    continue
                pending = await self.queue.pending()
            except Exception as exc:
                fault = classify(exc)
                if fault is not None and fault.transient and loop.time() >= deadline:
                    raise LedgerUnusable(
                        f"the ledger database is still unavailable: {fault.reason}"
                    ) from None
                await retry.wait(exc, self.stop)
                continue
            retry.succeeded()
            if pending == 0 or loop.time() >= deadline:
                return pending
            await asyncio.sleep(min(self.config.idle_poll, max(deadline - loop.time(), 0)))
        return await self.queue.pending()

    async def work_one(self) -> bool:
        job = await self.queue.claim()
        if job is None:
            return False
        heartbeat = asyncio.create_task(self._keep_claim(job), name=f"claim-{job.order_id[:8]}")
        try:
            await self._provision(job)
        except ClaimLost:
            log.warning(fields("claim_lost", order_id=job.order_id))
        except CloudError as exc:
            await self._cloud_error(job, exc)
        except asyncio.CancelledError:
            # Shutting down mid-job: give it back at once; the recorded phase tells the next
            # worker where to pick up.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.queue.release(job.order_id, 0, "worker stopped"))
            raise
        except Exception as exc:
            fault = classify(exc)
            if fault is not None and fault.transient:
                # The ledger blinked mid-job. Whatever was recorded stays (each phase is its
                # own transaction); give the job back for a retry soon, and when even that
                # fails the claim runs out on its own. `run` waits out the database.
                with contextlib.suppress(Exception):
                    await self.queue.release(job.order_id, 1.0, f"database: {fault.reason}")
                raise
            if fault is not None:
                raise  # the ledger cannot be used (schema, credentials): stop
            # A bug or a row edited by hand: this order is put aside (the operator sees
            # the error on the order), the service and every other order go on.
            log.exception(
                fields("job_error", order_id=job.order_id, error=f"{type(exc).__name__}: {exc}")
            )
            with contextlib.suppress(Exception):
                await self.queue.release(
                    job.order_id,
                    POISONED_WAIT,
                    f"internal error: {type(exc).__name__}: {str(exc)[:300]}",
                )
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return True

    async def _keep_claim(self, job: ProvisionJob) -> None:
        """Heartbeats through a database blip: a heartbeat that fails must not end the job
        (the claim guard makes any late write of a worker that lost it a no-op)."""
        retry = DatabaseRetry("claim-heartbeat")
        while True:
            try:
                await self._heartbeat(job)
                return
            except Exception as exc:
                await retry.wait(exc, self.stop)

    async def _provision(self, job: ProvisionJob) -> None:
        state, instance_id = job.order_state, job.instance_id
        kind = self._kind(job)
        provider = self.cloud.provider(kind)
        missing = f"no provider here makes {kind!r} resources"
        if provider is None and state is OrderState.QUEUED:
            # Sold under a kind this watcher does not provide, and nothing was launched
            # yet: it cannot be delivered (failed, refunded).
            raise CloudError(ErrorKind.PERMANENT, None, missing)
        if provider is None and state in (OrderState.LAUNCHING, OrderState.LAUNCHED):
            # Its resource may exist: a provider missing here (a configuration mistake)
            # is no answer about it. Held, never ended, until one is configured.
            await self.queue.release(job.order_id, POISONED_WAIT, f"{missing}: held")
            log.error(fields("provider_missing", order_id=job.order_id, kind=kind))
            return
        if state is OrderState.QUEUED:
            self._must(await self.queue.mark_launching(job.order_id))
            metrics.ORDER_TRANSITIONS.labels(state="launching").inc()
            log.info(
                fields(
                    "order_state", order_id=job.order_id, state="launching", attempt=job.attempts
                )
            )
            state = OrderState.LAUNCHING
        if state is OrderState.LAUNCHING:
            assert provider is not None
            instance = await self._launch(job, provider)
            if instance is None:
                return
            state, instance_id = OrderState.LAUNCHED, instance.instance_id
        if state is OrderState.LAUNCHED:
            assert instance_id is not None
            assert provider is not None
            await self._await_running(job, instance_id, provider)
        elif state in (OrderState.RUNNING, OrderState.FAILED, OrderState.TERMINATED):
            # Finished by a worker whose claim ran out just before it recorded the end (or
            # edited by hand): nothing is left to do, close the job (a release would be
            # claimed again at once, for ever).
            await self.queue.close(job.order_id)

    def _plan(self, job: ProvisionJob) -> Plan:
        """What the order paid for: its own snapshot, never today's catalog (a plan
        removed or repriced since must not change a paid order)."""
        if job.resource is not None:
            return Plan.from_order(job.plan, job.amount, job.resource)
        # Recorded before orders kept their specification (migration 0005): the catalog's
        # plan of that name, only if it still sells the same thing at the same price.
        listed = self.catalog.plans.get(job.plan)
        if (
            listed is None
            or summary(listed.spec) != job.instance_type
            or listed.price != job.amount
        ):
            raise CloudError(
                ErrorKind.PERMANENT,
                None,
                f"the order predates kept specifications and plan {job.plan!r} no longer "
                f"sells {job.instance_type} at that price",
            )
        return listed

    @staticmethod
    def _kind(job: ProvisionJob) -> str:
        """The order's resource kind (orders from before migration 0005, which kept no
        specification, were all EC2 instances)."""
        if job.resource is None:
            return ec2_instance.KIND
        return ResourceSpec.from_json(job.resource).kind

    async def _launch(self, job: ProvisionJob, provider: Provider) -> Instance | None:
        """Launch the order's instance unless the cloud already has one. The look-up runs
        before every launch, whatever the ledger says: a ledger rebuilt from the chain, a
        second ledger, or a lost RunInstances answer all look like "not launched yet"
        to the ledger, and only the cloud knows. (ClientToken alone is not enough: AWS
        honours it for a limited time, moto not at all.)"""
        instance = await provider.find_instance(job.order_id)
        plan = self._plan(job) if instance is None else None
        if instance is not None:
            log.info(
                fields(
                    "instance_found",
                    order_id=job.order_id,
                    instance_id=instance.instance_id,
                    state=instance.state,
                )
            )
        else:
            assert plan is not None
            if not await self.queue.funded(job.order_id):
                # A reorg took the payment after the order was marked launching: launch
                # nothing until it is mined again (the follower then unflags the order).
                await self.queue.release(job.order_id, self.config.unfunded_wait, UNFUNDED)
                log.warning(fields("launch_held", order_id=job.order_id, reason=UNFUNDED))
                return None
            request = LaunchRequest(
                order_id=job.order_id,
                client_token=client_token(job.order_id),
                plan=plan,
                tags=instance_tags(job.order_id, job.payer, job.tx_hash, plan),
                # Type and body only: the comment is the buyer's label, and a character
                # outside ASCII in it could break cloud-init's reading of the document.
                ssh_keys=(" ".join(job.ssh_key.split()[:2]),) if job.ssh_key else (),
            )
            instance = await provider.launch(request)
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
                instance_type=instance.instance_type,
            )
        )
        return instance

    async def _await_running(self, job: ProvisionJob, instance_id: str, provider: Provider) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.running_wait
        delay = 0.5
        missing = 0
        missing_since = 0.0
        while True:
            instance = await provider.describe(instance_id)
            if instance is None:
                # EC2 is eventually consistent: right after RunInstances, DescribeInstances
                # may answer InvalidInstanceID.NotFound for an instance that exists. Not
                # found is an unknown answer; "gone" needs repeated answers over time and
                # the tag look-up agreeing.
                missing += 1
                missing_since = missing_since or loop.time()
                if (
                    missing >= self.config.gone_confirmations
                    and loop.time() - missing_since >= self.config.gone_after
                ):
                    found = await provider.find_instance(job.order_id)
                    if found is None:
                        await self._fail(
                            job,
                            f"instance {instance_id} was not found in {missing} look-ups over "
                            f"{loop.time() - missing_since:.0f} s, nor by its OrderId tag",
                        )
                        return
                    instance = found
                    if found.instance_id != instance_id:
                        log.error(
                            fields(
                                "instance_mismatch",
                                order_id=job.order_id,
                                recorded=instance_id,
                                found=found.instance_id,
                            )
                        )
            if instance is not None:
                missing, missing_since = 0, 0.0
                if instance.ended:
                    await self._ended(job, instance)
                    return
                if instance.state == "running":
                    await self._running(job, instance)
                    return
            if loop.time() >= deadline:
                state = instance.state if instance is not None else "not found yet"
                await self.queue.release(job.order_id, 5.0, f"instance {instance_id} {state}")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _running(self, job: ProvisionJob, instance: Instance) -> None:
        instance_id = instance.instance_id
        self._must(
            await self.queue.record_running(
                job.order_id, instance.instance_id, instance.public_ip, instance.public_dns
            )
        )
        metrics.ORDER_TRANSITIONS.labels(state="running").inc()
        if job.paid_at is not None:
            metrics.PROVISIONING_SECONDS.observe((datetime.now(UTC) - job.paid_at).total_seconds())
        log.info(
            fields("order_state", order_id=job.order_id, state="running", instance_id=instance_id)
        )

    async def _ended(self, job: ProvisionJob, instance: Instance) -> None:
        """The order's instance is shutting down or terminated. Ended by EC2 itself before
        it ran (capacity, an internal error, a bad volume) it never was delivered: the order
        fails and its price goes back to credit. Ended any other way (by the buyer from
        inside, by an operator, for a reason EC2 did not give) it is `terminated`, not
        refunded, and the operator sees it."""
        reason = instance.state_reason or "unknown"
        if reason not in LAUNCH_FAILED:
            if await self.queue.end_terminated(
                job.order_id, f"instance {instance.instance_id} {instance.state}: {reason}"
            ):
                metrics.ORDER_TRANSITIONS.labels(state="terminated").inc()
                log.warning(
                    fields(
                        "order_state",
                        order_id=job.order_id,
                        state="terminated",
                        instance_id=instance.instance_id,
                        reason=reason,
                    )
                )
            return
        await self._fail(
            job, f"instance {instance.instance_id} {instance.state} before it ran: {reason}"
        )

    async def _cloud_error(self, job: ProvisionJob, exc: CloudError) -> None:
        metrics.AWS_ERRORS.labels(kind=exc.kind.value, code=exc.code or "no_answer").inc()
        decision = ProvisionRetry(
            RetryPolicy(self.config.retry_base, self.config.retry_cap),
            self.config.capacity_attempts,
        ).decide(exc.kind, job.attempts, self.rng)
        if not decision.retry:
            await self._fail(job, str(exc))
            return
        delay = decision.delay
        await self.queue.release(job.order_id, delay, str(exc))
        log.warning(
            fields(
                "provision_retry",
                order_id=job.order_id,
                kind=exc.kind.value,
                code=exc.code,
                attempt=job.attempts,
                wait=f"{delay:.2f}s",
                # The reason, not only the code: with no answer from AWS the code is null
                # and the line said nothing. Whitespace folded and capped: one line stays one.
                reason=" ".join(str(exc).split())[:300],
            )
        )

    async def _fail(self, job: ProvisionJob, reason: str) -> None:
        refunded = await self.queue.fail(job.order_id, reason)
        if refunded is not None:
            metrics.ORDER_TRANSITIONS.labels(state="failed").inc()
            log.error(
                fields(
                    "order_state",
                    order_id=job.order_id,
                    state="failed",
                    refunded=refunded,
                    reason=reason,
                )
            )

    async def _heartbeat(self, job: ProvisionJob) -> None:
        interval = max(self.queue.claim_for.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            if not await self.queue.heartbeat(job.order_id):
                return

    @staticmethod
    def _must(recorded: bool) -> None:
        if not recorded:
            raise ClaimLost
