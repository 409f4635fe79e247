"""Orders that cannot be provisioned are visible: with AWS unreachable, every retry logs its
reason, and `watcher orders` (table and --json) shows the last error, the attempts and the
next try. Real provisioner, real EC2 client against a closed port, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cloudhelpers import AWS_ENV
from watcher.adapters.cloud.ec2 import open_ec2
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.ledger import Ledger
from watcher.domain.catalog import Catalog
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.payment import Payment
from watcher.ports.cloud import Cloud
from watcher.services.provisioner import Provisioner, ProvisionerConfig
from watcher.shared.net import free_port

CTK = 10**18
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
WATCHER = str(Path(sys.executable).parent / "watcher")
CATALOG = Catalog(
    {"t3.micro": ec2_plan("t3.micro", 10 * CTK, "t3.micro", "ami-0123456789abcdef0")}, "t3.micro"
)
FAST = ProvisionerConfig(retry_base=0.02, retry_cap=0.1, idle_poll=0.02)


@pytest.fixture
async def engine(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncEngine]:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    engine = create_engine(database_url)
    await migrations.upgrade(engine)
    await Ledger(engine, 1337, CATALOG).record(
        [Payment(1337, "0x" + "ab" * 32, 0, 7, "0x" + "cd" * 32, ALICE, 10 * CTK)]  # type: ignore[arg-type]
    )
    yield engine
    await engine.dispose()


async def provision_with_aws_unreachable(engine: AsyncEngine) -> None:
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    async with open_ec2("us-east-1", nothing_listens, 5) as cloud:
        provisioner = Provisioner(JobQueue(engine, "test-0", 30), Cloud(cloud), CATALOG, FAST)
        assert await provisioner.drain(max_wait=0.5) == 1  # still pending: it is retried


def watcher_orders(database_url: str, *args: str) -> str:
    result = subprocess.run(
        [WATCHER, "orders", *args],
        env={**os.environ, "WATCHER_DATABASE_URL": database_url, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_retries_log_their_reason_and_watcher_orders_shows_it(
    engine: AsyncEngine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="watcher.services.provisioner"):
        await provision_with_aws_unreachable(engine)
    retries = [r.getMessage() for r in caplog.records if "provision_retry" in r.getMessage()]
    assert retries, caplog.text
    for line in retries:
        # It said `code=null` and nothing else; the reason was only in the database.
        assert "reason=" in line and "Could not connect to the endpoint URL" in line, line
        assert "\n" not in line

    (order,) = await queries.orders(engine)
    assert order.last_error is not None and "Could not connect" in order.last_error
    assert order.attempts is not None and order.attempts >= 1
    assert not order.overdue

    (line,) = watcher_orders(database_url, "--json").splitlines()
    shown: dict[str, Any] = json.loads(line)
    assert shown["last_error"] == order.last_error
    assert shown["attempts"] == order.attempts >= 1
    assert shown["overdue"] is False
    # Due again after its backoff (or being retried right now, when it was claimed).
    if shown["next_attempt_at"] is not None:
        assert datetime.fromisoformat(shown["next_attempt_at"]).tzinfo is not None

    # The list fits 80 columns and says why it waits; the order in full has every word.
    table = watcher_orders(database_url)
    assert order.order_id[:8] in table and f"attempt {order.attempts}" in table
    assert all(len(line) <= 80 for line in table.splitlines()), table
    full = watcher_orders(database_url, order.order_id[:8])
    assert f"attempt {order.attempts} failed:" in full
    assert "Could not connect to the endpoint URL" in full
    assert "order_id" in full and order.order_id in full
