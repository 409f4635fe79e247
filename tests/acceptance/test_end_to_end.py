"""The product as a user meets it: every piece a real process, driven through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.cloudhelpers import AWS_ENV, instances_by_order
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.dev.devchain import rpc_chain_id
from watcher.shared.net import free_port

WATCHER = str(Path(sys.executable).parent / "watcher")
USER = dev_account(1).address


def scrape(port: int) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_pay_with_the_cli_and_get_instances(moto: Any, moto_ami: str, tmp_path: Path) -> None:
    moto.reset()
    port, metrics_port, http_port = free_port(), free_port(), free_port()
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
        "WATCHER_METRICS_PORT": str(metrics_port),
        "WATCHER_HTTP_PORT": str(http_port),
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
        deadline = time.monotonic() + 30
        while "watcher_started" not in (tmp_path / "run.log").read_text():
            assert time.monotonic() < deadline and run.poll() is None, (
                tmp_path / "run.log"
            ).read_text()
            time.sleep(0.1)
        before = scrape(metrics_port)
        assert before["watcher_payments_recorded_total"] == 0
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
        # What an operator's Prometheus sees move (ledger gauges refresh every 5 s).
        deadline = time.monotonic() + 15
        while (after := scrape(metrics_port)).get('watcher_orders{state="running"}') != 3:
            assert time.monotonic() < deadline, after
            time.sleep(0.5)
        assert after["watcher_payments_recorded_total"] == 2
        assert after["watcher_payments_ctk_total"] == 35
        assert after["watcher_orders_created_total"] == 3
        assert after['watcher_order_transitions_total{state="running"}'] == 3
        assert after["watcher_provisioning_seconds_count"] == 3
        assert after["watcher_provision_jobs_pending"] == 0
        assert after['watcher_orders{state="queued"}'] == 0
        assert after["watcher_cursor_block"] >= after["watcher_chain_head_block"] - 1
        assert after["watcher_chain_lag_blocks"] <= 1
        # And what the user's dashboard reads: the JSON API.
        api = f"http://127.0.0.1:{http_port}/api"
        mine = json.loads(urllib.request.urlopen(f"{api}/orders?payer={USER}", timeout=5).read())
        assert sorted(o["order_id"] for o in mine) == sorted(o["order_id"] for o in orders)
        assert (
            json.loads(urllib.request.urlopen(f"{api}/credit/{USER}", timeout=5).read())[
                "balance_ctk"
            ]
            == "5"
        )
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
