"""`watcher audit`: the live ledger against a fresh replay of the chain and against the
cloud. It changes nothing: the replay goes into a scratch SQLite ledger in a temporary
folder, and the cloud is only described."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger import queries
from watcher.adapters.ledger.drafts import copy_unplaced
from watcher.adapters.ledger.lease_book import LeaseBook
from watcher.adapters.ledger.ledger import ChainMismatch
from watcher.domain.order import OrderState
from watcher.domain.reconcile import (
    Difference,
    DifferenceKind,
    OrderFacts,
    PaymentFacts,
    ResourceFacts,
    check_money,
    check_orders_paid,
    compare_cloud,
    compare_orders,
    compare_payments,
)
from watcher.ports.cloud import Cloud, Instance
from watcher.runtime.config import Settings
from watcher.runtime.service import open_cloud, open_database, open_watcher
from watcher.services.replay import replay
from watcher.shared import metrics
from watcher.shared.logs import fields
from watcher.shared.waiting import pause

log = logging.getLogger("watcher.runtime.audit")


@dataclass
class AuditReport:
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        counted = ", ".join(
            f"{n} {what if n != 1 else what.removesuffix('s')}" for what, n in self.checked.items()
        )
        if self.clean:
            return f"audit: clean ({counted})"
        return f"audit: {len(self.differences)} differences ({counted})"

    def as_json(self) -> dict[str, object]:
        return {
            "clean": self.clean,
            "differences": [d.as_json() for d in self.differences],
            "notes": self.notes,
            "checked": self.checked,
        }


def payment_facts(rows: Sequence[object]) -> list[PaymentFacts]:
    return [
        PaymentFacts(p.tx_hash, p.log_index, p.block_number, p.payer, p.amount)  # type: ignore[attr-defined]
        for p in rows
    ]


def order_facts(rows: Sequence[queries.OrderView]) -> list[OrderFacts]:
    return [
        OrderFacts(
            order_id=o.order_id,
            payer=o.payer,
            amount=o.amount,
            plan=o.plan,
            resource=o.resource,
            state=OrderState(o.state),
            resource_id=o.instance_id,
            unfunded=o.reorged,
            tx_hash=o.tx_hash,
            log_index=o.log_index,
            block_number=o.block_number,
            lease_state=o.lease_state,
        )
        for o in rows
    ]


async def audit(settings: Settings, *, chain: bool, cloud: bool) -> AuditReport:
    report = AuditReport()
    async with open_database(settings, migrate=False) as live:
        if chain:
            await _audit_chain(settings, live, report)
        if cloud:
            orders = order_facts(await queries.orders(live))
            await _audit_cloud(settings, orders, report)
    return report


async def _audit_chain(settings: Settings, live: AsyncEngine, report: AuditReport) -> None:
    with tempfile.TemporaryDirectory(prefix="watcher-audit-") as folder:
        # The replay goes exactly as far as the ledger did, whatever the confirmations
        # setting of this shell: the ledger's cursor was safe when it was recorded.
        scratch = dataclasses.replace(
            settings,
            database_url=f"sqlite+aiosqlite:///{Path(folder) / 'replay.db'}",
            mqtt_url=None,
            confirmations=0,
            finality="confirmations",
        )
        async with open_watcher(scratch, max_attempts=8) as fresh:
            chain_id = fresh.ledger.chain_id
            snapshot = await queries.ledger_snapshot(live, chain_id)
            genesis = await fresh.source.block(0)
            if (
                snapshot.genesis_hash is not None
                and genesis is not None
                and snapshot.genesis_hash.lower() != genesis.hash.lower()
            ):
                raise ChainMismatch(
                    f"the ledger follows chain {chain_id} with genesis block "
                    f"{snapshot.genesis_hash[:18]}..., the node serves another chain with that "
                    "id (a restarted dev chain?): there is nothing to compare"
                )
            # Drafts are not on chain: the replay needs them to place what payments named.
            await copy_unplaced(live, fresh.engine, chain_id)
            last = snapshot.cursor if snapshot.cursor is not None else await fresh.follower.target()
            if last >= settings.start_block:
                await replay(fresh.follower, fresh.ledger, settings.start_block, last)
            replayed_payments = await queries.payments(fresh.engine, chain_id)
            replayed_orders = await queries.orders(fresh.engine, chain_id)
            replayed_credit = {c.payer: c.balance for c in await queries.credits(fresh.engine)}
    live_payments = payment_facts(snapshot.payments)
    live_orders = order_facts(snapshot.orders)
    report.differences += compare_payments(live_payments, payment_facts(replayed_payments))
    report.differences += check_money(live_payments, snapshot.credit, live_orders)
    report.differences += check_orders_paid(live_orders, live_payments)
    found, notes = compare_orders(
        live_orders,
        order_facts(replayed_orders),
        snapshot.credit,
        replayed_credit,
        vending=settings.vends,
    )
    report.differences += found
    report.notes += notes
    report.checked["payments"] = len(live_payments)
    report.checked["orders"] = len(live_orders)
    report.checked["payers"] = len({p.payer for p in live_payments})


async def _audit_cloud(settings: Settings, orders: list[OrderFacts], report: AuditReport) -> None:
    resources = await cloud_resources(settings)
    report.differences += compare_cloud(orders, resources)
    report.checked.setdefault("orders", len(orders))
    report.checked["resources"] = len(resources)


async def cloud_resources(settings: Settings) -> list[ResourceFacts]:
    async with open_cloud(settings) as cloud:
        instances = await cloud.tagged_instances()
    return resource_facts(instances)


def resource_facts(instances: Sequence[Instance]) -> list[ResourceFacts]:
    """What the comparison needs of the cloud's tagged instances."""
    return [ResourceFacts(i.instance_id, i.tag("OrderId"), not i.ended, i.state) for i in instances]


