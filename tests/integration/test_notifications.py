"""MQTT order events through a real Mosquitto broker: every state change once per order, in
order, retained; a broker outage delays them and loses none, and never blocks the ledger."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cloudhelpers import AWS_ENV
from tests.mqtthelpers import Broker, Subscriber
from watcher.adapters.cloud.ec2 import open_ec2
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.ledger import Ledger
from watcher.domain.catalog import Catalog
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.payment import Payment
from watcher.ports.cloud import Cloud
from watcher.services.notify import OrderEventPublisher, order_topic, parse_mqtt_url
from watcher.services.provisioner import Provisioner, ProvisionerConfig

CTK = 10**18
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
STATES = ["queued", "launching", "launched", "running"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    server = Broker(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
async def engine(
    database_url: str, monkeypatch: pytest.MonkeyPatch, moto: Any
) -> AsyncIterator[AsyncEngine]:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    moto.reset()
    engine = create_engine(database_url)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


async def pay_and_provision(
    engine: AsyncEngine, moto: Any, ami: str, salt: str, ctk: int, payer: str = ALICE
) -> None:
    plan = ec2_plan("t3.micro", 10 * CTK, "t3.micro", ami)
    catalog = Catalog({plan.name: plan}, plan.name)
    tx = "0x" + hashlib.sha256(salt.encode()).hexdigest()
    await Ledger(engine, 1337, catalog, events=True).record(
        [Payment(1337, tx, 0, 5, "0x" + "ab" * 32, payer, ctk * CTK)]
    )  # type: ignore[arg-type]
    async with open_ec2("us-east-1", moto.url, 10) as cloud:
        queue = JobQueue(engine, f"w-{salt}", 30, events=True)
        assert (
            await Provisioner(
                queue, Cloud(cloud), catalog, ProvisionerConfig(idle_poll=0.05)
            ).drain(30)
            == 0
        )


def by_order(received: list[tuple[str, dict[str, Any] | None]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for topic, payload in received:
        assert payload is not None
        found.setdefault(topic, []).append(payload)
    return found


async def wait_for(predicate: Any, seconds: float = 15) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_each_state_change_once_in_order_and_retained(
    engine: AsyncEngine, moto: Any, moto_ami: str
) -> None:
    # The machine's own broker (127.0.0.1:1883; .ci/run starts it). A fresh payer address
    # keeps retained messages of earlier runs off this test's topics.
    payer = Account.create().address
    subscriber = Subscriber(1883, f"ctk/1337/orders/{payer}/#")
    listening = asyncio.create_task(subscriber.run())
    publisher = OrderEventPublisher(engine, parse_mqtt_url("mqtt://127.0.0.1:1883"), idle_poll=0.05)
    publishing = asyncio.create_task(publisher.run())
    try:
        await asyncio.wait_for(subscriber.ready.wait(), 10)
        await pay_and_provision(engine, moto, moto_ami, "one", 20, payer)
        await wait_for(lambda: len(subscriber.received) == 8)
        orders = await queries.orders(engine)
        events = by_order(subscriber.received)
        assert set(events) == {order_topic(1337, payer, o.order_id) for o in orders}
        for order in orders:
            payloads = events[order_topic(1337, payer, order.order_id)]
            assert [p["state"] for p in payloads] == STATES  # once each, in order
            ids = [p["event_id"] for p in payloads]
            assert ids == sorted(ids)
            assert payloads[-1]["instance_id"] == order.instance_id
            assert payloads[0]["amount"] == str(10 * CTK)

        # A wallet subscribing later gets the current state of each order at once.
        late = Subscriber(1883, f"ctk/1337/orders/{payer}/#")
        late_task = asyncio.create_task(late.run())
        await wait_for(lambda: len(late.received) == 2)
        assert {p["state"] for _, p in late.received if p} == {"running"}
        late_task.cancel()
    finally:
        publisher.stop.set()
        await asyncio.wait_for(publishing, 10)
        listening.cancel()


async def test_a_broker_outage_delays_events_and_loses_none(
    engine: AsyncEngine, broker: Broker, moto: Any, moto_ami: str
) -> None:
    from watcher.shared import metrics

    reconnects = metrics.MQTT_RECONNECTS._value.get()
    publisher = OrderEventPublisher(engine, parse_mqtt_url(broker.url), idle_poll=0.05)
    publishing = asyncio.create_task(publisher.run())
    await asyncio.sleep(0.3)
    broker.stop()
    # The ledger and the provisioner carry on while the broker is away...
    await asyncio.wait_for(pay_and_provision(engine, moto, moto_ami, "two", 30), 60)
    assert [o.state for o in await queries.orders(engine)] == ["running"] * 3
    # ...and the publisher keeps trying without failing.
    await wait_for(lambda: metrics.MQTT_RECONNECTS._value.get() > reconnects)
    assert not publishing.done()
    publisher.stop.set()
    await asyncio.wait_for(publishing, 10)

    broker.start()
    subscriber = Subscriber(broker.port, f"ctk/1337/orders/{ALICE}/#")
    listening = asyncio.create_task(subscriber.run())
    await asyncio.wait_for(subscriber.ready.wait(), 10)
    after = OrderEventPublisher(engine, parse_mqtt_url(broker.url), idle_poll=0.05)
    publishing = asyncio.create_task(after.run())
    try:
        await wait_for(lambda: len(subscriber.received) == 12, 30)
        events = by_order(subscriber.received)
        assert len(events) == 3
        for payloads in events.values():
            assert [p["state"] for p in payloads] == STATES  # every change, once, in order
    finally:
        after.stop.set()
        await asyncio.wait_for(publishing, 10)
        listening.cancel()


async def test_the_backlog_gauge_counts_unpublished_events_while_the_broker_is_down(
    engine: AsyncEngine, broker: Broker, moto: Any, moto_ami: str
) -> None:
    from watcher.services.monitoring import keep_ledger_gauges
    from watcher.shared import metrics

    broker.stop()
    metrics.MQTT_BACKLOG.set(0)
    reconnects = metrics.MQTT_RECONNECTS._value.get()
    publisher = OrderEventPublisher(engine, parse_mqtt_url(broker.url), idle_poll=0.05)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(publisher.run()),
        asyncio.create_task(keep_ledger_gauges(engine, stop, events=True)),
    ]
    try:
        await asyncio.wait_for(pay_and_provision(engine, moto, moto_ami, "three", 20), 60)
        await wait_for(lambda: metrics.MQTT_RECONNECTS._value.get() > reconnects)
        # 2 orders x 4 state changes, none published: the gauge says so within one refresh.
        assert await publisher.backlog() == 8
        await wait_for(lambda: metrics.MQTT_BACKLOG._value.get() == 8)
    finally:
        publisher.stop.set()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
