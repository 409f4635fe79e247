"""A database blip does not kill `watcher run`: SQLite's write lock held by another process
past the busy timeout, the PostgreSQL connection cut for seconds. The run waits them out
(one `database_retry` line per retry), and records every payment once and provisions every
order once. A broken schema, bad credentials or a missing database stop it with one line."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from web3 import Web3

from tests.chainhelpers import CTK, DevChainDriver
from tests.cloudhelpers import AWS_ENV, instances_by_order
from tests.proxy import TcpProxy
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.ledger import queries
from watcher.adapters.ledger.database import create_engine
from watcher.dev.devchain import DevChain

WATCHER = str(Path(sys.executable).parent / "watcher")
PAYERS = [dev_account(n) for n in (17, 18)]


def run_env(
    devchain: DevChain, token: str, database_url: str, start: int, moto: Any
) -> dict[str, str]:
    return {
        **os.environ,
        **AWS_ENV,
        "WATCHER_RPC_URL": devchain.url,
        "WATCHER_TOKEN_ADDRESS": token,
        "WATCHER_DATABASE_URL": database_url,
        "WATCHER_CONFIRMATIONS": "0",
        "WATCHER_START_BLOCK": str(start),
        "WATCHER_POLL_INTERVAL": "0.2",
        "WATCHER_AWS_ENDPOINT_URL": moto.url,
        "WATCHER_AWS_REGION": "us-east-1",
        "WATCHER_WORKERS": "2",
        "WATCHER_CLAIM_SECONDS": "5",
        "WATCHER_METRICS_PORT": "0",
        "WATCHER_HTTP_PORT": "0",
    }


def setup_chain(w3: Web3, tmp_path: Path, ami: str) -> tuple[DevChainDriver, Any, int]:
    driver = DevChainDriver(w3)
    token = driver.token()
    for payer in PAYERS:
        driver.fund(token, payer, 1000)
    (tmp_path / "watcher.toml").write_text(f'[plans."t3.micro"]\nprice = "10"\nami = "{ami}"\n')
    return driver, token, driver.head + 1


async def until(condition: Callable[[], Any], what: str, seconds: float = 120) -> None:
    """Poll `condition` (sync or async) until it holds; the bound only keeps a broken run
    from hanging the suite."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def ledger_state(url: str) -> tuple[list[tuple[str, int]], list[Any]]:
    engine = create_engine(url)
    try:
        payments = [(p.tx_hash, p.log_index) for p in await queries.payments(engine, 1337)]
        return payments, await queries.orders(engine, 1337)
    finally:
        await engine.dispose()


async def start_run(env: dict[str, str], cwd: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("w") as err:
        process = await asyncio.create_subprocess_exec(
            WATCHER, "run", env=env, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=err
        )
    await until(lambda: "watcher_started" in log.read_text(), "watcher run did not start", 60)
    return process


def retries(log: Path, task: str) -> int:
    return sum(
        1 for line in log.read_text().splitlines() if "database_retry" in line and task in line
    )


async def pay(driver: DevChainDriver, token: Any, count: int) -> list[str]:
    """`count` payments of 10 CTK (one order each), sent from a thread: the test's event
    loop keeps serving the proxy meanwhile."""
    hashes = []
    for n in range(count):
        receipt = await asyncio.to_thread(driver.pay, token, PAYERS[n % 2], 10 * CTK)
        hashes.append("0x" + bytes(receipt["transactionHash"]).hex().removeprefix("0x"))
    return hashes


async def settled(url: str, paid: list[str]) -> bool:
    payments, orders = await ledger_state(url)
    return len(payments) == len(paid) and all(o.state == "running" for o in orders)


async def check_exactly_once(url: str, paid: list[str], moto: Any) -> None:
    payments, orders = await ledger_state(url)
    assert sorted(tx for tx, _ in payments) == sorted(paid)  # each payment once, none missing
    assert len(orders) == len(paid)
    assert all(o.state == "running" for o in orders)
    instances = instances_by_order(moto.url)
    assert {o.order_id: o.instance_id for o in orders} == {
        order_id: found[0]["InstanceId"] for order_id, found in instances.items()
    }
    assert all(len(found) == 1 for found in instances.values())


async def stop_run(process: asyncio.subprocess.Process, log: Path) -> None:
    assert process.returncode is None, log.read_text()[-3000:]  # still alive
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 60) == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