class CloudSweep:
    """`watcher run`'s periodic look at the cloud: the same comparison as `watcher audit`,
    counted in watcher_cloud_differences and logged once per new difference. It only
    reports: a sweep that got an error or a partial answer concludes nothing."""

    def __init__(
        self,
        engine: AsyncEngine,
        cloud: Cloud,
        interval: float,
        lease_book: LeaseBook | None = None,
    ) -> None:
        self.engine = engine
        self.cloud = cloud
        self.interval = interval
        # With leases enforced: a resource ended outside the watcher, seen twice in a
        # row, ends its lease and refunds the whole periods not begun.
        self.lease_book = lease_book
        # Orders and instances are read at different moments: an order launched between
        # the two reads looks odd once. A difference counts when two sweeps in a row see it.
        self._seen: set[tuple[str, str | None, str | None]] = set()
        self._reported: set[tuple[str, str | None, str | None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await pause(stop, self.interval)
            if not stop.is_set():
                await self.sweep_once()

    async def sweep_once(self) -> list[Difference] | None:
        try:
            orders = order_facts(await queries.orders(self.engine))
            instances = await self.cloud.tagged_instances()
        except Exception as exc:  # the database or the cloud: no answer, no conclusion
            metrics.CLOUD_SWEEPS.labels(outcome="error").inc()
            log.warning(fields("cloud_sweep_failed", error=str(exc)[:200]))
            return None
        candidates = compare_cloud(orders, resource_facts(instances))
        metrics.CLOUD_SWEEPS.labels(outcome="done").inc()
        keys_now = {(d.kind.value, d.order_id, d.resource) for d in candidates}
        found = [d for d in candidates if (d.kind.value, d.order_id, d.resource) in self._seen]
        self._seen = keys_now
        counts = Counter(d.kind for d in found)
        for kind in DifferenceKind:
            if kind.value.startswith("resource_"):
                metrics.CLOUD_DIFFERENCES.labels(kind=kind.value).set(counts.get(kind, 0))
        keys = {(d.kind.value, d.order_id, d.resource) for d in found}
        for difference in found:
            key = (difference.kind.value, difference.order_id, difference.resource)
            if key not in self._reported:
                log.error(
                    fields(
                        "cloud_difference",
                        kind=difference.kind.value,
                        order_id=difference.order_id,
                        resource=difference.resource,
                        detail=difference.detail,
                    )
                )
        self._reported = keys
        if self.lease_book is not None:
            for difference in found:
                # Ended, or gone from the cloud's answers altogether (EC2 forgets a
                # terminated instance after about an hour): both seen twice in a row.
                gone = (DifferenceKind.RESOURCE_ENDED, DifferenceKind.RESOURCE_MISSING)
                if difference.kind in gone and difference.order_id:
                    ended = await self.lease_book.ended_outside(
                        difference.order_id, difference.resource or "", difference.detail
                    )
                    if ended:
                        log.warning(
                            fields(
                                "lease_ended_outside",
                                order_id=difference.order_id,
                                resource=difference.resource,
                            )
                        )
        return found
