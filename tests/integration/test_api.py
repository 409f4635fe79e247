"""The JSON API over a real ledger (SQLite and PostgreSQL), through HTTP semantics (httpx)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger import events, migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.ledger import Ledger
from watcher.adapters.ledger.schema import JobRecord, OrderEventRecord, OrderRecord
from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.catalog import Catalog
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.payment import Payment
from watcher.interfaces.web.api import create_api
from watcher.services.monitoring import refresh_ledger_gauges
from watcher.services.provisioner import UNFUNDED
from watcher.shared import metrics

CTK = 10**18
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CATALOG = Catalog(
    {
        "t3.micro": ec2_plan("t3.micro", 10 * CTK, "t3.micro", "ami-0123456789abcdef0"),
        "big": ec2_plan("big", 25 * CTK + CTK // 2, "t3.large", "ami-0123456789abcdef0"),
    },
    "t3.micro",
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A ledger where ALICE paid 25 CTK: two queued orders, 5 CTK of credit."""
    engine: AsyncEngine = create_engine(database_url)
    await migrations.upgrade(engine)
    await Ledger(engine, 1337, CATALOG).record(
        [Payment(1337, "0x" + "ab" * 32, 0, 7, "0x" + "cd" * 32, ALICE, 25 * CTK)]
    )  # type: ignore[arg-type]
    yield engine
    await engine.dispose()


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(engine, 1337, TOKEN, CATALOG)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://watcher"
    ) as http:
        yield http


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
    assert (info["checkout_address"], info["explorer_url"], info["period"]) == (None, None, "hour")
    big = next(p for p in plans if p["name"] == "big")
    assert (big["unit"], big["vcpus"], big["memory_gib"]) == ("hour", 2, 8)  # t3.large
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