async def test_sqlite_write_lock_held_past_the_busy_timeout_is_waited_out(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    moto.reset()
    driver, token, start = setup_chain(w3, tmp_path, moto_ami)
    ledger = tmp_path / "ledger.db"
    # A busy timeout of 0.3 s instead of 30 s: the same "database is locked", sooner.
    url = f"sqlite+aiosqlite:///{ledger}?timeout=0.3"
    log = tmp_path / "run.log"
    process = await start_run(run_env(devchain, token.address, url, start, moto), tmp_path, log)
    try:
        paid = await pay(driver, token, 2)
        await until(lambda: settled(url, paid), "the first orders did not run")

        holder = sqlite3.connect(ledger, isolation_level=None)  # another process's writer
        holder.execute("BEGIN IMMEDIATE")
        try:
            paid += await pay(driver, token, 3)  # payments while the ledger is locked
            # Held until both the follower and a provisioner met the lock and retried.
            await until(
                lambda: (
                    retries(log, "task=chain-follower") >= 2
                    and retries(log, "task=provisioner") >= 2
                ),
                "no database_retry lines",
            )
            assert process.returncode is None
        finally:
            holder.execute("ROLLBACK")
            holder.close()

        paid += await pay(driver, token, 1)
        await until(lambda: settled(url, paid), "the run did not catch up after the lock")
        await check_exactly_once(url, paid, moto)
        assert "kind=locked" in log.read_text()
    finally:
        if process.returncode is None:
            await stop_run(process, log)


async def test_postgresql_connection_cut_for_seconds_is_waited_out(
    devchain: DevChain, w3: Web3, postgres_url: str, moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    moto.reset()
    driver, token, start = setup_chain(w3, tmp_path, moto_ami)
    proxy = TcpProxy(make_url(postgres_url).port or 5432)
    await proxy.start()
    through_proxy = make_url(postgres_url).set(port=proxy.port).render_as_string(False)
    log = tmp_path / "run.log"
    env = run_env(devchain, token.address, through_proxy, start, moto)
    upgrade = await asyncio.create_subprocess_exec(
        WATCHER, "db", "upgrade", env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL
    )
    assert await upgrade.wait() == 0
    process = await start_run(env, tmp_path, log)
    try:
        paid = await pay(driver, token, 2)
        await until(lambda: settled(postgres_url, paid), "the first orders did not run")

        await proxy.down()  # every connection cut, new ones refused
        cut_at = time.monotonic()
        paid += await pay(driver, token, 3)
        await until(
            lambda: (
                retries(log, "task=chain-follower") >= 2 and retries(log, "task=provisioner") >= 2
            ),
            "no database_retry lines",
        )
        # The 10 s cut: long enough for every task to back off several times.
        await asyncio.sleep(max(10 - (time.monotonic() - cut_at), 0))
        assert process.returncode is None
        await proxy.start()

        paid += await pay(driver, token, 1)
        await until(lambda: settled(postgres_url, paid), "the run did not catch up after the cut")
        await check_exactly_once(postgres_url, paid, moto)
    finally:
        if process.returncode is None:
            await stop_run(process, log)
        await proxy.down()


async def test_a_broken_schema_stops_the_run_with_one_line(
    devchain: DevChain, w3: Web3, database_url: str, moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    moto.reset()
    driver, token, start = setup_chain(w3, tmp_path, moto_ami)
    log = tmp_path / "run.log"
    env = run_env(devchain, token.address, database_url, start, moto)
    if not database_url.startswith("sqlite"):
        upgrade = await asyncio.create_subprocess_exec(
            WATCHER, "db", "upgrade", env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL
        )
        assert await upgrade.wait() == 0
    process = await start_run(env, tmp_path, log)
    try:
        engine = create_engine(database_url)
        try:
            # The running watcher holds locks on the table too: on PostgreSQL the DROP may
            # be chosen as a deadlock victim. That is the test's own statement, try again.
            for attempt in range(20):
                try:
                    async with engine.begin() as conn:
                        await conn.execute(text("DROP TABLE jobs"))
                    break
                except DBAPIError as exc:
                    if "deadlock" not in str(exc) or attempt == 19:
                        raise
                    await asyncio.sleep(0.2)
        finally:
            await engine.dispose()
        await pay(driver, token, 1)
        assert await asyncio.wait_for(process.wait(), 60) == 1
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = log.read_text()
    assert "Traceback" not in output and "ExceptionGroup" not in output, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("watcher: error: the ledger database cannot be used:"), last
    assert "jobs" in last


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"username": "no_such_role"}, 'role "no_such_role" does not exist'),
        ({"database": "no_such_database"}, 'database "no_such_database" does not exist'),
    ],
)
async def test_bad_credentials_or_a_missing_database_stop_with_one_line(
    devchain: DevChain,
    w3: Web3,
    postgres_url: str,
    moto: Any,
    tmp_path: Path,
    change: dict[str, str],
    expected: str,
) -> None:
    url = make_url(postgres_url).set(**change).render_as_string(False)  # type: ignore[arg-type]
    env = run_env(devchain, DevChainDriver(w3).token().address, url, 0, moto)
    process = await asyncio.create_subprocess_exec(
        WATCHER,
        "run",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("watcher: error:"), lines
    assert expected in lines[0]
