"""`watcher audit` as an operator runs it: the real CLI against a Hardhat chain, a ledger
(SQLite and PostgreSQL) and moto's EC2 server over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from web3 import Web3

from tests.chainhelpers import CTK, DevChainDriver
from tests.cloudhelpers import AWS_ENV, ec2_client, instances_by_order
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.ledger.database import create_engine
from watcher.dev.devchain import DevChain

WATCHER = str(Path(sys.executable).parent / "watcher")
PAYERS = (dev_account(15), dev_account(16))


def watcher(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATCHER, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def provisioned(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, database_url: str, tmp_path: Path
) -> dict[str, str]:
    """Two payers, three orders, each with its instance; the ledger followed live."""
    moto.reset()
    driver = DevChainDriver(w3)
    ctk = driver.token()
    start = driver.head + 1
    for payer in PAYERS:
        driver.fund(ctk, payer, 100)
    driver.pay(ctk, PAYERS[0], 20 * CTK)
    driver.pay(ctk, PAYERS[1], 15 * CTK)
    (tmp_path / "watcher.toml").write_text(
        f'[plans."t3.micro"]\nprice = "10"\nami = "{moto_ami}"\n'
    )
    env = {
        **os.environ,
        **AWS_ENV,
        "WATCHER_RPC_URL": devchain.url,
        "WATCHER_TOKEN_ADDRESS": ctk.address,
        "WATCHER_CONFIRMATIONS": "0",
        "WATCHER_START_BLOCK": str(start),
        "WATCHER_DATABASE_URL": database_url,
        "WATCHER_AWS_ENDPOINT_URL": moto.url,
        "WATCHER_AWS_REGION": "us-east-1",
    }
    if database_url.startswith("postgresql"):
        assert watcher("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    replayed = watcher("replay", "--from-block", str(start), env=env, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    drained = watcher("drain", "--max-wait", "60", env=env, cwd=tmp_path)
    assert drained.returncode == 0, drained.stderr
    return env


def audit(env: dict[str, str], cwd: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = watcher("audit", "--json", *extra, env=env, cwd=cwd)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def kinds(report: dict[str, Any]) -> list[str]:
    return sorted(d["kind"] for d in report["differences"])


async def edit(database_url: str, statement: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def test_a_clean_ledger_audits_clean(provisioned: dict[str, str], tmp_path: Path) -> None:
    result = watcher("audit", env=provisioned, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("audit: clean (")
    code, report = audit(provisioned, tmp_path)
    assert code == 0 and report["clean"] and report["differences"] == []
    assert report["checked"]["payments"] == 2 and report["checked"]["orders"] == 3
    assert report["checked"]["resources"] == 3
    # Whatever this shell's confirmations setting: the replay goes as far as the ledger.
    stricter = {k: v for k, v in provisioned.items() if k != "WATCHER_CONFIRMATIONS"}
    assert watcher("audit", "--skip-cloud", env=stricter, cwd=tmp_path).returncode == 0


async def test_audit_refuses_a_restarted_chain_in_one_line(
    provisioned: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    await edit(database_url, "UPDATE chains SET genesis_hash = '0x" + "ab" * 32 + "'")
    result = watcher("audit", env=provisioned, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "restarted dev chain" in line


def test_cloud_differences_are_found_and_named(
    provisioned: dict[str, str], tmp_path: Path, moto: Any, moto_ami: str
) -> None:
    by_order = instances_by_order(moto.url)
    first, second, *_ = sorted(by_order)
    ec2 = ec2_client(moto.url)
    # Terminated outside the watcher.
    ended = by_order[first][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[ended])

    # A duplicate for another order, and a tagged instance with no order at all.
    def launch(order_id: str) -> str:
        answer = ec2.run_instances(
            ImageId=moto_ami,
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "AllocatedBy", "Value": "TokenSystem"},
                        {"Key": "OrderId", "Value": order_id},
                    ],
                }
            ],
        )
        return str(answer["Instances"][0]["InstanceId"])

    duplicate = launch(second)
    stray = launch("f" * 32)

    code, report = audit(provisioned, tmp_path, "--skip-chain")
    assert code == 1
    found = {d["kind"]: d for d in report["differences"]}
    assert kinds(report) == ["resource_duplicate", "resource_ended", "resource_without_order"]
    assert found["resource_ended"]["order_id"] == first
    assert found["resource_ended"]["resource"] == ended
    assert found["resource_duplicate"]["order_id"] == second
    assert duplicate in found["resource_duplicate"]["resource"]
    assert found["resource_without_order"]["resource"] == stray

    lines = watcher("audit", "--skip-chain", env=provisioned, cwd=tmp_path)
    assert lines.returncode == 1
    text_lines = lines.stdout.strip().splitlines()
    assert text_lines[-1] == "audit: 3 differences (3 orders, 5 resources)"
    assert any(first in line and ended in line for line in text_lines)


async def test_an_order_edited_by_hand_is_found(
    provisioned: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    code, _ = audit(provisioned, tmp_path)
    assert code == 0
    await edit(
        database_url,
        "UPDATE orders SET state = 'failed' WHERE order_id = (SELECT min(order_id) FROM orders)",
    )
    code, report = audit(provisioned, tmp_path)
    assert code == 1
    assert "money_unbalanced" in kinds(report)  # a "failed" order with no refund
    await edit(
        database_url,
        "UPDATE orders SET state = 'running', plan = 'big' WHERE order_id = "
        "(SELECT min(order_id) FROM orders)",
    )
    code, report = audit(provisioned, tmp_path, "--skip-cloud")
    assert code == 1
    (difference,) = report["differences"]
    assert difference["kind"] == "order_differs" and "plan" in difference["detail"]
    await edit(
        database_url,
        "UPDATE orders SET plan = 't3.micro', block_number = block_number + 1 WHERE order_id = "
        "(SELECT min(order_id) FROM orders)",
    )
    code, report = audit(provisioned, tmp_path, "--skip-cloud")
    assert code == 1 and kinds(report) == ["order_unpaid"]


async def test_a_payment_missing_from_the_ledger_is_found(
    provisioned: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    await edit(
        database_url,
        "DELETE FROM payments WHERE id = (SELECT max(id) FROM payments)",
    )
    code, report = audit(provisioned, tmp_path, "--skip-cloud")
    assert code == 1
    assert "payment_missing" in kinds(report) and "money_unbalanced" in kinds(report)


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = watcher("audit", "--skip-chain", "--skip-cloud", env={**os.environ}, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "nothing to audit" in result.stderr
