"""Leases running out in `watcher run` (issue 11), on the Hardhat node and moto's server
over HTTP, with second-long periods: a payment buys a plan, its instance runs, its lease
is warned, stopped at the end of paid time (moto says stopped) and terminated after the
grace; with WATCHER_LEASES off nothing is stopped."""

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

import pytest
from web3 import Web3

from tests.chainhelpers import CTK, DevChainDriver
from tests.cloudhelpers import AWS_ENV, ec2_client
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.dev.devchain import DevChain
from watcher.shared.net import free_port

WATCHER = str(Path(sys.executable).parent / "watcher")
BUYER = dev_account(12)


def api_up(url: str, run: subprocess.Popen[bytes]) -> None:
    """Until `watcher run` serves its API."""
    deadline = time.monotonic() + 30
    while True:
        try:
            orders(url)
            return
        except OSError:
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)


def orders(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/orders?payer={BUYER.address}", timeout=10) as got:
        found: list[dict[str, Any]] = json.load(got)
    return found


def run_env(
    devchain: DevChain,
    ctk: Any,
    start: int,
    aws_url: str,
    port: int,
    tmp_path: Path,
    **settings: str,
) -> dict[str, str]:
    """`watcher run`'s environment for these tests: the dev chain from block `start`, a
    SQLite ledger in `tmp_path`, the cloud at `aws_url`, the API on `port`; `settings` add
    or change WATCHER_* variables."""
    return {
        **os.environ,
        **AWS_ENV,
        "WATCHER_RPC_URL": devchain.url,
        "WATCHER_TOKEN_ADDRESS": ctk.address,
        "WATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "WATCHER_CONFIRMATIONS": "0",
        "WATCHER_START_BLOCK": str(start),
        "WATCHER_POLL_INTERVAL": "0.2",
        "WATCHER_AWS_ENDPOINT_URL": aws_url,
        "WATCHER_AWS_REGION": "us-east-1",
        "WATCHER_HTTP_PORT": str(port),
        "WATCHER_METRICS_PORT": "0",
        **{f"WATCHER_{name.upper()}": value for name, value in settings.items()},
    }  # fmt: skip


@pytest.mark.parametrize("enforced", [True, False])
def test_a_lease_is_stopped_at_its_end_and_terminated_after_grace(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path, enforced: bool
) -> None:
    moto.reset()
    driver = DevChainDriver(w3)
    ctk = driver.token()
    driver.fund(ctk, BUYER, 100)
    (tmp_path / "watcher.toml").write_text(
        f'[plans."quick"]\nprice = "10"\ninstance_type = "t3.micro"\nami = "{moto_ami}"\n'
        'period = "4s"\ngrace = "3s"\nwarn = ["2s"]\n'
    )
    port = free_port()
    env = run_env(
        devchain, ctk, driver.head, moto.url, port, tmp_path,
        leases="true" if enforced else "false",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(
        [WATCHER, "run"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
    )
    seen: list[str | None] = []
    try:
        api_up(url, run)
        driver.pay(ctk, BUYER, 10 * CTK)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            found = orders(url)
            state = found[0]["lease_state"] if found else None
            if state is not None and (not seen or seen[-1] != state):
                seen.append(state)
            if state == "terminated" or (not enforced and time.monotonic() > deadline - 28):
                break
            time.sleep(0.1)
        (order,) = orders(url)
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(30)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-2000:]
    (reservation,) = ec2_client(moto.url).describe_instances()["Reservations"]
    (instance,) = reservation["Instances"]
    if not enforced:
        # Recorded, not enforced: the lease's paid time passed, the instance runs on.
        assert seen == ["active"] and instance["State"]["Name"] == "running"
        return
    assert seen[0] == "active" and seen[-1] == "terminated", seen
    assert "expiring" in seen and "stopped" in seen, seen
    assert instance["State"]["Name"] == "terminated"
    assert order["state"] == "running"  # delivered: the order itself is not refunded
    assert order["paid_until"] is not None and order["grace_until"] is not None


def test_extending_in_grace_starts_the_instance_again(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    """`watcher buy` through the Checkout, a plain payment for credit; the lease runs out
    and the instance is stopped; `watcher extend ORDER --periods 1` from credit starts it
    again (moto: running), and when that period runs out it is stopped again."""
    from tests.keyhelpers import new_ssh_key

    moto.reset()
    driver = DevChainDriver(w3)
    ctk = driver.token()
    checkout = driver.deploy("Checkout", ctk.address)
    driver.fund(ctk, BUYER, 100)
    (tmp_path / "watcher.toml").write_text(
        f'[plans."quick"]\nprice = "10"\ninstance_type = "t3.micro"\nami = "{moto_ami}"\n'
        'period = "4s"\ngrace = "60s"\nwarn = ["2s"]\n'
    )
    (tmp_path / "id.pub").write_text(new_ssh_key() + "\n")
    port = free_port()
    env = run_env(
        devchain, ctk, driver.head, moto.url, port, tmp_path,
        checkout_address=checkout.address, leases="true",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(
        [WATCHER, "run"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
    )

    def watcher(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [WATCHER, *args, "--dev-account", "12"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def lease_state_becomes(state: str, within: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = orders(url)
            if found and found[0]["lease_state"] == state:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"not {state}: {orders(url)}")

    def instance_state() -> str:
        (reservation,) = ec2_client(moto.url).describe_instances()["Reservations"]
        return str(reservation["Instances"][0]["State"]["Name"])

    try:
        api_up(url, run)
        bought = watcher("buy", "quick", "--ssh-key", str(tmp_path / "id.pub"), "--json")
        assert bought.returncode == 0, bought.stderr
        order_id = json.loads(bought.stdout)["access"]["order_id"]
        driver.pay(ctk, BUYER, 10 * CTK)  # credit, for the extension
        stopped = lease_state_becomes("stopped")
        assert instance_state() == "stopped" and stopped["grace_until"] is not None
        extended = watcher("extend", order_id, "--periods", "1", "--json")
        assert extended.returncode == 0, extended.stderr
        assert json.loads(extended.stdout)["charged"] == str(10 * CTK)
        lease_state_becomes("active")
        assert instance_state() == "running"
        lease_state_becomes("stopped")  # the extension ran out too
        assert instance_state() == "stopped"
        refused = watcher("extend", order_id, "--periods", "1")
        assert refused.returncode == 1 and "your credit is 0 CTK" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(30)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-2000:]


async def test_sigkill_during_the_stop_and_the_terminate_acts_once_each(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    """`watcher run` is killed (SIGKILL) while its StopInstances call is on the wire: the
    stop reaches the cloud, its answer never comes back. Restarted, the watcher looks at
    the cloud first, sees the instance stopped and records it without stopping again. The
    same with TerminateInstances. One stop and one terminate for the lease, in all."""
    import asyncio

    from tests.cloudhelpers import FaultProxy

    moto.reset()
    driver = DevChainDriver(w3)
    ctk = driver.token()
    driver.fund(ctk, BUYER, 100)
    (tmp_path / "watcher.toml").write_text(
        f'[plans."quick"]\nprice = "10"\ninstance_type = "t3.micro"\nami = "{moto_ami}"\n'
        'period = "3s"\ngrace = "3s"\nwarn = ["1s"]\n'
    )
    proxy = await FaultProxy(
        moto.url, on_action=lambda name, n: "hold" if n == 1 else "pass"
    ).start()
    port = free_port()
    env = run_env(
        devchain, ctk, driver.head, proxy.url, port, tmp_path,
        leases="true", claim_seconds="2",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "run.log").open("a")

    async def start() -> asyncio.subprocess.Process:
        run = await asyncio.create_subprocess_exec(
            WATCHER, "run", env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=log
        )
        for _ in range(300):
            try:
                await asyncio.to_thread(orders, url)
                return run
            except OSError:
                assert run.returncode is None, (tmp_path / "run.log").read_text()[-2000:]
                await asyncio.sleep(0.1)
        raise AssertionError("watcher run did not serve its API")

    async def lease_state_becomes(state: str) -> None:
        for _ in range(600):
            found = await asyncio.to_thread(orders, url)
            if found and found[0]["lease_state"] == state:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"not {state}: {await asyncio.to_thread(orders, url)}")

    async def killed_while(action: str, run: asyncio.subprocess.Process) -> None:
        await asyncio.wait_for(proxy.acted.setdefault(action, asyncio.Event()).wait(), 60)
        await asyncio.sleep(0.3)  # the call reached the cloud; its answer is held back
        run.kill()
        await run.wait()

    try:
        run = await start()
        driver.pay(ctk, BUYER, 10 * CTK)
        await killed_while("StopInstances", run)
        run = await start()
        await lease_state_becomes("stopped")
        await killed_while("TerminateInstances", run)
        run = await start()
        await lease_state_becomes("terminated")
        run.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(run.wait(), 30) == 0
    finally:
        if run.returncode is None:
            run.kill()
            await run.wait()
        log.close()
        await proxy.stop()
    assert proxy.acts == {"StopInstances": 1, "TerminateInstances": 1}, proxy.acts
    (reservation,) = ec2_client(moto.url).describe_instances()["Reservations"]
    assert reservation["Instances"][0]["State"]["Name"] == "terminated"


def _checkout_shop_env(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path, plan: str
) -> tuple[dict[str, str], Any, str]:
    """A Checkout shop's settings (leases enforced, sweeps every second) with `plan`."""
    moto.reset()
    driver = DevChainDriver(w3)
    ctk = driver.token()
    checkout = driver.deploy("Checkout", ctk.address)
    driver.fund(ctk, BUYER, 100)
    (tmp_path / "watcher.toml").write_text(plan.format(ami=moto_ami))
    from tests.keyhelpers import new_ssh_key

    (tmp_path / "id.pub").write_text(new_ssh_key() + "\n")
    port = free_port()
    env = run_env(
        devchain, ctk, driver.head, moto.url, port, tmp_path,
        checkout_address=checkout.address, leases="true", reconcile_interval="1",
    )  # fmt: skip
    return env, ctk, f"http://127.0.0.1:{port}"


def _money(url: str) -> tuple[int, int]:
    """(credit, what the orders hold) of the buyer, from the API."""
    with urllib.request.urlopen(f"{url}/api/credit/{BUYER.address}", timeout=10) as got:
        credit = int(json.load(got)["balance"])
    return credit, sum(int(o["amount"]) for o in orders(url) if o["state"] != "failed")


@pytest.mark.parametrize("case", ["auto-renew", "ended-outside"])
def test_auto_renew_while_credit_lasts_and_an_instance_ended_outside(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path, case: str
) -> None:
    """Auto-renew: 20 CTK of credit renews two 10 CTK periods, a period at a time (never
    more than one ahead, within the plan's cap of 2), then the lease expires. Ended outside: the instance is terminated behind the watcher's back;
    two sweeps later the lease ends and the whole periods not begun come back. The money
    adds up after each: what the buyer paid is credit plus what the order holds."""
    plan = (
        '[plans."quick"]\nprice = "10"\ninstance_type = "t3.micro"\nami = "{ami}"\n'
        'period = "4s"\ngrace = "30s"\nwarn = ["2s"]\nmax_prepaid = 2\n'
    )
    env, ctk, url = _checkout_shop_env(devchain, w3, moto, moto_ami, tmp_path, plan)
    driver = DevChainDriver(w3)
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(
        [WATCHER, "run"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
    )

    def watcher(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [WATCHER, *args, "--dev-account", "12"], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def becomes(state: str, within: float = 40) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = orders(url)
            if found and found[0]["lease_state"] == state:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"not {state}: {orders(url)}")

    try:
        api_up(url, run)
        periods = "1" if case == "auto-renew" else "3"
        bought = watcher(
            "buy", "quick", "--periods", periods, "--ssh-key", str(tmp_path / "id.pub"), "--json"
        )
        assert bought.returncode == 0, bought.stderr
        order_id = json.loads(bought.stdout)["access"]["order_id"]
        if case == "auto-renew":
            driver.pay(ctk, BUYER, 20 * CTK)  # credit for two renewals
            deadline = time.monotonic() + 30
            while _money(url)[0] != 20 * CTK:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            renew = watcher("extend", order_id, "--auto-renew", "on")
            assert renew.returncode == 0, renew.stderr
            stopped = becomes("stopped")
            assert stopped["periods"] == 3 and stopped["amount"] == str(30 * CTK)
            assert _money(url) == (0, 30 * CTK)  # paid 10 + 20: all in the lease
        else:
            (reservation,) = ec2_client(moto.url).describe_instances()["Reservations"]
            instance_id = reservation["Instances"][0]["InstanceId"]
            ec2_client(moto.url).terminate_instances(InstanceIds=[instance_id])
            ended = becomes("terminated", within=20)
            assert ended["state"] == "terminated"
            credit, held = _money(url)
            # 3 periods paid; at most the first begun: 2 whole periods come back.
            assert (credit, held) == (20 * CTK, 10 * CTK)
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(30)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-2000:]
