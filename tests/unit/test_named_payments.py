"""Payments that name a drafted order (issue 10), at the ledger: paid in full before the
quote's deadline, the draft becomes an order at the quoted price and the change is credit;
short, late, unknown or already paid, the whole amount is credit and the draft says why.
A reorg undoes a placement like any order, and the payment mined again places it again.
The money invariant holds throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.keyhelpers import new_ssh_key
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.drafts import Draft, Drafts
from watcher.adapters.ledger.ledger import Cursor, Ledger
from watcher.adapters.ledger.schema import OrderRecord
from watcher.domain.catalog import Catalog
from watcher.domain.drafts import draft_terms, quote
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.payment import Payment

CTK = 10**18
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
CATALOG = Catalog(
    {
        "small": ec2_plan("small", 10 * CTK, "t3.micro", "ami-0123456789abcdef0"),
        "large": ec2_plan("large", 25 * CTK, "t3.large", "ami-0123456789abcdef0"),
    },
    "small",
)
KEY = new_ssh_key()
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


async def draft(engine: AsyncEngine, owner: str = ALICE, periods: int = 2) -> Draft:
    terms = draft_terms(CATALOG, "large", periods, KEY, "build box")
    return await Drafts(engine, 1337).create(owner, terms, quote(terms, NOW), NOW)


def payment(n: int, payer: str, ctk: int, block: int = 10) -> Payment:
    return Payment(1337, f"0x{n:064x}", 0, block, "0x" + f"{block:064x}", payer, ctk * CTK)  # type: ignore[arg-type]


async def record(
    engine: AsyncEngine, payments: list[Payment], named: dict[int, str], at: datetime = NOW
) -> None:
    times = {p.block_number: at for p in payments}
    await Ledger(engine, 1337, CATALOG).record(
        payments,
        block_times=times,
        named={(payments[i].tx_hash, payments[i].log_index): ref for i, ref in named.items()},
    )


async def credit(engine: AsyncEngine, payer: str = ALICE) -> int:
    found = await queries.credits(engine, 1337, payer)
    return found[0].balance if found else 0


async def balanced(engine: AsyncEngine) -> None:
    totals = await queries.totals(engine, 1337)
    assert totals.paid == totals.credit + totals.spent, totals


async def test_paid_in_full_in_time_places_the_draft_and_the_change_is_credit(
    engine: AsyncEngine,
) -> None:
    offer = await draft(engine)  # 2 periods of 25 CTK = 50 CTK
    await record(engine, [payment(1, ALICE, 57)], {0: offer.reference}, NOW + timedelta(minutes=5))
    (order,) = await queries.orders(engine)
    assert (order.plan, order.amount, order.state) == ("large", 50 * CTK, "queued")
    async with engine.connect() as conn:
        row = (await conn.execute(select(OrderRecord))).one()
    assert (row.reference, row.periods, row.name) == (offer.reference, 2, "build box")
    assert row.ssh_key == KEY
    placed = await Drafts(engine, 1337).get(offer.reference)
    assert placed is not None and (placed.state, placed.order_id) == ("placed", order.order_id)
    # The 7 CTK of change stay credit: a payment that names an order buys nothing else,
    # not even the plan on offer (10 CTK would buy one).
    assert await credit(engine) == 7 * CTK
    await balanced(engine)


@pytest.mark.parametrize(
    ("ctk", "minutes", "reason"),
    [
        (49, 5, "49 CTK is short of the quoted 50 CTK"),
        (50, 31, "after the quote ran out"),
    ],
)
async def test_short_or_late_goes_to_credit_whole_and_the_draft_says_why(
    engine: AsyncEngine, ctk: int, minutes: int, reason: str
) -> None:
    offer = await draft(engine)
    await record(
        engine, [payment(1, ALICE, ctk)], {0: offer.reference}, NOW + timedelta(minutes=minutes)
    )
    assert await queries.orders(engine) == []
    assert await credit(engine) == ctk * CTK
    still = await Drafts(engine, 1337).get(offer.reference)
    assert still is not None and still.state == "open" and reason in (still.note or "")
    await balanced(engine)


async def test_an_unknown_reference_a_second_payment_or_another_payer_is_credit(
    engine: AsyncEngine,
) -> None:
    offer, other = await draft(engine), await draft(engine)
    unknown = "0x" + "11" * 32
    await record(
        engine,
        [payment(1, ALICE, 50), payment(2, ALICE, 50), payment(3, BOB, 30)],
        {0: offer.reference, 1: offer.reference, 2: unknown},
    )
    (order,) = await queries.orders(engine)
    assert order.payer == ALICE and order.reference == offer.reference
    # The second payment for the placed draft and the unknown reference are credit.
    assert (await credit(engine), await credit(engine, BOB)) == (50 * CTK, 30 * CTK)
    placed = await Drafts(engine, 1337).get(offer.reference)
    assert placed is not None and placed.note is None  # placed in that batch: no note
    await record(
        engine,
        [payment(4, ALICE, 50, block=11), payment(5, BOB, 50, block=11)],
        {0: offer.reference, 1: other.reference},
    )
    assert len(await queries.orders(engine)) == 1
    assert (await credit(engine), await credit(engine, BOB)) == (100 * CTK, 80 * CTK)
    placed, still = (
        await Drafts(engine, 1337).get(offer.reference),
        await Drafts(engine, 1337).get(other.reference),
    )
    assert placed is not None and "already paid" in (placed.note or "")
    # Only the draft's owner buys it: another wallet's payment stays that wallet's credit.
    assert still is not None and still.state == "open"
    assert f"came from {BOB}, not the owner" in (still.note or "")
    await balanced(engine)


async def test_a_reorg_reopens_the_draft_and_the_payment_mined_again_places_it_again(
    engine: AsyncEngine,
) -> None:
    offer = await draft(engine)
    first = payment(1, ALICE, 50, block=10)
    await record(engine, [first], {0: offer.reference})
    (before,) = await queries.orders(engine)
    await Ledger(engine, 1337, CATALOG).rewind(Cursor(9, "0x" + "09" * 32))
    assert await queries.orders(engine) == []
    reopened = await Drafts(engine, 1337).get(offer.reference)
    assert reopened is not None and reopened.state == "open" and "reorg" in (reopened.note or "")
    await balanced(engine)
    again = payment(1, ALICE, 50, block=11)
    await record(engine, [again], {0: offer.reference})
    (after,) = await queries.orders(engine)
    assert after.order_id == before.order_id and after.block_number == 11
    await balanced(engine)


async def test_without_vending_a_plain_payment_is_credit_only(engine: AsyncEngine) -> None:
    """With a Checkout the thesis's vending is off by default: a plain payment (or one
    whose OrderPaid a node failed to return) buys nothing its payer did not choose."""
    ledger = Ledger(engine, 1337, CATALOG, vending=False)
    await ledger.record([payment(1, ALICE, 25)])
    assert await queries.orders(engine) == [] and await credit(engine) == 25 * CTK
    await balanced(engine)
