"""Drafting orders over the API, on both databases (issue 10): a signed-in wallet drafts
a non-default plan for 2 periods with its SSH key and gets a reference and a quote; other
wallets get 403, nobody signed in gets 401, bad fields get 400 with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.keyhelpers import new_ssh_key
from tests.signinhelpers import sign_in
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.ledger import migrations
from watcher.adapters.ledger.database import create_engine
from watcher.domain.catalog import Catalog
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.interfaces.web.api import create_api

CTK = 10**18
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHECKOUT = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
ALICE, MALLORY = dev_account(1), dev_account(2)
CATALOG = Catalog(
    {
        "small": ec2_plan("small", 10 * CTK, "t3.micro", "ami-0123456789abcdef0"),
        "large": ec2_plan("large", 25 * CTK + CTK // 2, "t3.large", "ami-0123456789abcdef0"),
    },
    "small",
)
KEY = new_ssh_key("alice@laptop")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine: AsyncEngine = create_engine(database_url)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def app(engine: AsyncEngine) -> object:
    return create_api(
        engine, 1337, TOKEN, CATALOG, public_url="http://watcher.test", checkout_address=CHECKOUT
    )


def client_of(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://watcher.test",
    )


async def test_a_signed_in_wallet_drafts_an_order_and_only_it_reads_it_back(app: object) -> None:
    async with client_of(app) as alice, client_of(app) as mallory, client_of(app) as anyone:
        await sign_in(alice, ALICE)
        await sign_in(mallory, MALLORY)
        answer = await alice.post(
            "/api/drafts",
            json={"plan": "large", "periods": "2", "ssh_key": KEY, "name": "build box"},
        )
        assert answer.status_code == 201, answer.text
        draft = answer.json()
        assert (draft["plan"], draft["summary"], draft["periods"], draft["state"]) == (
            "large",
            "t3.large",
            2,
            "open",
        )
        assert (draft["unit_price"], draft["price"], draft["price_ctk"]) == (
            str(25 * CTK + CTK // 2),
            str(51 * CTK),
            "51",
        )
        assert draft["ssh_fingerprint"].startswith("SHA256:") and draft["name"] == "build box"
        reference = draft["reference"]
        assert (await alice.get(f"/api/drafts/{reference}")).json() == draft
        assert [d["reference"] for d in (await alice.get("/api/drafts")).json()] == [reference]
        # Another wallet, signed in: refused; its own list is empty.
        refused = await mallory.get(f"/api/drafts/{reference}")
        assert refused.status_code == 403 and "another wallet" in refused.json()["detail"]
        assert (await mallory.get("/api/drafts")).json() == []
        # Nobody signed in.
        assert (await anyone.get(f"/api/drafts/{reference}")).status_code == 401
        body = {"plan": "small", "periods": 1, "ssh_key": KEY}
        assert (await anyone.post("/api/drafts", json=body)).status_code == 401
        unknown = "0x" + "00" * 32
        assert (await alice.get(f"/api/drafts/{unknown}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"plan": "small", "periods": "150", "ssh_key": KEY}, "from 1 to 100, got 150"),
        ({"plan": "small", "periods": "2.5", "ssh_key": KEY}, "whole number"),
        ({"plan": "huge", "periods": 1, "ssh_key": KEY}, "no plan 'huge' here"),
        ({"plan": "small", "periods": 1, "ssh_key": "ssh-dss AAAA"}, "not accepted"),
        ({"plan": "small", "periods": 1, "ssh_key": KEY, "name": "a\tb"}, "printable"),
    ],
)
async def test_a_bad_field_gets_its_reason_and_drafts_nothing(
    app: object, body: dict[str, object], reason: str
) -> None:
    async with client_of(app) as alice:
        await sign_in(alice, ALICE)
        answer = await alice.post("/api/drafts", json=body)
        assert answer.status_code == 400 and reason in answer.json()["detail"], answer.text
        assert (await alice.get("/api/drafts")).json() == []


async def test_without_the_checkout_followed_nothing_is_drafted(engine: AsyncEngine) -> None:
    """A payment could not name its order: it would buy the plan on offer instead."""
    app = create_api(engine, 1337, TOKEN, CATALOG, public_url="http://watcher.test")
    async with client_of(app) as alice:
        await sign_in(alice, ALICE)
        body = {"plan": "large", "periods": 2, "ssh_key": KEY}
        answer = await alice.post("/api/drafts", json=body)
        assert answer.status_code == 503 and "WATCHER_CHECKOUT_ADDRESS" in answer.json()["detail"]
        assert (await alice.get("/api/drafts")).json() == []


async def test_a_wallet_cannot_pile_up_unpaid_drafts(app: object) -> None:
    from watcher.interfaces.web.drafts import MAX_OPEN_DRAFTS

    async with client_of(app) as alice:
        await sign_in(alice, ALICE)
        body = {"plan": "small", "periods": 1, "ssh_key": KEY}
        for _ in range(MAX_OPEN_DRAFTS):
            assert (await alice.post("/api/drafts", json=body)).status_code == 201
        refused = await alice.post("/api/drafts", json=body)
        assert refused.status_code == 429 and "waiting for payment" in refused.json()["detail"]
        assert len((await alice.get("/api/drafts")).json()) == MAX_OPEN_DRAFTS


async def test_credit_buys_a_draft_with_one_request_and_shows_first_on_the_quote(
    app: object, engine: AsyncEngine
) -> None:
    """Credit applied first: the quote says what credit covers and what is left to pay;
    a draft credit covers is bought with one signed-in request, once."""
    from datetime import UTC, datetime

    from watcher.adapters.ledger.ledger import Ledger
    from watcher.domain.blocks import BlockRef
    from watcher.domain.payment import Payment

    ledger = Ledger(engine, 1337, CATALOG, vending=False)
    paid = Payment(1337, "0x" + "ab" * 32, 0, 7, "0x" + "07" * 32, ALICE.address, 60 * CTK)  # type: ignore[arg-type]
    await ledger.record(
        [paid],
        advance_to=BlockRef(7, "0x" + "07" * 32, "0x" + "06" * 32),
        block_times={7: datetime.now(UTC)},
    )
    async with client_of(app) as alice, client_of(app) as mallory, client_of(app) as anyone:
        await sign_in(alice, ALICE)
        await sign_in(mallory, MALLORY)
        one = (
            await alice.post("/api/drafts", json={"plan": "large", "periods": 1, "ssh_key": KEY})
        ).json()
        two = (
            await alice.post("/api/drafts", json={"plan": "large", "periods": 2, "ssh_key": KEY})
        ).json()
        # 60 CTK of credit: it covers one period (25.5) and part of two (51).
        assert (one["credit_applied"], one["due"]) == (str(25 * CTK + CTK // 2), "0")
        assert (two["credit_applied"], two["due"]) == (str(51 * CTK), "0")
        path = f"/api/drafts/{one['reference']}/buy-from-credit"
        assert (await anyone.post(path)).status_code == 401
        assert (await mallory.post(path)).status_code == 403  # another wallet's, as GET says
        bought = await alice.post(path)
        assert bought.status_code == 201, bought.text
        assert (bought.json()["price_ctk"], bought.json()["credit_left_ctk"]) == ("25.5", "34.5")
        again = await alice.post(path)
        assert again.status_code == 409 and "already paid" in again.json()["detail"]
        placed = (await alice.get(f"/api/drafts/{one['reference']}")).json()
        assert (placed["state"], placed["order_id"], placed["due"]) == (
            "placed",
            bought.json()["order_id"],
            "0",
        )
        # What is left covers part of the second: the checkout asks for the rest only.
        rest = (await alice.get(f"/api/drafts/{two['reference']}")).json()
        assert (rest["credit_applied"], rest["due"]) == (
            str(34 * CTK + CTK // 2),
            str(16 * CTK + CTK // 2),
        )
        short = await alice.post(f"/api/drafts/{two['reference']}/buy-from-credit")
        assert short.status_code == 402
        assert short.json()["detail"] == (
            "your credit is 34.5 CTK and the order costs 51 CTK: pay the difference through "
            "the Checkout (credit is applied first)"
        )
        # Beside a Checkout (no vending) credit buys no plan by itself: `plan` is null.
        assert (await anyone.get(f"/api/credit/{ALICE.address}")).json()["plan"] is None
        orders = (await anyone.get(f"/api/orders?payer={ALICE.address}")).json()
        assert [(o["order_id"], o["tx_hash"], o["state"]) for o in orders] == [
            (bought.json()["order_id"], None, "queued")
        ]
