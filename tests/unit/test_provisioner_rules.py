"""The provisioner's rules, on FakeProvider and a real SQLite ledger (fast and deterministic).

FakeProvider passes the provider contract suite that the EC2 adapter passes against moto's
server (tests/integration/test_provider_contract.py); tests/integration/test_provisioning.py
keeps the same rules' end-to-end checks over HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.cloud.fake import NO_CAPACITY, USER_SHUTDOWN, FakeProvider, Fault
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.ledger import Ledger
from watcher.domain.catalog import Catalog
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.payment import Payment
from watcher.domain.provisioning import client_token, instance_tags
from watcher.ports.cloud import Cloud, Instance, LaunchRequest
from watcher.services.provisioner import Provisioner, ProvisionerConfig

CTK = 10**18
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
IMAGE = "ami-0fa4e0000000000a1"
PLAN = ec2_plan("t3.micro", 10 * CTK, "t3.micro", IMAGE)
CATALOG = Catalog({"t3.micro": PLAN}, "t3.micro")
FAST = ProvisionerConfig(retry_base=0.001, retry_cap=0.01, capacity_attempts=3, idle_poll=0.005)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


async def pay(engine: AsyncEngine, *payments: tuple[str, int]) -> list[str]:
    """Record the payments; return the ids of the orders they bought."""
    records = []
    for n, (payer, ctk) in enumerate(payments):
        tx = "0x" + hashlib.sha256(f"{payer}{ctk}{n}".encode()).hexdigest()
        records.append(Payment(1337, tx, n, 10 + n, "0x" + "bb" * 32, payer, ctk * CTK))  # type: ignore[arg-type]
    await Ledger(engine, 1337, CATALOG).record(records)
    return [o.order_id for o in await queries.orders(engine)]


async def drain(
    engine: AsyncEngine, cloud: FakeProvider, config: ProvisionerConfig = FAST, workers: int = 1
) -> None:
    import asyncio

    provisioners = [
        Provisioner(JobQueue(engine, f"w{n}", 30), Cloud(cloud), CATALOG, config)
        for n in range(workers)
    ]
    left = await asyncio.gather(*(p.drain(max_wait=10) for p in provisioners))
    assert max(left) == 0


async def credit(engine: AsyncEngine, payer: str = ALICE) -> int:
    (view,) = await queries.credits(engine, 1337, payer)
    return view.balance


async def assert_balanced(engine: AsyncEngine) -> None:
    totals = await queries.totals(engine, 1337)
    assert totals.paid == totals.credit + totals.spent


def cloud(**knobs: object) -> FakeProvider:
    return FakeProvider(images=[IMAGE], **knobs)  # type: ignore[arg-type]


async def test_every_order_gets_exactly_one_tagged_instance(engine: AsyncEngine) -> None:
    await pay(engine, (ALICE, 25), (BOB, 10))
    fake = cloud()
    await drain(engine, fake, workers=2)

    orders = await queries.orders(engine)
    assert len(orders) == 3 and {o.state for o in orders} == {"running"}
    by_order = {i.tag("OrderId"): i for i in fake.instances()}
    assert len(fake.instances()) == 3 and set(by_order) == {o.order_id for o in orders}
    for order in orders:
        instance = by_order[order.order_id]
        assert instance.instance_id == order.instance_id
        assert dict(instance.tags) == instance_tags(
            order.order_id, order.payer, order.tx_hash, PLAN
        )
    assert [r.client_token for r in fake.launches] == [
        client_token(r.order_id) for r in fake.launches
    ]
    # The look-up by tag came before each launch.
    assert fake.calls["find_instance"] == fake.calls["launch"] == 3
    assert await credit(engine) == 5 * CTK
    await assert_balanced(engine)


async def test_an_instance_already_tagged_with_the_order_is_recorded_not_launched_again(
    engine: AsyncEngine,
) -> None:
    """A ledger rebuilt or lost: the cloud already holds the order's instance."""
    first, second = await pay(engine, (ALICE, 20))
    fake = cloud()
    (order,) = [o for o in await queries.orders(engine) if o.order_id == first]
    existing = await fake.launch(
        LaunchRequest(
            first, client_token(first), PLAN, instance_tags(first, ALICE, order.tx_hash, PLAN)
        )
    )
    await drain(engine, fake)

    orders = {o.order_id: o for o in await queries.orders(engine)}
    assert orders[first].instance_id == existing.instance_id
    assert {o.state for o in orders.values()} == {"running"}
    assert [r.order_id for r in fake.launches] == [first, second]  # ours, then only the other


