"""`watcher run` killed with SIGKILL at random moments, restarted, ends with exactly the
ledger of an uninterrupted run, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from web3 import Web3

from tests.chainhelpers import CTK, DevChainDriver
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.chain.rpc import HttpTransport
from watcher.adapters.chain.source import RpcChainSource
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.ledger import Ledger
from watcher.dev.devchain import DevChain
from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.catalog import Catalog
from watcher.services.follower import ChainFollower, FollowerConfig

WATCHER = str(Path(sys.executable).parent / "watcher")
PAYERS = [dev_account(i) for i in (9, 10, 11)]


async def snapshot(url: str) -> tuple[Any, ...]:
    engine = create_engine(url)
    try:
        payments = [
            (p.tx_hash, p.log_index, p.block_number, p.block_hash, p.payer, p.amount)
            for p in await queries.payments(engine, 1337)
        ]
        orders = [
            (o.order_id, o.tx_hash, o.log_index, o.unit, o.payer, o.amount, o.state)
            for o in await queries.orders(engine, 1337)
        ]
        credits = [(c.payer, c.balance) for c in await queries.credits(engine, 1337)]
        ledger = Ledger(engine, 1337, Catalog())
        cursor = await ledger.cursor()
    finally:
        await engine.dispose()
    return payments, orders, credits, cursor.number if cursor else None


async def reference(url: str, rpc: str, token: str, start: int, end: int) -> tuple[Any, ...]:
    engine = create_engine(url)
    await migrations.upgrade(engine)
    source = RpcChainSource(HttpTransport(rpc, 10))
    try:
        follower = ChainFollower(
            source,
            Ledger(engine, 1337, Catalog()),
            FollowerConfig(
                token=token, burn=BURN_ADDRESS, confirmations=0, start_block=start, max_attempts=5
            ),
        )
        await follower.sync(until=end)
    finally:
        await source.close()
        await engine.dispose()
    return await snapshot(url)


def test_sigkill_at_random_moments_then_restart_gives_the_uninterrupted_ledger(
    devchain: DevChain, w3: Web3, database_url: str, tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("WATCHER_TEST_SEED", "1337")))
    driver = DevChainDriver(w3)
    ctk = driver.token()
    batcher = driver.deploy("PaymentBatcher")
    start = driver.head + 1
    for payer in PAYERS:
        driver.fund(ctk, payer, 10_000)
    for n in range(80):  # 80 blocks of payments: singles and batches, pooled credit
        payer = PAYERS[n % len(PAYERS)]
        if n % 4 == 0:
            driver.pay_many(
                ctk, batcher, payer, [rng.randint(1, 25) * CTK for _ in range(rng.randint(2, 6))]
            )
        else:
            driver.pay(ctk, payer, rng.randint(1, 30) * CTK)
    end = driver.head

    env = {
        **os.environ,
        "WATCHER_RPC_URL": devchain.url,
        "WATCHER_TOKEN_ADDRESS": ctk.address,
        "WATCHER_DATABASE_URL": database_url,
        "WATCHER_CONFIRMATIONS": "0",
        "WATCHER_START_BLOCK": str(start),
        "WATCHER_MAX_BLOCK_RANGE": "1",  # one commit per block: many moments to die in
        "WATCHER_POLL_INTERVAL": "0.2",
        "WATCHER_WORKERS": "0",  # follow only: the ledger is what is compared
        "WATCHER_METRICS_PORT": "0",
        "WATCHER_HTTP_PORT": "0",
    }
    subprocess.run([WATCHER, "db", "upgrade"], env=env, check=True, capture_output=True)
    cursors: list[int | None] = []
    for _ in range(40):
        process = subprocess.Popen(
            [WATCHER, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Start-up takes most of a second, more on a loaded machine: while kills keep
        # landing before the first commit, wait a little longer each time.
        early = len(cursors) - len([c for c in cursors if c is not None])
        time.sleep(rng.uniform(0.5, 1.6) + 0.25 * early)
        process.send_signal(signal.SIGKILL)
        process.wait()
        cursors.append(asyncio.run(snapshot(database_url))[3])
        if cursors[-1] == end:
            break
    # Some kills must have hit a watcher in the middle of the work, not before or after it.
    assert any(c is not None and start <= c < end for c in cursors), cursors

    # A last, clean run to the head, stopped with SIGTERM once it is up.
    log = tmp_path / "run.log"
    with log.open("w") as err:
        process = subprocess.Popen([WATCHER, "run"], env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while (
            "watcher_started" not in log.read_text()
            or asyncio.run(snapshot(database_url))[3] != end
        ):
            assert time.monotonic() < deadline, "the restarted watcher did not catch up"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert "watcher_stopped" in log.read_text()

    interrupted = asyncio.run(snapshot(database_url))
    uninterrupted = asyncio.run(
        reference(
            f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}",
            devchain.url,
            ctk.address,
            start,
            end,
        )
    )
    assert interrupted == uninterrupted
    assert len(interrupted[0]) > 80 and len(interrupted[1]) > 40
