"""Provisioning processes killed and doubled up: exactly one instance per order."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from web3 import Web3

from tests.chainhelpers import CTK, DevChainDriver
from tests.cloudhelpers import AWS_ENV, FaultProxy, instances_by_order
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.ledger import Ledger
from watcher.dev.devchain import DevChain
from watcher.domain.catalog import Catalog
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.payment import Payment

WATCHER = str(Path(sys.executable).parent / "watcher")


def write_catalog(folder: Path, ami: str) -> None:
    (folder / "watcher.toml").write_text(f'[plans."t3.micro"]\nprice = "10"\nami = "{ami}"\n')


async def seed_orders(database_url: str, ami: str, count: int) -> None:
    engine = create_engine(database_url)
    try:
        await migrations.upgrade(engine)
        plan = ec2_plan("t3.micro", 10 * CTK, "t3.micro", ami)
        payments = [
            Payment(
                1337,
                "0x" + hashlib.sha256(f"kill-{n}".encode()).hexdigest(),
                0,
                100 + n,
                "0x" + "aa" * 32,
                dev_account(n % 5).address,
                10 * CTK,
            )
            for n in range(count)
        ]
        await Ledger(engine, 1337, Catalog({"t3.micro": plan}, "t3.micro")).record(payments)
    finally:
        await engine.dispose()


async def ledger_orders(database_url: str) -> list[Any]:
    engine = create_engine(database_url)
    try:
        return await queries.orders(engine)
    finally:
        await engine.dispose()


async def test_sigkill_between_run_instances_and_recording_never_launches_twice(
    database_url: str, moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    moto.reset()
    rng = random.Random(int(os.environ.get("WATCHER_TEST_SEED", "4")))
    orders = 8
    await seed_orders(database_url, moto_ami, orders)
    write_catalog(tmp_path, moto_ami)
    kill_points = ["hold", "drop", "answered"]
    mode = {"now": "pass"}
    proxy = await FaultProxy(
        moto.url,
        on_run_instances=lambda n: (
            "hold" if mode["now"] == "hold" else ("drop" if mode["now"] == "drop" else "pass")
        ),
    ).start()
    env = {
        **os.environ,
        **AWS_ENV,
        "WATCHER_DATABASE_URL": database_url,
        "WATCHER_AWS_ENDPOINT_URL": proxy.url,
        "WATCHER_AWS_REGION": "us-east-1",
        "WATCHER_WORKERS": "1",
        "WATCHER_CLAIM_SECONDS": "1",
    }
    killed_at: list[str] = []
    rounds = (kill_points * orders)[:orders]
    rng.shuffle(rounds)
    try:
        for kill_point in rounds:
            mode["now"] = kill_point
            proxy.run_instances_seen.clear()
            proxy.answered.clear()
            forwarded = proxy.forwarded
            process = await asyncio.create_subprocess_exec(
                WATCHER,
                "drain",
                env=env,
                cwd=tmp_path,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                if mode["now"] == "hold":  # moto launched it; the worker never hears back
                    await asyncio.wait_for(proxy.answered.wait(), 30)
                elif mode["now"] == "drop":  # the call never reached moto
                    await asyncio.wait_for(proxy.run_instances_seen.wait(), 30)
                else:  # the answer arrived; die a moment later, before or after recording it
                    await asyncio.wait_for(proxy.run_instances_seen.wait(), 30)
                    while proxy.forwarded == forwarded:
                        await asyncio.sleep(0.001)
                    await asyncio.sleep(rng.uniform(0, 0.03))
            finally:
                process.send_signal(signal.SIGKILL)
                await process.wait()
            killed_at.append(mode["now"])
        mode["now"] = "pass"
        await asyncio.sleep(1.1)  # the dead workers' leases run out
        finish = await asyncio.create_subprocess_exec(
            WATCHER,
            "drain",
            "--max-wait",
            "60",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(finish.communicate(), 120)
        assert finish.returncode == 0, err.decode()
    finally:
        await proxy.stop()

    assert set(killed_at) == set(kill_points)
    final = await ledger_orders(database_url)
    assert len(final) == orders
    assert all(o.state == "running" for o in final), [(o.order_id, o.state) for o in final]
    instances = instances_by_order(moto.url)
    for order in final:
        assert len(instances[order.order_id]) == 1, (order.order_id, instances[order.order_id])
        assert instances[order.order_id][0]["InstanceId"] == order.instance_id
    assert set(instances) == {o.order_id for o in final}


async def test_two_watcher_runs_on_one_postgresql_provision_every_order_once(
    devchain: DevChain, w3: Web3, postgres_url: str, moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    moto.reset()
    driver = DevChainDriver(w3)
    ctk = driver.token()
    batcher = driver.deploy("PaymentBatcher")
    payers = [dev_account(n) for n in (14, 15, 16)]
    for payer in payers:
        driver.fund(ctk, payer, 1000)
    start = driver.head
    write_catalog(tmp_path, moto_ami)
    env = {
        **os.environ,
        **AWS_ENV,
        "WATCHER_RPC_URL": devchain.url,
        "WATCHER_TOKEN_ADDRESS": ctk.address,
        "WATCHER_DATABASE_URL": postgres_url,
        "WATCHER_CONFIRMATIONS": "0",
        "WATCHER_START_BLOCK": str(start),
        "WATCHER_POLL_INTERVAL": "0.2",
        "WATCHER_AWS_ENDPOINT_URL": moto.url,
        "WATCHER_AWS_REGION": "us-east-1",
        "WATCHER_WORKERS": "3",
        "WATCHER_METRICS_PORT": "0",  # two processes on one host
        "WATCHER_HTTP_PORT": "0",
    }
    upgrade = await asyncio.create_subprocess_exec(
        WATCHER, "db", "upgrade", env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL
    )
    assert await upgrade.wait() == 0
    logs = [(tmp_path / f"run{n}.log").open("w") for n in range(2)]
    runs = [
        await asyncio.create_subprocess_exec(
            WATCHER, "run", env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=log
        )
        for log in logs
    ]
    try:
        for payer in payers:  # 30 orders in 3 transactions, while both run
            driver.pay_many(ctk, batcher, payer, [10 * CTK] * 10)
        deadline = time.monotonic() + 90
        while True:
            orders = await ledger_orders(postgres_url)
            if len(orders) == 30 and all(o.state == "running" for o in orders):
                break
            assert time.monotonic() < deadline, [o.state for o in orders]
            await asyncio.sleep(0.3)
    finally:
        for run in runs:
            run.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(run.wait(), 40) for run in runs]
        for log in logs:
            log.close()
    assert codes == [0, 0], [p.read_text()[-2000:] for p in tmp_path.glob("run*.log")]
    instances = instances_by_order(moto.url)
    assert len(instances) == 30 and all(len(v) == 1 for v in instances.values())
    assert {o.order_id: o.instance_id for o in orders} == {
        k: v[0]["InstanceId"] for k, v in instances.items()
    }
    text = "".join(p.read_text() for p in tmp_path.glob("run*.log"))
    assert text.count("state=running") == 30  # each order reached running once, in one process


def test_a_plan_the_cloud_cannot_launch_is_refused_at_start(
    moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    """Issue 8.12: the README's placeholder security group used to fail every order;
    now `watcher drain`/`run` check each plan against the cloud first and refuse with
    one line naming the plan and what is missing."""
    import subprocess

    moto.reset()
    (tmp_path / "watcher.toml").write_text(
        '[plans."small"]\nprice = "10"\ninstance_type = "t3.micro"\n'
        f'ami = "{moto_ami}"\nsecurity_group_ids = ["sg-0123456789abcdef0"]\n'
        'subnet_id = "subnet-0123abcd"\nkey_name = "ec2keypair"\n'
    )
    env = {
        **os.environ,
        **AWS_ENV,
        "WATCHER_AWS_ENDPOINT_URL": moto.url,
        "WATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
    }
    result = subprocess.run(
        [WATCHER, "drain", "--max-wait", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "cannot launch in " in line and "plan 'small': " in line
    assert "sg-0123456789abcdef0" in line and "subnet-0123abcd" in line and "ec2keypair" in line
    assert moto_ami not in line  # the image exists
