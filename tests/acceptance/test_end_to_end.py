"""The product as a user meets it: every piece a real process, driven through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.cloudhelpers import AWS_ENV, instances_by_order
from watcher.devchain import free_port, rpc_chain_id
from watcher.devchain_accounts import dev_account

WATCHER = str(Path(sys.executable).parent / "watcher")
USER = dev_account(1).address


def test_pay_with_the_cli_and_get_instances(moto: Any, moto_ami: str, tmp_path: Path) -> None:
    moto.reset()
    port = free_port()
    (tmp_path / "watcher.toml").write_text(
        f'[plans."t3.micro"]\nprice = "10"\nami = "{moto_ami}"\n'
    )
    env = {
        **os.environ,
        **AWS_ENV,
        "WATCHER_RPC_URL": f"http://127.0.0.1:{port}",
        "WATCHER_WS_URL": f"ws://127.0.0.1:{port}",
        "WATCHER_CONFIRMATIONS": "0",
        "WATCHER_AWS_ENDPOINT_URL": moto.url,
        "WATCHER_AWS_REGION": "us-east-1",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [WATCHER, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 or args[0] == "pay", done.stderr
        return done

    chain = subprocess.Popen(
        [WATCHER, "devchain", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run = None
    try:
        deadline = time.monotonic() + 60
        while rpc_chain_id(env["WATCHER_RPC_URL"], 1) != 1337:
            assert time.monotonic() < deadline and chain.poll() is None
            time.sleep(0.2)
        env["WATCHER_TOKEN_ADDRESS"] = cli("token", "deploy", "--dev-account", "0").stdout.strip()
        cli("token", "transfer", USER, "50", "--dev-account", "0")
        with (tmp_path / "run.log").open("w") as log:
            run = subprocess.Popen(
                [WATCHER, "run"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
            )
        first = cli("pay", "10", "--dev-account", "1", "--json")
        second = cli("pay", "25", "--dev-account", "1", "--json")
        too_much = cli("pay", "100", "--dev-account", "1")
        assert too_much.returncode == 1 and "not enough CTK" in too_much.stderr

        deadline = time.monotonic() + 60
        while True:
            orders = [json.loads(line) for line in cli("orders", "--json").stdout.splitlines()]
            if len(orders) == 3 and all(o["state"] == "running" for o in orders):
                break
            assert time.monotonic() < deadline, orders
            time.sleep(0.3)
    finally:
        if run is not None:
            run.send_signal(signal.SIGTERM)
            assert run.wait(30) == 0, (tmp_path / "run.log").read_text()[-2000:]
        chain.send_signal(signal.SIGINT)
        chain.wait(30)

    paid_txs = {json.loads(first.stdout)["tx_hash"], json.loads(second.stdout)["tx_hash"]}
    assert {o["tx_hash"] for o in orders} == paid_txs
    instances = instances_by_order(moto.url)
    assert set(instances) == {o["order_id"] for o in orders}
    for order in orders:
        (instance,) = instances[order["order_id"]]
        assert instance["InstanceId"] == order["instance_id"]
        assert (
            instance["TagMap"]["PaidBy"] == USER
            and instance["TagMap"]["PaymentTx"] == order["tx_hash"]
        )
    credit = json.loads(cli("credit", USER, "--json").stdout)
    assert credit["balance"] == str(5 * 10**18)
    log = (tmp_path / "run.log").read_text()
    assert log.count("state=running") == 3 and "watcher_stopped" in log
