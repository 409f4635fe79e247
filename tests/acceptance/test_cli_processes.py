"""The installed `watcher` console script, run as a user would, in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import HTTPProvider, Web3

from watcher.dev.devchain import DevChain, rpc_chain_id
from watcher.shared.net import free_port, port_is_free

WATCHER = str(Path(sys.executable).parent / "watcher")
# Hardhat's published key of dev account 0: `watcher devchain` must never print it.
DEV_KEY_0 = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
USER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def watcher(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATCHER, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def hardhat_pids() -> set[int]:
    found = subprocess.run(
        ["pgrep", "-f", "hardhat.config.js node"], capture_output=True, text=True
    )
    return {int(pid) for pid in found.stdout.split()}


def test_devchain_runs_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "devchain.out").open("w+")
    process = subprocess.Popen(
        [WATCHER, "devchain", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while rpc_chain_id(f"http://127.0.0.1:{port}", timeout=1) != 1337:
            assert process.poll() is None, "watcher devchain exited early"
            assert time.monotonic() < deadline, "dev chain did not start"
            time.sleep(0.2)

        async_ws = Web3(HTTPProvider(f"http://127.0.0.1:{port}"))
        assert async_ws.eth.chain_id == 1337
        # WebSocket on the same port: our own client, through the CLI.
        ws = watcher("token", "deploy", "--dev-account", "0", "--rpc-url", f"ws://127.0.0.1:{port}")
        assert ws.returncode == 0, ws.stderr
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    log.seek(0)
    output = log.read()
    assert code == 0
    assert f"dev chain 1337 at http://127.0.0.1:{port}" in output
    assert "--dev-account 0   0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266" in output
    assert DEV_KEY_0 not in output
    assert port_is_free(port)


def test_devchain_refuses_a_busy_port(devchain: DevChain) -> None:
    result = watcher("devchain", "--port", str(devchain.port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"watcher: error: port {devchain.port} on 127.0.0.1 is already in use; "
        "pick another with --port"
    )


def test_the_thesis_payment_flow_through_the_console_script(devchain: DevChain) -> None:
    env = {"WATCHER_RPC_URL": devchain.url}
    deployed = watcher("token", "deploy", "--dev-account", "0", "--json", env=env)
    assert deployed.returncode == 0, deployed.stderr
    env["WATCHER_TOKEN_ADDRESS"] = json.loads(deployed.stdout)["address"]

    assert watcher("token", "transfer", USER, "50", "--dev-account", "0", env=env).returncode == 0
    paid = watcher("pay", "10", "--dev-account", "1", env=env)
    assert paid.returncode == 0, paid.stderr
    assert watcher("token", "balance", USER, env=env).stdout.strip() == f"{USER}: 40 CTK"

    back = watcher("token", "transfer", dev_admin(), "40", "--dev-account", "1", env=env)
    assert back.returncode == 0, back.stderr
    refused = watcher("pay", "10", "--dev-account", "1", env=env)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.strip().endswith("holds 0 CTK and this needs 10 CTK; nothing was sent")
    assert "Traceback" not in refused.stderr


def dev_admin() -> str:
    return "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("pay", "abc"), {}, "amount must be a decimal number of CTK"),
        (("token", "balance", "0x12"), {}, "address must be 0x followed by 40 hex digits"),
        (
            ("token", "balance", USER),
            {"WATCHER_TOKEN_ADDRESS": "nope"},
            "invalid WATCHER_TOKEN_ADDRESS",
        ),
        (("token", "balance", USER), {"WATCHER_RPC_URL": "8545"}, "invalid WATCHER_RPC_URL"),
        (("frobnicate",), {}, "No such command 'frobnicate'"),
    ],
)
def test_mistakes_exit_2_with_one_line(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = watcher(*args, env=env)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def moto_pids() -> set[int]:
    found = subprocess.run(
        ["pgrep", "-f", "moto_server -H 127.0.0.1"], capture_output=True, text=True
    )
    return {int(pid) for pid in found.stdout.split()}


def test_demo_replays_the_three_experiments_and_leaves_nothing_running() -> None:
    import re

    before_chains, before_motos = hardhat_pids(), moto_pids()
    result = watcher("demo", timeout=180)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1 sufficient funds admin sends the user 50 CTK: sent" in out
    assert "2 insufficient funds user pays 10 CTK: refused: not enough CTK" in out
    assert "burn address holds 20 CTK" in out
    paid = [line for line in out.splitlines() if "user pays 10 CTK: paid" in line]
    assert [line.split()[0] for line in paid] == ["1", "3"]
    instances = [re.search(r"order running, instance (i-[0-9a-f]+)", line) for line in paid]
    assert all(instances)
    assert len({m.group(1) for m in instances if m}) == 2  # two distinct instances
    assert "dev chain, moto and the watcher stopped" in out
    assert hardhat_pids() <= before_chains
    assert moto_pids() <= before_motos
