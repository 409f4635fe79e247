"""Credit spent on a drafted order (issue 10), at the ledger: bought from credit with no
payment, or a checkout payment short of the quote whose owner's credit covers the rest.
Refusals change nothing; a deep reorg below the purchase undoes it; the money invariant
holds throughout; `watcher audit`'s comparison knows such orders are not on chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.unit.test_named_payments import (
    ALICE,
    BOB,
    CATALOG,
    CTK,
    KEY,
    NOW,
    balanced,
    credit,
    draft,
    payment,
    record,
)
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.drafts import Drafts, copy_unplaced
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.ledger import Cursor, Ledger, NotPayable
from watcher.domain.blocks import BlockRef
from watcher.domain.drafts import draft_terms, quote
from watcher.domain.pricing import credit_order_id
from watcher.domain.reconcile import OrderFacts, compare_orders
from watcher.runtime.audit import order_facts


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


def block(n: int) -> BlockRef:
    return BlockRef(n, "0x" + f"{n:064x}", "0x" + f"{n - 1:064x}")


async def paid_in_block(engine: AsyncEngine, n: int, payer: str, ctk: int, number: int) -> None:
    """A plain payment in block `number`, recorded with the cursor moved there."""
    ledger = Ledger(engine, 1337, CATALOG, vending=False)
    await ledger.record(
        [payment(n, payer, ctk, block=number)],
        advance_from=await ledger.cursor(),
        advance_to=block(number),
    )


async def test_credit_buys_an_open_draft_once_with_no_payment(engine: AsyncEngine) -> None:
    await paid_in_block(engine, 1, ALICE, 60, 10)
    offer = await draft(engine)  # 2 periods of 25 CTK = 50 CTK
    ledger = Ledger(engine, 1337, CATALOG, vending=False)
    bought = await ledger.spend_credit(ALICE, offer.reference, NOW + timedelta(minutes=1))
    assert bought.order_id == credit_order_id(1337, offer.reference)
    assert (bought.price, bought.credit_left) == (50 * CTK, 10 * CTK)
    (order,) = await queries.orders(engine)
    assert (order.order_id, order.state, order.amount) == (bought.order_id, "queued", 50 * CTK)
    assert (order.tx_hash, order.log_index, order.block_number) == (None, None, 10)
    assert (order.reference, order.periods, order.plan) == (offer.reference, 2, "large")
    placed = await Drafts(engine, 1337).get(offer.reference)
    assert placed is not None and (placed.state, placed.order_id) == ("placed", order.order_id)
    assert await credit(engine) == 10 * CTK
    await balanced(engine)
    # A second request (a double click, a retried call) is refused, never charged twice.
    with pytest.raises(NotPayable, match="already paid") as again:
        await ledger.spend_credit(ALICE, offer.reference, NOW + timedelta(minutes=2))
    assert again.value.status == 409
    assert await credit(engine) == 10 * CTK and len(await queries.orders(engine)) == 1
    # The provisioner finds it like any queued order.
    job = await JobQueue(engine, "w1", 60).claim()
    assert job is not None and job.order_id == order.order_id and job.tx_hash is None


@pytest.mark.parametrize(
    ("who", "minutes", "status", "message"),
    [
        (ALICE, 1, 402, "your credit is 20 CTK and the order costs 50 CTK"),
        (BOB, 1, 403, "belongs to another wallet"),
        (ALICE, 31, 409, "ran out"),
    ],
)
async def test_refusals_change_nothing(
    engine: AsyncEngine, who: str, minutes: int, status: int, message: str
) -> None:
    await paid_in_block(engine, 1, ALICE, 20, 10)
    await paid_in_block(engine, 2, BOB, 90, 11)
    offer = await draft(engine)
    ledger = Ledger(engine, 1337, CATALOG, vending=False)
    with pytest.raises(NotPayable, match=message) as refused:
        await ledger.spend_credit(who, offer.reference, NOW + timedelta(minutes=minutes))
    assert refused.value.status == status
    assert await queries.orders(engine) == []
    assert (await credit(engine), await credit(engine, BOB)) == (20 * CTK, 90 * CTK)
    still = await Drafts(engine, 1337).get(offer.reference)
    assert still is not None and still.state == "open"


async def test_a_reorg_charges_credit_orders_to_what_credit_is_left(
    engine: AsyncEngine,
) -> None:
    """Credit orders above the reorg are paid again from the credit the chain still
    gives: what it covers stays (the started one first), the rest is undone (holding
    nothing first); a later payment that covers a flagged one funds it again."""
    await paid_in_block(engine, 1, ALICE, 30, 10)
    await paid_in_block(engine, 2, ALICE, 30, 12)
    first, second = await draft(engine, periods=1), await draft(engine, periods=1)
    ledger = Ledger(engine, 1337, CATALOG, vending=False)
    queued = await ledger.spend_credit(ALICE, first.reference, NOW)
    started = await ledger.spend_credit(ALICE, second.reference, NOW)
    worker = JobQueue(engine, "w1", 60)
    claimed = {(await worker.claim()).order_id for _ in range(2)}  # type: ignore[union-attr]
    assert claimed == {queued.order_id, started.order_id}
    assert await worker.mark_launching(started.order_id)
    assert await credit(engine) == 10 * CTK
    # The 30 CTK of block 12 are taken: 10 + 30 - 30 = 10 left pays for neither order of
    # 25; the queued one is undone (25 back: 35 - 30 = 5), the started one stays funded.
    await ledger.rewind(Cursor(11, "0x" + f"{11:064x}"))
    orders = {o.order_id: o for o in await queries.orders(engine)}
    assert queued.order_id not in orders
    reopened = await Drafts(engine, 1337).get(first.reference)
    assert reopened is not None and reopened.state == "open" and "reorg" in (reopened.note or "")
    kept = orders[started.order_id]
    assert (kept.reorged, kept.state, kept.block_number) == (False, "launching", 11)
    assert await credit(engine) == 5 * CTK
    await balanced(engine)
    # Deeper: block 10's 30 CTK go too. Nothing is left to pay for the started order:
    # flagged unfunded, its 25 back to the books (0 credit: no debt, no double spend).
    await ledger.rewind(Cursor(9, "0x" + f"{9:064x}"))
    (flagged,) = await queries.orders(engine)
    assert flagged.reorged and flagged.order_id == started.order_id
    assert await credit(engine) == 0
    await balanced(engine)
    # A new payment that covers it funds it again, from credit.
    await paid_in_block(engine, 3, ALICE, 40, 10)
    (funded,) = await queries.orders(engine)
    assert (funded.reorged, funded.block_number) == (False, 10)
    assert await credit(engine) == 15 * CTK
    await balanced(engine)


async def test_a_reorg_that_leaves_the_credit_keeps_a_credit_order(engine: AsyncEngine) -> None:
    """The reviewer's case: paid at block 10, bought from credit with the cursor at 20, a
    reorg down to 15 takes no payment: the order stays funded, no credit comes back."""
    await paid_in_block(engine, 1, ALICE, 25, 10)
    await paid_in_block(engine, 2, BOB, 1, 20)  # the cursor moves to 20
    offer = await draft(engine, periods=1)
    ledger = Ledger(engine, 1337, CATALOG, vending=False)
    bought = await ledger.spend_credit(ALICE, offer.reference, NOW)
    await ledger.rewind(Cursor(15, "0x" + f"{15:064x}"))
    (order,) = await queries.orders(engine)
    assert (order.order_id, order.reorged, order.block_number) == (bought.order_id, False, 15)
    assert await credit(engine) == 0
    await balanced(engine)


async def test_a_short_payment_mined_again_after_its_credit_was_spent_is_no_debt(
    engine: AsyncEngine,
) -> None:
    """The reviewer's second case: 30 paid on a 50 quote with 20 of credit; the order
    starts; a reorg gives the 20 back, which is spent; the payment mined again cannot pay
    for the order alone: it stays flagged, the 30 are credit, nothing goes negative."""
    await paid_in_block(engine, 1, ALICE, 20, 9)
    offer = await draft(engine)  # 50
    await record(engine, [payment(2, ALICE, 30)], {0: offer.reference}, NOW)
    (order,) = await queries.orders(engine)
    worker = JobQueue(engine, "w1", 60)
    assert (await worker.claim()) is not None and await worker.mark_launching(order.order_id)
    ledger = Ledger(engine, 1337, CATALOG, vending=False)
    await ledger.rewind(Cursor(9, "0x" + f"{9:064x}"))
    assert await credit(engine) == 20 * CTK
    terms = draft_terms(CATALOG, "small", 2, KEY, None)  # 2 x 10 CTK
    small = await Drafts(engine, 1337).create(ALICE, terms, quote(terms, NOW), NOW)
    await ledger.spend_credit(ALICE, small.reference, NOW)  # the 20 are spent
    assert await credit(engine) == 0
    await record(engine, [payment(2, ALICE, 30, block=11)], {0: offer.reference}, NOW)
    orders = {o.order_id: o for o in await queries.orders(engine)}
    assert orders[order.order_id].reorged  # still unfunded: 30 do not pay for 50
    assert await credit(engine) == 30 * CTK
    await balanced(engine)


async def test_a_short_checkout_payment_places_the_order_when_credit_covers_the_rest(
    engine: AsyncEngine,
) -> None:
    await paid_in_block(engine, 1, ALICE, 20, 9)
    offer = await draft(engine)  # 50 CTK; the checkout asks for 50 - 20 = 30
    await record(engine, [payment(2, ALICE, 30)], {0: offer.reference}, NOW)
    (order,) = await queries.orders(engine)
    assert (order.amount, order.reference, order.tx_hash) == (
        50 * CTK,
        offer.reference,
        "0x" + f"{2:064x}",
    )
    assert await credit(engine) == 0
    await balanced(engine)
    # The payment undone by a reorg: the order goes, the credit it used comes back.
    await Ledger(engine, 1337, CATALOG).rewind(Cursor(9, "0x" + f"{9:064x}"))
    assert await queries.orders(engine) == []
    assert await credit(engine) == 20 * CTK
    await balanced(engine)


async def test_a_short_payment_credit_does_not_cover_is_credit_and_says_so(
    engine: AsyncEngine,
) -> None:
    await paid_in_block(engine, 1, ALICE, 10, 9)
    offer = await draft(engine)
    await record(engine, [payment(2, ALICE, 30)], {0: offer.reference}, NOW)
    assert await queries.orders(engine) == []
    assert await credit(engine) == 40 * CTK
    still = await Drafts(engine, 1337).get(offer.reference)
    assert still is not None and still.state == "open"
    assert "30 CTK and 10 CTK of credit is short of the quoted 50 CTK" in (still.note or "")
    await balanced(engine)


async def test_audit_knows_orders_bought_from_credit_are_not_on_chain(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A replay of the chain (into a copy of the drafts) keeps the price of an order bought
    from credit as credit; the comparison takes it off and finds nothing wrong."""
    await paid_in_block(engine, 1, ALICE, 60, 10)
    offer = await draft(engine)
    await Ledger(engine, 1337, CATALOG, vending=False).spend_credit(ALICE, offer.reference, NOW)
    # A later payment naming the bought draft went to credit ("already paid"); a replay
    # must find the draft placed too, not place it with that payment.
    await record(engine, [payment(2, ALICE, 50, block=11)], {0: offer.reference}, NOW)
    scratch = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}")
    await migrations.upgrade(scratch)
    try:
        assert await copy_unplaced(engine, scratch, 1337) == 1
        replayed_ledger = Ledger(scratch, 1337, CATALOG, vending=False)
        await replayed_ledger.record([payment(1, ALICE, 60, block=10)])
        await record(scratch, [payment(2, ALICE, 50, block=11)], {0: offer.reference}, NOW)
        replayed = order_facts(await queries.orders(scratch))
        replayed_credit = {c.payer: c.balance for c in await queries.credits(scratch)}
    finally:
        await scratch.dispose()
    assert replayed == []
    live = order_facts(await queries.orders(engine))
    live_credit = {c.payer: c.balance for c in await queries.credits(engine)}
    assert live_credit == {ALICE: 60 * CTK} and replayed_credit == {ALICE: 110 * CTK}
    found, notes = compare_orders(live, replayed, live_credit, replayed_credit)
    assert (found, notes) == ([], [])
    # A credit the replay cannot explain is a difference (without vending, a credit
    # purchase moves nothing else); with vending, the replay's orders differ: a note.
    off: list[OrderFacts] = live
    found, notes = compare_orders(off, replayed, {ALICE: 61 * CTK}, replayed_credit)
    assert [d.kind.value for d in found] == ["credit_differs"] and notes == []
    found, notes = compare_orders(off, replayed, {ALICE: 61 * CTK}, replayed_credit, True)
    assert found == [] and "credit purchases" in notes[0]


def test_audit_takes_a_lease_changed_amount_for_what_it_is() -> None:
    """An extended lease holds more than the price a replay charges, and moved credit: a
    note, not a difference (the per-payer money check still holds for it)."""
    from watcher.domain.order import OrderState

    live = [
        OrderFacts("o1", ALICE, 30 * CTK, "p", None, OrderState.RUNNING, "i-1", False,
                   lease_state="active"),
    ]  # fmt: skip
    replayed = [OrderFacts("o1", ALICE, 10 * CTK, "p", None, OrderState.QUEUED, None, False)]
    found, notes = compare_orders(live, replayed, {ALICE: 0}, {ALICE: 20 * CTK})
    assert found == [] and notes and "credit of" in notes[0]
    # Without a lease the same amount is a difference.
    plain = [OrderFacts("o1", ALICE, 30 * CTK, "p", None, OrderState.RUNNING, "i-1", False)]
    found, _ = compare_orders(plain, replayed, {ALICE: 0}, {ALICE: 0})
    assert [d.kind.value for d in found] == ["order_differs"]
