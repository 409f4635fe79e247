"""`watcher buy` end to end (issue 10): the real CLI against `watcher run` (Hardhat, moto's
server, the Checkout): it signs in, drafts a non-default plan for 2 periods, pays through
the Checkout with a permit, waits, and prints the ssh command; the instance has the plan's
type and the buyer's key."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from web3 import Web3

from tests.chainhelpers import DevChainDriver
from tests.cloudhelpers import AWS_ENV, ec2_client
from tests.keyhelpers import new_ssh_key
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.dev.devchain import DevChain
from watcher.shared.net import free_port

WATCHER = str(Path(sys.executable).parent / "watcher")
BUYER = 11


async def api_up(port: int, run: asyncio.subprocess.Process) -> None:
    """Until `watcher run` serves its API (it follows the chain and checks the cloud first)."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert run.returncode is None, "watcher run ended"
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/plans") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("watcher run did not serve its API within 30 s")


async def test_buy_signs_in_drafts_pays_and_prints_how_to_reach_the_instance(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    moto.reset()
    driver = DevChainDriver(w3)
    ctk = driver.token()
    checkout = driver.deploy("Checkout", ctk.address)
    driver.fund(ctk, dev_account(BUYER), 100)
    (tmp_path / "watcher.toml").write_text(
        'default_plan = "small"\n'
        f'[plans."small"]\nprice = "10"\ninstance_type = "t3.micro"\nami = "{moto_ami}"\n'
        f'[plans."large"]\nprice = "12.5"\ninstance_type = "t3.large"\nami = "{moto_ami}"\n'
        'ssh_user = "ubuntu"\n'
    )
    key = new_ssh_key("buyer@laptop")
    (tmp_path / "id.pub").write_text(key + "\n")
    port = free_port()
    env = {
        **os.environ,
        **AWS_ENV,
        "WATCHER_RPC_URL": devchain.url,
        "WATCHER_TOKEN_ADDRESS": ctk.address,
        "WATCHER_CHECKOUT_ADDRESS": checkout.address,
        "WATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "WATCHER_CONFIRMATIONS": "0",
        "WATCHER_START_BLOCK": str(driver.head),
        "WATCHER_POLL_INTERVAL": "0.2",
        "WATCHER_AWS_ENDPOINT_URL": moto.url,
        "WATCHER_AWS_REGION": "us-east-1",
        "WATCHER_HTTP_PORT": str(port),
        "WATCHER_METRICS_PORT": "0",
    }
    log = (tmp_path / "run.log").open("w")
    run = await asyncio.create_subprocess_exec(
        WATCHER, "run", env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=log
    )

    async def watcher_buy(plan: str, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [
                WATCHER,
                "buy",
                plan,
                "--ssh-key",
                str(tmp_path / "id.pub"),
                # No --api-url: where `watcher run` serves with these settings (the port
                # from WATCHER_HTTP_PORT).
                "--dev-account",
                str(BUYER),
                "--wait",
                "90",
                "--json",
                *args,
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=150,
            stdin=subprocess.DEVNULL,
        )

    try:
        await api_up(port, run)
        buy = await watcher_buy("large", "--periods", "2", "--name", "build box")
        # A plain transfer of 13 CTK is credit (no vending beside a Checkout); --from-credit
        # spends 10 of it on the small plan without a transaction.
        driver.pay(ctk, dev_account(BUYER), 13 * 10**18)
        nonce = w3.eth.get_transaction_count(dev_account(BUYER).address)
        from_credit = await watcher_buy("small", "--from-credit")
        sent_meanwhile = w3.eth.get_transaction_count(dev_account(BUYER).address) - nonce
        # 3 CTK of credit left: a 10 CTK order needs a payment of 7 (credit applied first).
        short = await watcher_buy("small", "--from-credit")
    finally:
        run.send_signal(signal.SIGTERM)
        await asyncio.wait_for(run.wait(), 40)
        log.close()
    assert buy.returncode == 0, (buy.stderr, (tmp_path / "run.log").read_text()[-2000:])
    assert from_credit.returncode == 0, (from_credit.stderr, (tmp_path / "run.log").read_text())
    assert sent_meanwhile == 0
    bought_from_credit = json.loads(from_credit.stdout)
    assert bought_from_credit["tx_hash"] is None
    assert bought_from_credit["access"]["state"] == "running"
    assert "bought from credit" in from_credit.stderr
    # Refused in one line before anything is drafted.
    assert short.returncode == 1
    assert short.stderr.strip() == (
        "watcher: error: your credit is 3 CTK and 1 period(s) of small cost 10 CTK: run without "
        "--from-credit to pay the rest through the Checkout"
    ), short.stderr
    bought = json.loads(buy.stdout)
    access = bought["access"]
    assert (bought["draft"]["plan"], bought["draft"]["periods"]) == ("large", 2)
    assert bought["draft"]["price_ctk"] == "25"
    assert access["state"] == "running" and access["ssh_user"] == "ubuntu"
    assert access["ssh_command"] == f"ssh ubuntu@{access['public_dns']}"
    # The instance has the plan's type and the buyer's key.
    ec2 = ec2_client(moto.url)
    instances = {
        i["InstanceId"]: i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
    }
    assert len(instances) == 2
    instance = instances[access["instance_id"]]
    assert instance["InstanceType"] == "t3.large"
    assert instances[bought_from_credit["access"]["instance_id"]]["InstanceType"] == "t3.micro"
    data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    document = base64.b64decode(data["UserData"]["Value"]).decode()
    # Type and body: the comment ("buyer@laptop") is the buyer's label, kept off the instance.
    assert yaml.safe_load(document) == {"ssh_authorized_keys": [" ".join(key.split()[:2])]}


def test_buy_refuses_bad_input_in_one_line_and_sends_nothing(tmp_path: Path) -> None:
    key = tmp_path / "id.pub"
    key.write_text("ssh-dss AAAAB3NzaC1kc3MAAACB\n")
    good = tmp_path / "good.pub"
    good.write_text(new_ssh_key())
    for args, reason in [
        (["--ssh-key", str(tmp_path / "missing.pub")], "cannot read the SSH key file"),
        (["--ssh-key", str(key)], "'ssh-dss' keys are not accepted"),
        (["--ssh-key", str(good), "--periods", "2.5"], "whole number"),
        (["--ssh-key", str(good), "--periods", "150"], "from 1 to 100, got 150"),
    ]:
        done = subprocess.run(
            [WATCHER, "buy", "large", *args, "--dev-account", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**os.environ, "WATCHER_TOKEN_ADDRESS": "0x" + "11" * 20},
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode != 0 and reason in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
