"""Provisioning against moto's EC2 server over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cloudhelpers import AWS_ENV, FaultProxy, ec2_client, instances_by_order
from tests.keyhelpers import new_ssh_key
from watcher.adapters.cloud.ec2 import open_ec2
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.ledger import Ledger
from watcher.adapters.ledger.schema import JobRecord
from watcher.domain.catalog import Catalog
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.payment import Payment
from watcher.domain.pricing import Plan
from watcher.ports.cloud import Cloud
from watcher.services.provisioner import Provisioner, ProvisionerConfig

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
    return ec2_plan(name, 10 * CTK, "t3.micro", ami)


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
            Provisioner(JobQueue(engine, f"test-{n}", 30), Cloud(cloud), catalog, config)
            for n in range(workers)
        ]
        import asyncio

        results = await asyncio.gather(*(p.drain(max_wait=30) for p in provisioners))
    return max(results)


async def assert_balanced(engine: AsyncEngine) -> None:
    totals = await queries.totals(engine, 1337)
    assert totals.paid == totals.credit + totals.spent


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
        states = set((await conn.execute(select(JobRecord.state))).scalars())
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


# --- issue 8: the cloud is the truth, whatever the ledger says ---


async def test_an_empty_ledger_rebuilt_from_the_chain_launches_nothing_again(
    database_url: str, moto: Any, moto_ami: str, tmp_path: Any
) -> None:
    """Issue 8.2: the same payments recorded into a second, empty ledger (a lost file, a
    replay into an empty ledger, another working directory) find their instances by tag:
    no second instance; an order whose instance was terminated meanwhile is `terminated`,
    not bought again."""
    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    first = create_engine(database_url)
    await migrations.upgrade(first)
    await pay(first, catalog, (ALICE, 20), (BOB, 10))
    assert await drain(first, moto.url, catalog) == 0
    launched = {o.order_id: o.instance_id for o in await queries.orders(first)}
    await first.dispose()
    assert len(launched) == 3
    gone = sorted(launched)[0]
    ec2_client(moto.url).terminate_instances(InstanceIds=[launched[gone]])

    second = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'second.db'}")
    await migrations.upgrade(second)
    try:
        await pay(second, catalog, (ALICE, 20), (BOB, 10))
        assert await drain(second, moto.url, catalog) == 0
        orders = {o.order_id: o for o in await queries.orders(second)}
    finally:
        await second.dispose()
    assert {k: o.instance_id for k, o in orders.items()} == launched
    assert orders[gone].state == "terminated"
    assert {o.state for k, o in orders.items() if k != gone} == {"running"}
    assert sorted(len(v) for v in instances_by_order(moto.url).values()) == [1, 1, 1]


async def test_not_found_right_after_launch_is_not_read_as_gone(
    engine: AsyncEngine, moto: Any, moto_ami: str
) -> None:
    """Issue 8.3: DescribeInstances answers InvalidInstanceID.NotFound for 3 s after
    RunInstances (EC2's eventual consistency): the order waits, nothing is refunded, no
    second instance is bought."""
    import time

    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    await pay(engine, catalog, (ALICE, 20))
    started: list[float] = []

    def lagging() -> bool:
        if not started:
            started.append(time.monotonic())
        return time.monotonic() - started[0] < 3.0

    proxy = await FaultProxy(moto.url, describe_not_found=lagging).start()
    config = ProvisionerConfig(retry_base=0.02, retry_cap=0.2, idle_poll=0.05, gone_after=60)
    try:
        assert await drain(engine, proxy.url, catalog, config=config) == 0
    finally:
        await proxy.stop()
    assert proxy.not_found_answers > 0
    assert [o.state for o in await queries.orders(engine)] == ["running", "running"]
    assert sorted(len(v) for v in instances_by_order(moto.url).values()) == [1, 1]
    assert (await queries.credits(engine))[0].balance == 0  # nothing refunded
    await assert_balanced(engine)


async def test_gone_needs_the_tag_look_up_to_agree(
    engine: AsyncEngine, moto: Any, moto_ami: str
) -> None:
    """Describe by id answers NotFound for ever, past the confirmation window: the tag
    look-up still finds the instance, so the order is not failed and not refunded."""
    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    await pay(engine, catalog, (ALICE, 10))
    proxy = await FaultProxy(moto.url, describe_not_found=lambda: True).start()
    config = ProvisionerConfig(
        retry_base=0.02, retry_cap=0.2, idle_poll=0.05, gone_after=0.2, gone_confirmations=2
    )
    try:
        assert await drain(engine, proxy.url, catalog, config=config) == 0
    finally:
        await proxy.stop()
    (order,) = await queries.orders(engine)
    assert order.state == "running"
    assert (await queries.credits(engine))[0].balance == 0
    assert sorted(len(v) for v in instances_by_order(moto.url).values()) == [1]


async def test_a_paid_order_keeps_its_plan_when_the_catalog_changes(
    engine: AsyncEngine, moto: Any, moto_ami: str
) -> None:
    """Issue 8.4: an order paid for a t3.large at 40 CTK launches a t3.large tagged 40 CTK
    even after the operator removed that plan (it used to fall back to the default)."""
    large = ec2_plan("large", 40 * CTK, "t3.large", moto_ami)
    await pay(engine, Catalog({"large": large}, "large"), (ALICE, 40))
    today = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    assert await drain(engine, moto.url, today) == 0
    (order,) = await queries.orders(engine)
    (instance,) = instances_by_order(moto.url)[order.order_id]
    assert instance["InstanceType"] == "t3.large"
    assert instance["TagMap"]["TokenCost"] == "40"
    assert order.amount == 40 * CTK and order.plan == "large"


async def test_the_cloud_sweep_reports_an_instance_lost_outside_the_watcher(
    engine: AsyncEngine, moto: Any, moto_ami: str
) -> None:
    """Issue 8.9: the cloud lost instances and their orders stayed `running` with nothing
    saying so. The sweep of `watcher run` compares and counts (it changes nothing)."""
    from watcher.runtime.audit import CloudSweep
    from watcher.shared import metrics

    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    await pay(engine, catalog, (ALICE, 20))
    assert await drain(engine, moto.url, catalog) == 0
    orders = await queries.orders(engine)
    lost = orders[0]
    ec2_client(moto.url).terminate_instances(InstanceIds=[lost.instance_id])
    async with open_ec2("us-east-1", moto.url, 10) as cloud:
        sweep = CloudSweep(engine, Cloud(cloud), interval=1)
        assert await sweep.sweep_once() == []  # seen once: not yet a finding
        found = await sweep.sweep_once()
    assert found is not None
    assert [(d.kind.value, d.order_id, d.resource) for d in found] == [
        ("resource_ended", lost.order_id, lost.instance_id)
    ]
    gauge = metrics.CLOUD_DIFFERENCES.labels(kind="resource_ended")._value.get()
    assert gauge == 1
    assert metrics.CLOUD_DIFFERENCES.labels(kind="resource_missing")._value.get() == 0
    async with open_ec2("us-east-1", "http://127.0.0.1:9", 1) as unreachable:
        assert await CloudSweep(engine, Cloud(unreachable), interval=1).sweep_once() is None
    assert metrics.CLOUD_DIFFERENCES.labels(kind="resource_ended")._value.get() == 1


async def test_an_error_while_looking_never_fails_or_refunds_an_order(
    engine: AsyncEngine, moto: Any, moto_ami: str
) -> None:
    """AuthFailure (a credential rotation, clock skew) on DescribeInstances says nothing
    about the order's instance: retried, never read as a permanent failure."""
    import time

    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    await pay(engine, catalog, (ALICE, 10))
    started: list[float] = []

    def auth_failure_for_a_while() -> str | None:
        if not started:
            started.append(time.monotonic())
        return "auth" if time.monotonic() - started[0] < 1.5 else None

    proxy = await FaultProxy(moto.url, describe_fault=auth_failure_for_a_while).start()
    try:
        assert await drain(engine, proxy.url, catalog, workers=1) == 0
    finally:
        await proxy.stop()
    (order,) = await queries.orders(engine)
    assert order.state == "running"
    assert (await queries.credits(engine))[0].balance == 0
    assert sorted(len(v) for v in instances_by_order(moto.url).values()) == [1]


async def test_a_poisoned_order_is_put_aside_and_the_others_go_on(
    engine: AsyncEngine, moto: Any, moto_ami: str
) -> None:
    """An order whose row makes the worker raise (a bug, a hand edit) must not stop the
    service: it is put aside with the error on it, the others are provisioned."""
    from sqlalchemy import update as sql_update

    from watcher.adapters.ledger.schema import OrderRecord

    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    await pay(engine, catalog, (ALICE, 10), (BOB, 10))
    orders = await queries.orders(engine)
    poisoned, healthy = orders[0], orders[1]
    async with engine.begin() as conn:
        await conn.execute(
            sql_update(OrderRecord)
            .where(OrderRecord.order_id == poisoned.order_id)
            .values(resource='{"kind":"ec2_instance"}')
        )
    async with open_ec2("us-east-1", moto.url, 10) as cloud:
        worker = Provisioner(JobQueue(engine, "w", 30), Cloud(cloud), catalog, FAST)
        for _ in range(4):
            await worker.work_one()
    states = {o.order_id: o for o in await queries.orders(engine)}
    assert states[healthy.order_id].state == "running"
    assert states[poisoned.order_id].state == "launching"
    assert "internal error: ValueError: the ec2_instance specification names no instance_type" in (
        states[poisoned.order_id].last_error or ""
    )


async def test_an_order_that_already_ended_closes_its_job_instead_of_spinning(
    engine: AsyncEngine, moto: Any, moto_ami: str
) -> None:
    from sqlalchemy import update as sql_update

    from watcher.adapters.ledger.schema import OrderRecord

    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    await pay(engine, catalog, (ALICE, 10))
    # A worker took the job and gave it back; then a hand edit ended the order.
    queue = JobQueue(engine, "w", 30)
    job = await queue.claim()
    assert job is not None
    await queue.release(job.order_id, 0, None)
    async with engine.begin() as conn:
        await conn.execute(sql_update(OrderRecord).values(state="running", instance_id="i-1"))
    async with open_ec2("us-east-1", moto.url, 10) as cloud:
        worker = Provisioner(JobQueue(engine, "w", 30), Cloud(cloud), catalog, FAST)
        assert await worker.work_one()
        assert not await worker.work_one()  # nothing left to claim
    async with engine.connect() as conn:
        assert set((await conn.execute(select(JobRecord.state))).scalars()) == {"done"}


async def test_a_drafted_orders_ssh_key_goes_onto_its_instance(
    engine: AsyncEngine, moto: Any, moto_ami: str
) -> None:
    """The buyer's key reaches the instance as cloud-init user data in RunInstances itself
    (issue 10): an `ssh_authorized_keys` document, each key a quoted string."""
    import base64
    from datetime import UTC, datetime

    import yaml  # type: ignore[import-untyped]

    from watcher.adapters.ledger.drafts import Drafts
    from watcher.domain.drafts import draft_terms, quote

    # A comment with YAML syntax and a character outside ASCII: only type and body go.
    key = new_ssh_key("a: #b 🚀")
    catalog = Catalog({"t3.micro": plan(moto_ami)}, "t3.micro")
    terms = draft_terms(catalog, "t3.micro", 1, key, None)
    now = datetime.now(UTC)
    draft = await Drafts(engine, 1337).create(ALICE, terms, quote(terms, now), now)
    paid = Payment(1337, "0x" + "ab" * 32, 0, 5, "0x" + "cd" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, catalog, vending=False).record(
        [paid], block_times={5: now}, named={(paid.tx_hash, 0): draft.reference}
    )
    moto.reset()
    async with open_ec2("us-east-1", moto.url, 10) as cloud:
        worker = Provisioner(JobQueue(engine, "w", 30), Cloud(cloud), catalog, FAST)
        assert await worker.drain(max_wait=30) == 0
    (order,) = await queries.orders(engine)
    assert order.state == "running" and order.instance_id is not None
    answer = ec2_client(moto.url).describe_instance_attribute(
        InstanceId=order.instance_id, Attribute="userData"
    )
    document = base64.b64decode(answer["UserData"]["Value"]).decode()
    assert document.startswith("#cloud-config\n")
    assert yaml.safe_load(document) == {"ssh_authorized_keys": [" ".join(key.split()[:2])]}
