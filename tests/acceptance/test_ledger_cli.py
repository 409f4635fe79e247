"""`watcher replay`, `orders`, `credit` and `db upgrade` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from web3 import Web3

from tests.chainhelpers import CTK, DevChainDriver
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.ledger.queries import OrderView
from watcher.dev.devchain import DevChain

WATCHER = str(Path(sys.executable).parent / "watcher")
PAYER = dev_account(12)
# `watcher orders --json` prints every field of the one declaration of an order's shape.
ORDER_FIELDS = {f.name for f in fields(OrderView)}


def watcher(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATCHER, *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def paid(devchain: DevChain, w3: Web3) -> tuple[dict[str, str], int]:
    driver = DevChainDriver(w3)
    ctk = driver.token()
    driver.fund(ctk, PAYER, 100)
    start = driver.head
    driver.pay(ctk, PAYER, 25 * CTK)
    driver.pay(ctk, PAYER, 5 * CTK)
    env = {
        "WATCHER_RPC_URL": devchain.url,
        "WATCHER_TOKEN_ADDRESS": ctk.address,
        "WATCHER_CONFIRMATIONS": "0",
    }
    return env, start


def test_replay_on_the_embedded_default_then_orders_and_credit(
    paid: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, start = paid
    first = watcher("replay", "--from-block", str(start), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # The embedded default, migrated on the spot, in the user's data folder (issue 8.2): a
    # watcher started from another folder finds the same ledger, not an empty one.
    assert (tmp_path / "data" / "watcher" / "ledger.db").exists()
    assert not (tmp_path / "watcher.db").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "0 new payments, 2 already recorded" in (
        watcher("replay", "--from-block", str(start), env=env, cwd=elsewhere).stdout
    )
    assert "2 new payments, 0 already recorded, 3 orders" in first.stdout
    again = watcher(
        "replay", "--from-block", str(start), "--to-block", "latest", env=env, cwd=tmp_path
    )
    assert "0 new payments, 2 already recorded, 0 orders" in again.stdout

    orders = [
        json.loads(line)
        for line in watcher("orders", "--json", env=env, cwd=tmp_path).stdout.splitlines()
    ]
    assert len(orders) == 3
    assert all(set(order) == ORDER_FIELDS for order in orders)
    assert [o["amount"] for o in orders] == [str(10 * CTK)] * 3
    assert {o["payer"] for o in orders} == {PAYER.address}
    assert all(o["state"] == "queued" and o["instance_id"] is None for o in orders)
    mine = watcher("orders", "--payer", PAYER.address.lower(), "--json", env=env, cwd=tmp_path)
    assert len(mine.stdout.splitlines()) == 3
    nobody = watcher("orders", "--payer", dev_account(13).address, env=env, cwd=tmp_path)
    assert nobody.stdout.strip() == "no orders"

    credit = json.loads(watcher("credit", PAYER.address, "--json", env=env, cwd=tmp_path).stdout)
    assert (credit["payer"], credit["balance"]) == (PAYER.address, "0")
    table = watcher("orders", env=env, cwd=tmp_path)
    assert table.returncode == 0 and "10 CTK" in table.stdout
    short = f"{PAYER.address[:6]}…{PAYER.address[-4:]}"
    assert short in table.stdout
    assert all(len(line) <= 80 for line in table.stdout.splitlines()), table.stdout
    first = json.loads(watcher("orders", "--json", env=env, cwd=tmp_path).stdout.splitlines()[0])
    one = watcher("orders", first["order_id"][:10], env=env, cwd=tmp_path)
    assert one.returncode == 0 and first["tx_hash"] in one.stdout and PAYER.address in one.stdout
    for refused, reason in [("abc", "at least 6 characters"), ("ffffffffff", "no order")]:
        answer = watcher("orders", refused, env=env, cwd=tmp_path)
        assert answer.returncode != 0 and reason in answer.stderr


def test_postgresql_must_be_upgraded_first(
    paid: tuple[dict[str, str], int], postgres_url: str, tmp_path: Path
) -> None:
    env = {**paid[0], "WATCHER_DATABASE_URL": postgres_url}
    refused = watcher("replay", "--from-block", str(paid[1]), env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("run 'watcher db upgrade'")
    upgraded = watcher("db", "upgrade", env=env, cwd=tmp_path)
    assert upgraded.returncode == 0 and "upgraded from schema none to" in upgraded.stdout
    assert "up to date" in watcher("db", "upgrade", env=env, cwd=tmp_path).stdout
    done = watcher("replay", "--from-block", str(paid[1]), env=env, cwd=tmp_path)
    assert done.returncode == 0 and "2 new payments" in done.stdout


def test_a_reset_chain_or_another_token_is_refused_not_taken_for_a_reorg(
    paid: tuple[dict[str, str], int], tmp_path: Path, w3: Web3
) -> None:
    """Issue 8.8: the ledger records the genesis block and the token it follows. A node
    serving another chain under the same id (a restarted dev chain: simulated by editing
    the recorded genesis) or another token is refused with one line, and nothing changes."""
    import sqlite3

    env, start = paid
    assert watcher("replay", "--from-block", str(start), env=env, cwd=tmp_path).returncode == 0
    ledger = tmp_path / "data" / "watcher" / "ledger.db"
    with sqlite3.connect(ledger) as db:
        (genesis,) = db.execute("SELECT genesis_hash FROM chains").fetchone()
        assert genesis == w3.eth.get_block(0)["hash"].to_0x_hex()
        db.execute("UPDATE chains SET genesis_hash = ?", ("0x" + "ab" * 32,))
    refused = watcher("replay", "--from-block", str(start), env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "genesis" in refused.stderr and "use a new ledger" in refused.stderr
    assert f"delete this one (the file {ledger})" in refused.stderr
    with sqlite3.connect(ledger) as db:
        db.execute("UPDATE chains SET genesis_hash = ?", (genesis,))
        assert db.execute("SELECT count(*) FROM payments").fetchone() == (2,)

    other = DevChainDriver(w3).token()
    moved = watcher(
        "replay",
        "--from-block",
        str(start),
        env={**env, "WATCHER_TOKEN_ADDRESS": other.address},
        cwd=tmp_path,
    )
    assert moved.returncode == 1 and f"not {other.address}" in moved.stderr

    nothing = watcher(
        "replay",
        "--from-block",
        str(start),
        env={**env, "WATCHER_TOKEN_ADDRESS": dev_account(14).address},
        cwd=tmp_path,
    )
    assert nothing.returncode == 1
    assert "there is no contract at the token address" in nothing.stderr


@pytest.mark.parametrize(
    ("args", "extra_env", "code", "message"),
    [
        (("replay", "--from-block", "abc"), {}, 2, "must be a block number, got 'abc'"),
        (
            ("replay", "--from-block", "1", "--to-block", "soon"),
            {},
            2,
            "must be a block number or latest",
        ),
        (("replay", "--from-block", "1", "--to-block", "99999999"), {}, 2, "is not confirmed yet"),
        (("replay",), {}, 2, "Missing option '--from-block'"),
        (("orders", "--payer", "0x12"), {}, 2, "address must be 0x followed by 40 hex digits"),
        (
            ("replay", "--from-block", "0"),
            {"WATCHER_DATABASE_URL": "mysql://x/y"},
            2,
            "only sqlite and postgresql",
        ),
        (
            ("replay", "--from-block", "0"),
            {"WATCHER_CONFIRMATIONS": "-1"},
            2,
            "invalid WATCHER_CONFIRMATIONS",
        ),
        (
            ("replay", "--from-block", "0"),
            {"WATCHER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"},
            1,
            "cannot open the ledger postgresql+asyncpg://***@127.0.0.1:1/x",
        ),
        (("credit",), {}, 1, "/data/watcher/ledger.db yet"),
        (
            ("run",),
            {
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_EC2_METADATA_DISABLED": "true",
            },
            2,
            "no AWS credentials: set AWS_ACCESS_KEY_ID",
        ),
        (
            ("drain",),
            {"WATCHER_AWS_ENDPOINT_URL": "ftp://x"},
            2,
            "invalid WATCHER_AWS_ENDPOINT_URL",
        ),
        (("run",), {"WATCHER_WORKERS": "-1"}, 2, "invalid WATCHER_WORKERS"),
    ],
)
def test_mistakes_get_one_line(
    paid: tuple[dict[str, str], int],
    tmp_path: Path,
    args: tuple[str, ...],
    extra_env: dict[str, str],
    code: int,
    message: str,
) -> None:
    result = watcher(*args, env={**paid[0], **extra_env}, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_replay_shows_a_progress_bar_on_a_terminal(
    paid: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    import pty

    env, start = paid
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [WATCHER, "replay", "--from-block", str(start)],
        env={**os.environ, **env, "COLUMNS": "120"},
        cwd=tmp_path,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = output.decode("utf-8", "replace")
    assert "blocks/s" in text and "payments/s" in text  # the live bar
    assert "2 new payments" in text  # and the summary after it
