"""Provisioning against moto's EC2 server over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cloudhelpers import AWS_ENV, FaultProxy, instances_by_order
from watcher.catalog import Catalog
from watcher.cloud.ec2 import open_ec2
from watcher.core.payment import Payment
from watcher.core.pricing import Plan
from watcher.ledger import migrations, queries
from watcher.ledger.database import create_engine
from watcher.ledger.jobs import JobQueue
from watcher.ledger.ledger import Ledger
from watcher.ledger.schema import ProvisionJobRecord
from watcher.provisioner import Provisioner, ProvisionerConfig

CTK = 10**18
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
FAST = ProvisionerConfig(retry_base=0.02, retry_cap=0.2, capacity_attempts=3, idle_poll=0.05)


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch, moto: Any) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    moto.reset()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


def plan(ami: str, name: str = "t3.micro") -> Plan:
    return Plan(name=name, price=10 * CTK, instance_type="t3.micro", ami=ami)


async def pay(engine: AsyncEngine, catalog: Catalog, *payments: tuple[str, int]) -> None:
    ledger = Ledger(engine, 1337, catalog)
    records = []
    for n, (payer, ctk) in enumerate(payments):
        tx = "0x" + hashlib.sha256(f"{payer}{ctk}{n}{id(catalog)}".encode()).hexdigest()
        records.append(Payment(1337, tx, n, 10 + n, "0x" + "bb" * 32, payer, ctk * CTK))  # type: ignore[arg-type]
    await ledger.record(records)


async def drain(
    engine: AsyncEngine,
    endpoint: str,
    catalog: Catalog,
    workers: int = 2,
    config: ProvisionerConfig = FAST,
) -> int:
    async with open_ec2("us-east-1", endpoint, 10) as cloud:
        provisioners = [
            Provisioner(JobQueue(engine, f"test-{n}", 30), cloud, catalog, config)
            for n in range(workers)
        ]
        import asyncio

        results = await asyncio.gather(*(p.drain(max_wait=30) for p in provisioners))
    return max(results)


async def assert_balanced(engine: AsyncEngine) -> None:
    totals = await queries.totals(engine, 1337)
    assert totals.paid == totals.credit + totals.ordered


async def test_one_tagged_instance_per_order(engine: AsyncEngine, moto: Any, moto_ami: str) -> None:
    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    await pay(engine, catalog, (ALICE, 25), (BOB, 10))
    assert await drain(engine, moto.url, catalog) == 0

    orders = await queries.orders(engine)
    assert len(orders) == 3 and all(o.state == "running" and o.instance_id for o in orders)
    by_order = instances_by_order(moto.url)
    assert set(by_order) == {o.order_id for o in orders}
    for order in orders:
        (instance,) = by_order[order.order_id]
        assert instance["InstanceId"] == order.instance_id
        assert instance["ImageId"] == moto_ami and instance["InstanceType"] == "t3.micro"
        assert instance["TagMap"] == {
            "AllocatedBy": "TokenSystem",
            "TokenCost": "10",
            "PaidBy": order.payer,
            "PaymentTx": order.tx_hash,
            "OrderId": order.order_id,
            "Name": f"watcher-{order.order_id[:12]}",
        }
        assert order.launched_at is not None
    async with engine.connect() as conn:
        states = set((await conn.execute(select(ProvisionJobRecord.state))).scalars())
    assert states == {"done"}
    await assert_balanced(engine)


async def test_a_permanent_error_fails_the_order_and_refunds_it(
    engine: AsyncEngine, moto: Any
) -> None:
    catalog = Catalog({"t3.micro": plan("ami-0000000000000dead")}, "t3.micro")
    await pay(engine, catalog, (ALICE, 25))
    assert (await queries.credits(engine))[0].balance == 5 * CTK
    assert await drain(engine, moto.url, catalog) == 0
    orders = await queries.orders(engine)
    assert [o.state for o in orders] == ["failed", "failed"]
    assert all("InvalidAMIID" in (o.failure_reason or "") for o in orders)
    assert (await queries.credits(engine))[0].balance == 25 * CTK  # every paid unit is back
    assert instances_by_order(moto.url) == {}
    await assert_balanced(engine)


@pytest.mark.parametrize("fault", ["throttle", "error500", "error503"])
async def test_throttling_and_5xx_are_retried(
    engine: AsyncEngine, moto: Any, moto_ami: str, fault: str
) -> None:
    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    await pay(engine, catalog, (ALICE, 20))
    proxy = await FaultProxy(
        moto.url, on_run_instances=lambda n: fault if n <= 3 else "pass"
    ).start()
    try:
        assert await drain(engine, proxy.url, catalog) == 0
    finally:
        await proxy.stop()
    assert proxy.calls == 5 and proxy.forwarded == 2
    orders = await queries.orders(engine)
    assert [o.state for o in orders] == ["running", "running"]
    assert sorted(len(v) for v in instances_by_order(moto.url).values()) == [1, 1]


async def test_capacity_errors_fail_after_a_bounded_number_of_tries(
    engine: AsyncEngine, moto: Any, moto_ami: str
) -> None:
    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    await pay(engine, catalog, (BOB, 10))
    proxy = await FaultProxy(moto.url, on_run_instances=lambda n: "capacity").start()
    try:
        assert await drain(engine, proxy.url, catalog, workers=1) == 0
    finally:
        await proxy.stop()
    (order,) = await queries.orders(engine)
    assert order.state == "failed" and "InsufficientInstanceCapacity" in (
        order.failure_reason or ""
    )
    assert proxy.calls == FAST.capacity_attempts
    assert (await queries.credits(engine))[0].balance == 10 * CTK