async def test_a_launch_whose_answer_was_lost_is_found_on_the_next_try(
    engine: AsyncEngine,
) -> None:
    await pay(engine, (ALICE, 10))
    fake = cloud()
    fake.fail("launch", Fault.ANSWER_LOST)
    await drain(engine, fake)

    (order,) = await queries.orders(engine)
    assert order.state == "running"
    assert fake.calls["launch"] == 1 and fake.calls["find_instance"] == 2
    assert [i.instance_id for i in fake.instances()] == [order.instance_id]


async def test_capacity_errors_fail_the_order_after_exactly_n_attempts_and_refund_it(
    engine: AsyncEngine,
) -> None:
    await pay(engine, (ALICE, 10))
    fake = cloud()
    fake.fail("launch", Fault.CAPACITY, times=None)
    await drain(engine, fake)

    (order,) = await queries.orders(engine)
    assert order.state == "failed"
    assert "InsufficientInstanceCapacity" in (order.failure_reason or "")
    assert fake.calls["launch"] == FAST.capacity_attempts
    assert fake.instances() == []
    assert await credit(engine) == 10 * CTK
    await assert_balanced(engine)


async def test_capacity_that_comes_back_in_time_launches(engine: AsyncEngine) -> None:
    await pay(engine, (ALICE, 10))
    fake = cloud()
    fake.fail("launch", Fault.CAPACITY, times=FAST.capacity_attempts - 1)
    await drain(engine, fake)

    (order,) = await queries.orders(engine)
    assert order.state == "running" and fake.calls["launch"] == FAST.capacity_attempts
    assert await credit(engine) == 0


@pytest.mark.parametrize("fault", [Fault.THROTTLING, Fault.NO_ANSWER])
async def test_throttling_and_silence_are_retried_beyond_the_capacity_attempts(
    engine: AsyncEngine, fault: Fault
) -> None:
    await pay(engine, (ALICE, 10))
    fake = cloud()
    fake.fail("launch", fault, times=FAST.capacity_attempts + 2)
    await drain(engine, fake)

    (order,) = await queries.orders(engine)
    assert order.state == "running"
    assert fake.calls["launch"] == FAST.capacity_attempts + 3
    assert len(fake.instances()) == 1  # a call that never arrived launched nothing


async def test_a_permanent_error_fails_the_order_at_once_and_refunds_it(
    engine: AsyncEngine,
) -> None:
    await pay(engine, (ALICE, 10))
    fake = cloud()
    fake.fail("launch", Fault.PERMANENT, times=None)
    await drain(engine, fake)

    (order,) = await queries.orders(engine)
    assert order.state == "failed" and "UnauthorizedOperation" in (order.failure_reason or "")
    assert fake.calls["launch"] == 1
    assert await credit(engine) == 10 * CTK
    await assert_balanced(engine)


async def test_an_image_the_cloud_does_not_have_fails_and_refunds(engine: AsyncEngine) -> None:
    await pay(engine, (ALICE, 10))
    fake = FakeProvider(images=[])
    await drain(engine, fake)

    (order,) = await queries.orders(engine)
    assert order.state == "failed" and "InvalidAMIID.NotFound" in (order.failure_reason or "")
    assert await credit(engine) == 10 * CTK


@pytest.mark.parametrize(
    ("confirmations", "after"),
    [(1, 60.0), (2, 0.0)],
    ids=["too-soon", "too-few-answers"],
)
async def test_not_found_right_after_launch_is_not_read_as_gone(
    engine: AsyncEngine, confirmations: int, after: float
) -> None:
    """EC2's eventual consistency: the new instance answers NotFound once. Gone needs
    `gone_confirmations` answers spanning `gone_after` seconds; neither is met here."""
    await pay(engine, (ALICE, 10))
    fake = cloud(describe_lag=1)
    config = ProvisionerConfig(
        retry_base=0.001,
        retry_cap=0.01,
        idle_poll=0.005,
        gone_confirmations=confirmations,
        gone_after=after,
    )
    await drain(engine, fake, config)

    (order,) = await queries.orders(engine)
    assert order.state == "running"
    assert fake.calls["describe"] == 2
    assert fake.calls["find_instance"] == 1  # the gone check never even asked
    assert fake.calls["launch"] == 1
    assert await credit(engine) == 0


async def test_gone_needs_the_tag_look_up_to_agree(engine: AsyncEngine) -> None:
    """Describe by id answers NotFound for ever, past the confirmations: the tag look-up
    still finds the instance, so the order is neither failed nor refunded."""
    await pay(engine, (ALICE, 10))
    fake = cloud(describe_lag=10**9)
    config = ProvisionerConfig(
        retry_base=0.001, retry_cap=0.01, idle_poll=0.005, gone_confirmations=1, gone_after=0
    )
    await drain(engine, fake, config)

    (order,) = await queries.orders(engine)
    assert order.state == "running"
    assert fake.calls["find_instance"] == 2 and fake.calls["launch"] == 1
    assert await credit(engine) == 0