async def test_mqtt_events_carry_the_orders_as_the_api_shows_them(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    """Both derive from queries.OrderView: the same fields, the same public values (an
    event is written without the order's job, so the job's fields keep their defaults)."""
    shown = {
        o["order_id"]: o for o in (await client.get("/api/orders", params={"payer": ALICE})).json()
    }
    async with engine.begin() as conn:
        await events.append_current(conn, list(shown), datetime.now(UTC))
        payloads = (await conn.execute(select(OrderEventRecord.payload))).scalars().all()
    assert len(payloads) == len(shown) == 2
    for event in map(json.loads, payloads):
        order = shown[event["order_id"]]
        assert set(event) == set(order)
        row_fields = queries.ORDER_ROW_FIELDS
        assert {k: event[k] for k in row_fields} == {k: order[k] for k in row_fields}


UNREACHABLE = (
    "no answer: EndpointConnectionError: Could not connect to the endpoint URL: "
    '"http://127.0.0.1:9/"'
)


async def fail_attempts(
    engine: AsyncEngine,
    times: int,
    delay: float = 0,
    order_id: str | None = None,
    error: str = UNREACHABLE,
) -> str:
    """Claim a job and give it back with `error` (AWS's "unreachable" unless told), `times`
    times, through the provisioners' own queue; the order's id (the same order each time)."""
    queue = JobQueue(engine, "test-worker", claim_seconds=30)
    target, failed = order_id, 0
    while failed < times:
        job = await queue.claim()
        assert job is not None
        if target is not None and job.order_id != target:
            await queue.release(job.order_id, 0, None)  # another order: untouched
            continue
        target, failed = job.order_id, failed + 1
        await queue.release(job.order_id, delay, error)
    assert target is not None
    return target


async def test_orders_show_the_last_error_attempts_and_next_try(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    before = datetime.now(UTC)
    retrying = await fail_attempts(engine, 1, delay=120)
    orders = {
        o["order_id"]: o for o in (await client.get("/api/orders", params={"payer": ALICE})).json()
    }
    order = orders.pop(retrying)
    assert (order["state"], order["attempts"], order["last_error"], order["overdue"]) == (
        "queued",
        1,
        "the cloud did not answer",  # the endpoint's URL stays with the operator
        False,
    )
    next_try = datetime.fromisoformat(order["next_attempt_at"])
    assert before + timedelta(seconds=119) < next_try < datetime.now(UTC) + timedelta(seconds=121)
    (waiting,) = orders.values()  # never tried: due at once, nothing failed
    assert (waiting["attempts"], waiting["last_error"], waiting["overdue"]) == (0, None, False)
    spec = (await client.get("/openapi.json")).json()["components"]["schemas"]["OrderOut"]
    assert {"attempts", "last_error", "next_attempt_at", "overdue"} <= set(spec["properties"])


# As AWS words a refused launch: the operator's account, user and an encoded message.
DENIED = (
    "UnauthorizedOperation: You are not authorized to perform this operation. User: "
    "arn:aws:iam::123456789012:user/watcher-prod is not authorized to perform: "
    "ec2:RunInstances on resource: arn:aws:ec2:eu-west-1:123456789012:instance/* "
    "Encoded authorization failure message: 6Ay7B-Q4xQ0KfjPz3TCz9s1vZ"
)
DATABASE_DOWN = (
    'database: connection to server at "ledger-db.internal.example" (10.1.2.3), '
    "port 5432 failed: Connection refused"
)


async def test_orders_tell_anyone_why_in_plain_words_and_keep_the_details_for_the_operator(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    queue = JobQueue(engine, "test-worker", claim_seconds=30)
    failed = await queue.claim()
    assert failed is not None
    assert await queue.fail(failed.order_id, DENIED) == 10 * CTK
    retried = await fail_attempts(engine, 1, error=DATABASE_DOWN)
    orders = {
        o["order_id"]: o for o in (await client.get("/api/orders", params={"payer": ALICE})).json()
    }
    assert (orders[failed.order_id]["state"], orders[failed.order_id]["failure_reason"]) == (
        "failed",
        "UnauthorizedOperation: the operator's cloud account is not allowed to do this",
    )
    assert orders[retried]["last_error"] == "database unavailable"
    resource = {"kind": "ec2_instance", "instance_type": "t3.micro"}
    assert [o["resource"] for o in orders.values()] == [resource, resource]
    text = (await client.get("/api/orders", params={"payer": ALICE})).text
    for secret in ("123456789012", "arn:", "Encoded", "internal.example", "10.1.2.3", "ami-"):
        assert secret not in text
    # The operator's view (`watcher orders`, its --json) keeps every detail.
    kept = {o.order_id: o.as_json() for o in await queries.orders(engine, 1337, ALICE)}
    assert kept[failed.order_id]["failure_reason"] == DENIED
    assert kept[retried]["last_error"] == DATABASE_DOWN
    assert kept[retried]["resource"]["ami"] == "ami-0123456789abcdef0"


async def test_health_degrades_while_orders_keep_failing(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    failing = await fail_attempts(engine, queries.FAILING_AFTER_ATTEMPTS - 1)
    answer = await client.get("/api/health")
    assert answer.status_code == 200  # a retry or two is routine
    assert (answer.json()["status"], answer.json()["retrying_jobs"]) == ("ok", 1)
    await fail_attempts(engine, 1, order_id=failing)
    answer = await client.get("/api/health")
    assert answer.status_code == 503
    health = answer.json()
    assert (health["status"], health["failing_jobs"], health["overdue_jobs"]) == ("degraded", 1, 0)
    assert health["reasons"] == [
        "1 order(s) failed to provision 3 or more times and are being retried "
        "(see `watcher orders` for the errors)"
    ]


async def test_health_degrades_and_orders_say_so_when_paid_orders_wait_too_long(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    # The orders were paid 11 minutes ago (moved back: one's launch job not claimed yet,
    # so the order is its own job; the other's claimed once and given back).
    queue = JobQueue(engine, "test-worker", claim_seconds=30)
    job = await queue.claim()
    assert job is not None
    await queue.release(job.order_id, 0, None)
    long_ago = datetime.now(UTC) - queries.OVERDUE_AFTER - timedelta(minutes=1)
    async with engine.begin() as conn:
        await conn.execute(update(JobRecord).values(created_at=long_ago))
        await conn.execute(update(OrderRecord).values(created_at=long_ago))
    answer = await client.get("/api/health")
    assert answer.status_code == 503
    health = answer.json()
    assert (health["status"], health["overdue_jobs"], health["pending_jobs"]) == (
        "degraded",
        2,
        2,
    )
    assert health["reasons"] == ["2 paid order(s) waited more than 10 minutes for provisioning"]
    orders = (await client.get("/api/orders", params={"payer": ALICE})).json()
    assert [o["overdue"] for o in orders] == [True, True]


async def test_an_order_held_for_a_reorg_does_not_degrade_health(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    # One order is launching when a reorg orphans its payment: the ledger flags it, and the
    # provisioner gives its job back with UNFUNDED every few seconds until the payment is
    # mined again. That is waiting on purpose (with an alert of its own), not trouble.
    queue = JobQueue(engine, "test-worker", claim_seconds=30)
    job = await queue.claim()
    assert job is not None and await queue.mark_launching(job.order_id)
    await queue.release(job.order_id, 0, None)
    rewound = await Ledger(engine, 1337, CATALOG).rewind(None, floor=6)
    assert (rewound.orders_removed, len(rewound.orders_flagged)) == (1, 1)
    await fail_attempts(engine, queries.FAILING_AFTER_ATTEMPTS + 2, error=UNFUNDED)
    long_ago = datetime.now(UTC) - queries.OVERDUE_AFTER - timedelta(minutes=1)
    async with engine.begin() as conn:
        await conn.execute(update(JobRecord).values(created_at=long_ago))
    (order,) = (await client.get("/api/orders", params={"payer": ALICE})).json()
    assert (order["order_id"], order["reorged"], order["state"]) == (
        job.order_id,
        True,
        "launching",
    )
    assert order["attempts"] == queries.FAILING_AFTER_ATTEMPTS + 3 and not order["overdue"]
    answer = await client.get("/api/health")
    assert answer.status_code == 200, answer.json()
    health = answer.json()
    assert (health["status"], health["reasons"], health["pending_jobs"]) == ("ok", [], 1)
    assert (health["overdue_jobs"], health["retrying_jobs"], health["failing_jobs"]) == (0, 0, 0)
    # Nor do the gauges the alert rules read (PaymentsNotFulfilled, ProvisioningFailing).
    await refresh_ledger_gauges(engine)
    assert metrics.JOBS_PENDING._value.get() == 1
    assert metrics.OLDEST_JOB_AGE._value.get() == 0
    assert (metrics.JOBS_OVERDUE._value.get(), metrics.JOBS_FAILING._value.get()) == (0, 0)


async def test_docs_work_offline_from_the_packages_assets(client: httpx.AsyncClient) -> None:
    answer = await client.get("/docs")
    assert answer.status_code == 200
    html = answer.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert len(assets) == 4, html  # the CSS, the favicon, the script, the OpenAPI document
    assert not re.search(r"https?://", html), html  # no CDN
    for asset in assets:
        served = await client.get(asset)
        assert served.status_code == 200 and len(served.content) > 100, asset
    assert (await client.get("/redoc")).status_code == 404  # it would load its logo from a CDN


async def test_the_explorer_and_the_checkout_are_named_and_pages_chosen(
    engine: AsyncEngine,
) -> None:
    checkout = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    app = create_api(
        engine,
        1337,
        TOKEN,
        CATALOG,
        checkout_address=checkout,
        explorer_url="https://etherscan.io/",
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://watcher"
    ) as http:
        info = (await http.get("/api/payment-info")).json()
        assert (info["checkout_address"], info["explorer_url"]) == (
            checkout,
            "https://etherscan.io",
        )
        assert "/static/buy.js" in (await http.get("/")).text
        bad = await http.get("/wallet/0x123")
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/html")
        assert "Not a wallet address" in bad.text and "0x123" in bad.text
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(engine, 1337, TOKEN, CATALOG)),
        base_url="http://watcher",
    ) as plain:
        assert "/static/checkout.js" in (await plain.get("/")).text


async def test_each_plan_says_what_its_period_is(engine: AsyncEngine) -> None:
    from dataclasses import replace
    from datetime import timedelta

    from watcher.domain.leases import LeaseTerms

    quarter = replace(
        ec2_plan("quarter", 2 * CTK, "t3.micro", "ami-0123456789abcdef0"),
        lease=LeaseTerms(period=timedelta(minutes=15)),
    )
    catalog = Catalog({"t3.micro": CATALOG.plans["t3.micro"], "quarter": quarter}, "t3.micro")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_api(engine, 1337, TOKEN, catalog)),
        base_url="http://watcher",
    ) as http:
        plans = {p["name"]: p for p in (await http.get("/api/plans")).json()}
    assert (plans["t3.micro"]["unit"], plans["t3.micro"]["units"]) == ("hour", "hours")
    assert (plans["quarter"]["unit"], plans["quarter"]["units"]) == (
        "15-minute period",
        "15-minute periods",
    )
