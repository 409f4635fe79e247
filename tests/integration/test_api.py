"""The JSON API over a real ledger (SQLite and PostgreSQL), through HTTP semantics (httpx)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.addresses import BURN_ADDRESS
from watcher.catalog import Catalog
from watcher.core.payment import Payment
from watcher.core.pricing import Plan
from watcher.ledger import migrations
from watcher.ledger.database import create_engine
from watcher.ledger.ledger import Ledger
from watcher.web.api import create_api

CTK = 10**18
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CATALOG = Catalog(
    {
        "t3.micro": Plan("t3.micro", 10 * CTK, "t3.micro", "ami-0123456789abcdef0"),
        "big": Plan("big", 25 * CTK + CTK // 2, "t3.large", "ami-0123456789abcdef0"),
    },
    "t3.micro",
)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    engine: AsyncEngine = create_engine(database_url)
    await migrations.upgrade(engine)
    await Ledger(engine, 1337, CATALOG).record(
        [Payment(1337, "0x" + "ab" * 32, 0, 7, "0x" + "cd" * 32, ALICE, 25 * CTK)]
    )  # type: ignore[arg-type]
    app = create_api(engine, 1337, TOKEN, CATALOG)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://watcher"
    ) as http:
        yield http
    await engine.dispose()


async def test_orders_and_credit_of_a_payer(client: httpx.AsyncClient) -> None:
    orders = (await client.get("/api/orders", params={"payer": ALICE.lower()})).json()
    assert [o["state"] for o in orders] == ["queued", "queued"]
    assert {o["amount"] for o in orders} == {str(10 * CTK)} and orders[0]["payer"] == ALICE
    credit = (await client.get(f"/api/credit/{ALICE}")).json()
    assert credit == {
        "chain_id": 1337,
        "payer": ALICE,
        "balance": str(5 * CTK),
        "balance_ctk": "5",
        "plan": "t3.micro",
    }
    nobody = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    assert (await client.get("/api/orders", params={"payer": nobody})).json() == []
    assert (await client.get(f"/api/credit/{nobody}")).json()["balance"] == "0"


async def test_plans_payment_info_and_health(client: httpx.AsyncClient) -> None:
    plans = (await client.get("/api/plans")).json()
    assert {(p["name"], p["price_ctk"], p["default"]) for p in plans} == {
        ("t3.micro", "10", True),
        ("big", "25.5", False),
    }
    info = (await client.get("/api/payment-info")).json()
    assert (
        info["burn_address"],
        info["token_address"],
        info["token_decimals"],
        info["chain_id"],
    ) == (BURN_ADDRESS, TOKEN, 18, 1337)
    health = (await client.get("/api/health")).json()
    assert (health["status"], health["pending_jobs"]) == ("ok", 2)


async def test_bad_addresses_are_clear_400s(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/orders", params={"payer": "0x123"})
    assert answer.status_code == 400
    assert answer.json()["detail"] == "payer must be 0x followed by 40 hex digits, got '0x123'"
    assert (await client.get("/api/credit/bob")).status_code == 400
    assert (await client.get("/api/orders")).status_code == 422  # payer is required


async def test_the_api_is_documented_with_openapi(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {
        "/api/orders",
        "/api/credit/{payer}",
        "/api/plans",
        "/api/health",
        "/api/payment-info",
    } <= set(spec["paths"])
    order = spec["components"]["schemas"]["OrderOut"]["properties"]
    assert "base units" in order["amount"]["description"]
