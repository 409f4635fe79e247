"""Credit balances have one writer, watcher/adapters/ledger/accounts.py, and production code checks
the money invariant (issue 9): a test over the modules, and the check itself."""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger import migrations
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.ledger import Cursor, Ledger
from watcher.adapters.ledger.schema import CreditRecord
from watcher.domain.catalog import Catalog
from watcher.domain.payment import Payment
from watcher.services.monitoring import check_money
from watcher.shared import metrics

PACKAGE = Path(__file__).resolve().parents[2] / "watcher"
WRITERS = {"insert", "update", "delete", "bulk_insert"}
RAW_WRITE = re.compile(r"\b(insert\s+into|update|delete\s+from)\s+credits\b", re.IGNORECASE)


def credit_writes(path: Path) -> list[int]:
    """Lines of `path` that build an INSERT/UPDATE/DELETE on the credits table."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", "")
            )
            if name in WRITERS and any(
                isinstance(n, ast.Name) and n.id == "CreditRecord"
                for arg in node.args
                for n in ast.walk(arg)
            ):
                found.append(node.lineno)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and RAW_WRITE.search(node.value)
        ):
            found.append(node.lineno)
    return sorted(found)


def test_only_the_accounts_module_writes_credit() -> None:
    writers = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := credit_writes(path))
    }
    assert set(writers) == {"adapters/ledger/accounts.py"}, writers


def test_the_scan_sees_a_write_when_there_is_one(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from sqlalchemy import update\n"
        "q = update(CreditRecord).values(balance=1)\n"
        "r = 'UPDATE credits SET balance = 0'\n"
    )
    assert credit_writes(sample) == [2, 3]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


async def test_production_checks_the_money_invariant(engine: AsyncEngine) -> None:
    payer = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    tx = "0x" + hashlib.sha256(b"money").hexdigest()
    ledger = Ledger(engine, 1337, Catalog())
    await ledger.record(
        [Payment(1337, tx, 0, 5, "0x" + "bb" * 32, payer, 25 * 10**18)],  # type: ignore[arg-type]
        advance_from=None,
        advance_to=None,
    )
    await ledger.rewind(Cursor(5, "0x" + "bb" * 32))  # sets the cursor: the chain is followed
    assert await check_money(engine) == {1337: 0}
    async with engine.begin() as conn:  # a hand edit: 1 CTK of credit from nowhere
        await conn.execute(update(CreditRecord).values(balance=6 * 10**18))
    assert await check_money(engine) == {1337: -(10**18)}
    assert metrics.MONEY_IMBALANCE.labels(chain_id="1337")._value.get() == -(10**18)
