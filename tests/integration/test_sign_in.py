"""Sign-In with Ethereum over the API, on both databases (issue 10): a wallet signs the
EIP-4361 message with its key and gets a session (cookie for pages, bearer token for the
CLI); a wrong domain, an expired message, a replayed nonce, a tampered message or a wrong
signer is refused and opens nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.signinhelpers import signed_message
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.ledger import migrations
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.schema import SessionRecord
from watcher.domain.catalog import Catalog
from watcher.interfaces.web.api import create_api
from watcher.interfaces.web.signin import COOKIE

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ALICE, MALLORY = dev_account(1), dev_account(2)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine: AsyncEngine = create_engine(database_url)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(engine, 1337, TOKEN, Catalog(), public_url="http://watcher.test:8080")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://watcher.test:8080"
    ) as http:
        yield http


async def test_a_signed_message_opens_a_session_by_cookie_and_by_bearer_token(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    terms = (await client.post("/api/auth/nonce")).json()
    assert (terms["domain"], terms["uri"], terms["chain_id"]) == (
        "watcher.test:8080",
        "http://watcher.test:8080/",
        1337,
    )
    message, signature = await signed_message(client, ALICE)
    answer = await client.post(
        "/api/auth/sign-in", json={"message": message, "signature": signature, "bearer": True}
    )
    assert answer.status_code == 200, answer.text
    session = answer.json()
    assert session["address"] == ALICE.address and session["token"]
    cookie = answer.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    # The cookie (kept by the client) and the bearer token both open the session.
    mine = await client.get("/api/auth/session")
    assert mine.status_code == 200, mine.text
    assert mine.json()["address"] == ALICE.address
    bearer = {"Authorization": f"Bearer {session['token']}"}
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://watcher.test:8080"
    ) as other:
        assert (await other.get("/api/auth/session", headers=bearer)).status_code == 200
        assert (await other.get("/api/auth/session")).status_code == 401
    # Only the token's hash is stored.
    async with engine.connect() as conn:
        stored = (await conn.execute(select(SessionRecord.token_hash))).scalars().all()
    assert len(stored) == 1 and stored[0] != session["token"] and len(stored[0]) == 64
    # Signing out ends it for the cookie and the token alike.
    assert (await client.post("/api/auth/sign-out")).status_code == 204
    assert (await client.get("/api/auth/session", headers=bearer)).status_code == 401


async def test_a_nonce_signs_in_once_even_when_two_requests_race(
    client: httpx.AsyncClient,
) -> None:
    message, signature = await signed_message(client, ALICE)
    body = {"message": message, "signature": signature}
    answers = await asyncio.gather(*(client.post("/api/auth/sign-in", json=body) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 401, 401, 401]
    replay = await client.post("/api/auth/sign-in", json=body)
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"domain": "evil.example"}, "is for 'evil.example', not 'watcher.test:8080'"),
        ({"chain_id": 1}, "is for chain 1"),
        (
            # Times relative to when the test runs (not to when it was collected: a slow
            # suite reaches it minutes later, and the message would be merely "too old").
            {"issued_at": -timedelta(minutes=3), "expiration_time": -timedelta(minutes=1)},
            "has expired",
        ),
        ({"nonce": "notIssuedByUs1"}, "nonce is unknown"),
    ],
)
async def test_a_message_for_another_site_chain_time_or_nonce_opens_nothing(
    client: httpx.AsyncClient, changes: dict[str, object], reason: str
) -> None:
    now = datetime.now(UTC)
    timed = {k: now + v if isinstance(v, timedelta) else v for k, v in changes.items()}
    message, signature = await signed_message(client, ALICE, **timed)
    answer = await client.post(
        "/api/auth/sign-in", json={"message": message, "signature": signature}
    )
    assert answer.status_code == 401 and reason in answer.json()["detail"]
    assert "set-cookie" not in answer.headers
    assert (await client.get("/api/auth/session")).status_code == 401


async def test_a_tampered_message_or_a_wrong_signer_opens_nothing(
    client: httpx.AsyncClient,
) -> None:
    message, signature = await signed_message(client, ALICE)
    tampered = message.replace("Sign in to watcher.", "Sign in to watcher!")
    for text, sig in [
        (tampered, signature),
        # Mallory signs a message naming Alice.
        (message, (await signed_message(client, MALLORY))[1]),
        (message, "0x1234"),
    ]:
        answer = await client.post("/api/auth/sign-in", json={"message": text, "signature": sig})
        assert answer.status_code == 401, answer.text
        assert answer.json()["detail"].startswith("sign-in refused: ")
    # The refusals did not use the nonce up: the right signature still signs in.
    answer = await client.post(
        "/api/auth/sign-in", json={"message": message, "signature": signature}
    )
    assert answer.status_code == 200


async def test_without_a_public_url_only_a_loopback_address_signs_in(engine: AsyncEngine) -> None:
    """A Host header is the client's to choose: without WATCHER_PUBLIC_URL, a message
    signed for a phishing site and posted with that site's Host must not sign in."""
    app = create_api(engine, 1337, TOKEN, Catalog())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://evil.example"
    ) as forged:
        answer = await forged.post("/api/auth/nonce")
        assert answer.status_code == 403 and "WATCHER_PUBLIC_URL" in answer.json()["detail"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080"
    ) as local:
        message, signature = await signed_message(local, ALICE)
        answer = await local.post(
            "/api/auth/sign-in", json={"message": message, "signature": signature}
        )
        assert answer.status_code == 200, answer.text
        assert "secure" not in answer.headers["set-cookie"].lower()


async def test_behind_a_tls_proxy_the_cookie_is_secure(engine: AsyncEngine) -> None:
    app = create_api(engine, 1337, TOKEN, Catalog(), public_url="https://cloud.example.org")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://10.0.0.5:8080"
    ) as proxied:
        terms = (await proxied.post("/api/auth/nonce")).json()
        assert (terms["domain"], terms["uri"]) == (
            "cloud.example.org",
            "https://cloud.example.org/",
        )
        message, signature = await signed_message(proxied, ALICE)
        answer = await proxied.post(
            "/api/auth/sign-in", json={"message": message, "signature": signature}
        )
        assert answer.status_code == 200, answer.text
        assert "secure" in answer.headers["set-cookie"].lower()


async def test_a_client_asking_for_nonces_in_a_loop_is_told_to_wait(
    client: httpx.AsyncClient,
) -> None:
    from watcher.interfaces.web.signin import NONCES_PER_MINUTE

    answers = [
        (await client.post("/api/auth/nonce")).status_code for _ in range(NONCES_PER_MINUTE + 2)
    ]
    assert answers[:NONCES_PER_MINUTE] == [200] * NONCES_PER_MINUTE
    assert answers[NONCES_PER_MINUTE:] == [429, 429]
    refused = await client.post("/api/auth/nonce")
    assert "wait a minute" in refused.json()["detail"] and refused.headers["retry-after"] == "60"
