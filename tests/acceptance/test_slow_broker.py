"""A slow MQTT broker does not hold up the ledger: with every PUBACK 2 s late, `watcher run`
records payments and provisions orders at its own pace while the events trickle out, and
SIGTERM still stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from web3 import Web3

from tests.chainhelpers import CTK, DevChainDriver
from tests.cloudhelpers import AWS_ENV
from tests.mqtthelpers import Broker
from tests.proxy import TcpProxy
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.ledger import queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.schema import OrderEventRecord
from watcher.dev.devchain import DevChain

WATCHER = str(Path(sys.executable).parent / "watcher")
PAYER = dev_account(19)
ORDERS = 8


async def outbox(url: str) -> tuple[list[str], list[tuple[str, str, bool]]]:
    """Order states, and each event as (order id, state, published)."""
    engine = create_engine(url)
    try:
        orders = [o.state for o in await queries.orders(engine, 1337)]
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        OrderEventRecord.order_id,
                        OrderEventRecord.state,
                        OrderEventRecord.published_at,
                    ).order_by(OrderEventRecord.id)
                )
            ).all()
        return orders, [(r.order_id, r.state, r.published_at is not None) for r in rows]
    finally:
        await engine.dispose()


async def test_a_broker_two_seconds_late_per_puback_does_not_hold_up_provisioning(
    devchain: DevChain,
    w3: Web3,
    database_url: str,
    moto: Any,
    moto_ami: str,
    tmp_path: Path,
) -> None:
    moto.reset()
    driver = DevChainDriver(w3)
    token = driver.token()
    batcher = driver.deploy("PaymentBatcher")
    driver.fund(token, PAYER, 1000)
    start = driver.head + 1
    (tmp_path / "watcher.toml").write_text(
        f'[plans."t3.micro"]\nprice = "10"\nami = "{moto_ami}"\n'
    )
    broker = Broker(tmp_path).start()
    slow = TcpProxy(broker.port, reply_delay=2.0)  # CONNACK and every PUBACK 2 s late
    await slow.start()
    env = {
        **os.environ,
        **AWS_ENV,
        "WATCHER_RPC_URL": devchain.url,
        "WATCHER_TOKEN_ADDRESS": token.address,
        "WATCHER_DATABASE_URL": database_url,
        "WATCHER_CONFIRMATIONS": "0",
        "WATCHER_START_BLOCK": str(start),
        "WATCHER_POLL_INTERVAL": "0.2",
        "WATCHER_AWS_ENDPOINT_URL": moto.url,
        "WATCHER_AWS_REGION": "us-east-1",
        "WATCHER_WORKERS": "4",
        "WATCHER_MQTT_URL": f"mqtt://127.0.0.1:{slow.port}",
        "WATCHER_METRICS_PORT": "0",
        "WATCHER_HTTP_PORT": "0",
    }
    if not database_url.startswith("sqlite"):
        upgrade = await asyncio.create_subprocess_exec(
            WATCHER, "db", "upgrade", env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL
        )
        assert await upgrade.wait() == 0
    log = tmp_path / "run.log"
    with log.open("w") as err:
        process = await asyncio.create_subprocess_exec(
            WATCHER, "run", env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=err
        )
    try:
        deadline = time.monotonic() + 60  # only keeps a broken run from hanging the suite
        while "mqtt_connected" not in log.read_text():
            assert process.returncode is None and time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        # One transaction, eight orders: eight `queued` events at once, 16 s of PUBACKs.
        await asyncio.to_thread(driver.pay_many, token, batcher, PAYER, [10 * CTK] * ORDERS)

        while True:
            orders, events = await outbox(database_url)
            if len(orders) == ORDERS and all(state == "running" for state in orders):
                break
            assert process.returncode is None and time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        # Every order ran while the publisher was still working through the events that
        # came before the first launch: provisioning never waited for the broker.
        assert not all(published for _, state, published in events if state == "queued")

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, log.read_text()[-3000:]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await slow.down()
        broker.stop()
    output = log.read_text()
    assert "watcher_stopped" in output and "Traceback" not in output, output[-3000:]
    # Stopped mid-backlog: what went out is marked, in id order, the rest waits for the
    # next start (nothing lost, nothing marked that was not sent).
    _, events = await outbox(database_url)
    flags = [published for _, _, published in events]
    assert flags == sorted(flags, reverse=True) and not all(flags)