async def test_gone_when_neither_describe_nor_the_tag_look_up_finds_it(
    engine: AsyncEngine,
) -> None:
    await pay(engine, (ALICE, 10))

    def vanish(provider: FakeProvider, instance: Instance) -> None:
        provider.forget(instance.instance_id)

    fake = cloud(after_launch=vanish)
    config = ProvisionerConfig(
        retry_base=0.001, retry_cap=0.01, idle_poll=0.005, gone_confirmations=1, gone_after=0
    )
    await drain(engine, fake, config)

    (order,) = await queries.orders(engine)
    assert order.state == "failed"
    assert f"instance {order.instance_id} was not found in 1 look-ups" in (
        order.failure_reason or ""
    )
    assert fake.calls["launch"] == 1
    assert await credit(engine) == 10 * CTK
    await assert_balanced(engine)


async def test_an_instance_ec2_ended_for_lack_of_capacity_fails_and_refunds(
    engine: AsyncEngine,
) -> None:
    await pay(engine, (ALICE, 10))

    def no_capacity(provider: FakeProvider, instance: Instance) -> None:
        provider.end(instance.instance_id, NO_CAPACITY)

    fake = cloud(after_launch=no_capacity)
    await drain(engine, fake)

    (order,) = await queries.orders(engine)
    assert order.state == "failed"
    assert order.failure_reason == (
        f"instance {order.instance_id} terminated before it ran: {NO_CAPACITY}"
    )
    assert fake.calls["launch"] == 1  # not bought again
    assert await credit(engine) == 10 * CTK
    await assert_balanced(engine)


async def test_an_instance_ended_by_its_user_is_terminated_and_not_refunded(
    engine: AsyncEngine,
) -> None:
    await pay(engine, (ALICE, 10))

    def user_shutdown(provider: FakeProvider, instance: Instance) -> None:
        provider.end(instance.instance_id, USER_SHUTDOWN)

    fake = cloud(after_launch=user_shutdown)
    await drain(engine, fake)

    (order,) = await queries.orders(engine)
    assert order.state == "terminated"
    assert fake.calls["launch"] == 1
    assert await credit(engine) == 0
    await assert_balanced(engine)


@pytest.mark.parametrize("fault", [Fault.PERMANENT, Fault.CAPACITY, Fault.NO_ANSWER])
async def test_an_error_while_looking_never_fails_an_order(
    engine: AsyncEngine, fault: Fault
) -> None:
    """AuthFailure after a credential rotation, or anything else on a look-up, says
    nothing about the order's instance: retried, more often than the capacity attempts,
    never read as a failure."""
    await pay(engine, (ALICE, 10))
    fake = cloud()
    fake.fail("find_instance", fault, times=FAST.capacity_attempts + 1)
    fake.fail("describe", fault, times=FAST.capacity_attempts + 1)
    await drain(engine, fake)

    (order,) = await queries.orders(engine)
    assert order.state == "running"
    assert fake.calls["launch"] == 1
    assert fake.calls["find_instance"] == FAST.capacity_attempts + 2
    assert await credit(engine) == 0


async def test_a_kind_no_provider_here_makes_fails_and_is_refunded(engine: AsyncEngine) -> None:
    """Plans are resource-neutral: an order sold under a kind that no provider of this
    watcher makes cannot be delivered; it fails with the reason and its price comes back."""
    from watcher.domain.pricing import Plan
    from watcher.domain.resources import ResourceSpec

    bucket = Plan("bucket", 10 * CTK, ResourceSpec.of("rds_instance", size_gib=5))
    tx = "0x" + hashlib.sha256(b"bucket").hexdigest()
    payment = Payment(1337, tx, 0, 10, "0x" + "bb" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, Catalog({"bucket": bucket}, "bucket")).record([payment])
    provider = cloud()
    await drain(engine, provider)
    (order,) = await queries.orders(engine)
    assert order.state == "failed"
    assert "no provider here makes 'rds_instance' resources" in (order.failure_reason or "")
    assert await credit(engine) == 10 * CTK and provider.launches == []
    await assert_balanced(engine)


