"""Checkout payments followed from a real Hardhat node, on SQLite and PostgreSQL (issue 10):
a payment through the Checkout that names an open draft places it at the quoted price, the
change is credit; a plain transfer is credit (no vending with a Checkout, by default); a
short one becomes credit and the draft says why; replaying the range changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from web3 import Web3

from tests.chainhelpers import CTK, DevChainDriver
from tests.keyhelpers import new_ssh_key
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.ledger import queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.drafts import Draft, Drafts
from watcher.dev.devchain import DevChain
from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.drafts import draft_terms, quote
from watcher.runtime.config import load_settings
from watcher.runtime.service import open_watcher, upgrade_database
from watcher.services.replay import replay

BUYER = dev_account(9)
KEY = new_ssh_key()


@pytest.fixture
async def chain(devchain: DevChain, w3: Web3) -> tuple[DevChainDriver, Any, Any]:
    driver = DevChainDriver(w3)
    token = driver.token()
    checkout = driver.deploy("Checkout", token.address)
    driver.fund(token, BUYER, 1000)
    driver.send(BUYER, token.functions.approve(checkout.address, 1000 * CTK))
    return driver, token, checkout


def settings_for(
    devchain: DevChain, token: Any, checkout: Any, database_url: str, start: int
) -> Any:
    return load_settings(
        {
            "rpc_url": devchain.url,
            "token_address": token.address,
            "checkout_address": checkout.address,
            "database_url": database_url,
            "confirmations": "0",
            "start_block": str(start),
        },
        {},
    )


async def drafted(database_url: str, periods: int) -> Draft:
    engine: AsyncEngine = create_engine(database_url)
    try:
        settings = load_settings({}, {})
        terms = draft_terms(settings.catalog, settings.catalog.default, periods, KEY, "mine")
        now = datetime.now(UTC)
        return await Drafts(engine, 1337).create(BUYER.address, terms, quote(terms, now), now)
    finally:
        await engine.dispose()


async def test_a_checkout_payment_places_its_draft_and_a_replay_changes_nothing(
    devchain: DevChain,
    w3: Web3,
    chain: tuple[DevChainDriver, Any, Any],
    database_url: str,
) -> None:
    driver, token, checkout = chain
    start = driver.head + 1
    settings = settings_for(devchain, token, checkout, database_url, start)
    await upgrade_database(settings)
    offer = await drafted(database_url, periods=3)  # 3 x 10 CTK
    short = await drafted(database_url, periods=2)  # 2 x 10 CTK
    driver.send(BUYER, checkout.functions.pay(bytes.fromhex(offer.reference[2:]), 31 * CTK))
    driver.send(BUYER, checkout.functions.pay(bytes.fromhex(short.reference[2:]), 5 * CTK))
    driver.pay(token, BUYER, 10 * CTK)  # a plain transfer: credit (no vending with a Checkout)
    async with open_watcher(settings, max_attempts=5) as watcher:
        await watcher.follower.sync()
        engine = watcher.engine
        orders = await queries.orders(engine)
        named = [o for o in orders if o.reference is not None]
        assert [(o.reference, o.periods, o.amount) for o in named] == [
            (offer.reference, 3, 30 * CTK)
        ]
        assert len(orders) == 1
        # 1 CTK of change, the 5 CTK short payment and the plain 10 CTK are credit.
        (balance,) = await queries.credits(engine, 1337, BUYER.address)
        assert balance.balance == 16 * CTK
        drafts = Drafts(engine, 1337)
        placed, waiting = await drafts.get(offer.reference), await drafts.get(short.reference)
        assert placed is not None and placed.state == "placed"
        assert waiting is not None and waiting.state == "open"
        # The 1 CTK of change was credit by then: counted first, still short.
        assert "5 CTK and 1 CTK of credit is short of the quoted 20 CTK" in (waiting.note or "")
        totals = await queries.totals(engine, 1337)
        assert totals.paid == totals.credit + totals.spent == 46 * CTK
        # The same chain replayed into the ledger again changes nothing.
        again = await replay(watcher.follower, watcher.ledger, start, None)
        assert again.payments == 0
        assert len(await queries.orders(engine)) == 1
    assert token.functions.balanceOf(BURN_ADDRESS).call() >= 46 * CTK
    # `watcher audit` replays the chain with the drafts as they were before any payment:
    # the placed draft and the credit come out the same (found in review).
    from watcher.runtime.audit import audit

    report = await audit(settings, chain=True, cloud=False)
    assert report.clean, report.differences


async def test_a_reorg_undoes_a_checkout_payment_like_any_other(
    devchain: DevChain,
    w3: Web3,
    chain: tuple[DevChainDriver, Any, Any],
    database_url: str,
) -> None:
    """The payment leaves the ledger with the block that carried it: its order goes, the
    draft is open again; mined again on the new branch, it places the same order again."""
    driver, token, checkout = chain
    start = driver.head + 1
    settings = settings_for(devchain, token, checkout, database_url, start)
    await upgrade_database(settings)
    offer = await drafted(database_url, periods=2)
    snapshot = driver.snapshot()
    raw = driver.signed(BUYER, checkout.functions.pay(bytes.fromhex(offer.reference[2:]), 20 * CTK))
    driver.w3.eth.wait_for_transaction_receipt(driver.w3.eth.send_raw_transaction(raw))
    async with open_watcher(settings, max_attempts=5) as watcher:
        await watcher.follower.sync()
        (before,) = await queries.orders(watcher.engine)
        assert before.reference == offer.reference

        driver.revert(snapshot)  # the payment's block is gone
        driver.mine(3)  # a longer branch without it
        await watcher.follower.sync()
        assert await queries.orders(watcher.engine) == []
        assert await queries.credits(watcher.engine, 1337, BUYER.address) == []
        reopened = await Drafts(watcher.engine, 1337).get(offer.reference)
        assert reopened is not None and reopened.state == "open"
        assert "undone by a reorg" in (reopened.note or "")

        driver.w3.eth.wait_for_transaction_receipt(driver.w3.eth.send_raw_transaction(raw))
        await watcher.follower.sync()
        (after,) = await queries.orders(watcher.engine)
        assert after.order_id == before.order_id and after.block_number != before.block_number
        totals = await queries.totals(watcher.engine, 1337)
        assert totals.paid == totals.spent == 20 * CTK and totals.credit == 0


async def test_a_checkout_of_another_token_or_none_at_all_is_refused_at_start(
    devchain: DevChain, w3: Web3, chain: tuple[DevChainDriver, Any, Any], database_url: str
) -> None:
    from watcher.domain.errors import ConfigError

    driver, token, _ = chain
    other = driver.deploy("Checkout", driver.token().address)
    for address, reason in [
        (other, f"a Checkout for token {other.functions.token().call()}, not {token.address}"),
        (token, "not a Checkout contract on this chain"),
        (type("EOA", (), {"address": BUYER.address})(), "not a Checkout contract"),
    ]:
        settings = settings_for(devchain, token, address, database_url, 0)
        await upgrade_database(settings)
        with pytest.raises(ConfigError, match=reason):
            async with open_watcher(settings, max_attempts=2):
                pass