class VolumeProvider:
    """A second kind of resource behind the same port, as small as a provider can be: a
    volume is "running" as soon as it is created. It proves that the provisioner asks the
    provider of each order's own kind, and only that one."""

    kinds = frozenset({"volume"})

    def __init__(self) -> None:
        self.volumes: dict[str, Instance] = {}
        self.calls: list[str] = []

    async def find_instance(self, order_id: str) -> Instance | None:
        self.calls.append("find_instance")
        return next((v for v in self.volumes.values() if v.tag("OrderId") == order_id), None)

    async def tagged_instances(self) -> list[Instance]:
        return list(self.volumes.values())

    async def check_plan(self, plan: object) -> list[str]:
        return []

    async def launch(self, request: LaunchRequest) -> Instance:
        self.calls.append("launch")
        volume = Instance(
            instance_id=f"vol-{len(self.volumes) + 1}",
            state="running",
            instance_type=f"{request.plan.spec.get('size_gib')} GiB",
            launched_at=None,
            tags=tuple(sorted(request.tags.items())),
        )
        self.volumes[volume.instance_id] = volume
        return volume

    async def describe(self, instance_id: str) -> Instance | None:
        self.calls.append("describe")
        return self.volumes.get(instance_id)

    async def stop(self, instance_id: str) -> None: ...

    async def start(self, instance_id: str) -> None: ...

    async def terminate(self, instance_id: str) -> None: ...


async def test_each_order_is_made_by_the_provider_of_its_own_kind(engine: AsyncEngine) -> None:
    """A new kind is a provider added to the Cloud (and catalog entries): the provisioner
    routes every order to the provider of the kind it paid for."""
    from watcher.domain.pricing import Plan
    from watcher.domain.resources import ResourceSpec

    disk = Plan("disk", 10 * CTK, ResourceSpec.of("volume", size_gib=20))
    tx = "0x" + hashlib.sha256(b"disk").hexdigest()
    payment = Payment(1337, tx, 0, 9, "0x" + "bb" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, Catalog({"disk": disk}, "disk")).record([payment])
    await pay(engine, (BOB, 10))
    ec2, volumes = cloud(), VolumeProvider()
    worker = Provisioner(JobQueue(engine, "w", 30), Cloud(ec2, volumes), CATALOG, FAST)
    assert await worker.drain(max_wait=10) == 0

    orders = {o.payer: o for o in await queries.orders(engine)}
    assert {o.state for o in orders.values()} == {"running"}
    (volume,) = volumes.volumes.values()
    assert volume.tag("OrderId") == orders[ALICE].order_id
    assert orders[ALICE].instance_id == "vol-1"
    (instance,) = ec2.instances()
    assert instance.tag("OrderId") == orders[BOB].order_id
    assert ec2.calls["launch"] == 1 and volumes.calls.count("launch") == 1
    await assert_balanced(engine)


def test_a_cloud_refuses_two_providers_of_one_kind_and_names_a_kind_it_lacks() -> None:
    import asyncio

    from watcher.domain.pricing import Plan
    from watcher.domain.resources import ResourceSpec

    with pytest.raises(ValueError, match="two providers make 'ec2_instance' resources"):
        Cloud(cloud(), cloud())
    both = Cloud(cloud(), VolumeProvider())
    assert both.kinds == {"ec2_instance", "volume"}
    bucket = Plan("bucket", CTK, ResourceSpec.of("s3_bucket"))
    assert asyncio.run(both.check_plan(bucket)) == ["no provider here makes 's3_bucket' resources"]


async def test_a_started_order_whose_kind_has_no_provider_here_is_held_not_refunded(
    engine: AsyncEngine,
) -> None:
    """Its resource may exist (launched by a watcher that had the provider): a provider
    missing here is no answer about it. The order is held with the reason, never ended
    (found in review)."""
    from sqlalchemy import update

    from watcher.adapters.ledger.schema import OrderRecord
    from watcher.domain.pricing import Plan
    from watcher.domain.resources import ResourceSpec

    disk = Plan("disk", 10 * CTK, ResourceSpec.of("volume", size_gib=20))
    tx = "0x" + hashlib.sha256(b"held").hexdigest()
    payment = Payment(1337, tx, 0, 9, "0x" + "bb" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, Catalog({"disk": disk}, "disk")).record([payment])
    # A watcher with the volume provider launched it, then stopped (its claim given back).
    queue = JobQueue(engine, "before", 30)
    job = await queue.claim()
    assert job is not None
    await queue.release(job.order_id, 0, None)
    async with engine.begin() as conn:
        await conn.execute(update(OrderRecord).values(state="launched", instance_id="vol-1"))
    ec2 = cloud()
    worker = Provisioner(JobQueue(engine, "w", 30), Cloud(ec2), CATALOG, FAST)
    assert await worker.work_one()
    (order,) = await queries.orders(engine)
    assert (order.state, order.failure_reason) == ("launched", None)
    assert order.last_error == "no provider here makes 'volume' resources: held"
    assert order.next_attempt_at is not None and await credit(engine) == 0
    assert ec2.calls["find_instance"] == ec2.calls["describe"] == 0
    await assert_balanced(engine)
