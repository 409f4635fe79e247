"""Webhooks (issue 11), on both databases, to a real HTTP receiver on 127.0.0.1 that
verifies every signature with the Standard Webhooks reference package: the receiver is
down for a while (connection refused, then 503s), and once it is back it gets every event
exactly once by id, in order; the delivery log shows the failed attempts; a redelivery
sends the same id again."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from watcher.adapters.ledger import migrations
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.ledger import Ledger
from watcher.adapters.ledger.webhooks import WebhookLog
from watcher.domain.catalog import Catalog
from watcher.domain.payment import Payment
from watcher.services.webhooks import Endpoint, WebhookDeliverer
from watcher.shared.net import free_port

CTK = 10**18
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine: AsyncEngine = create_engine(database_url)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


class Receiver:
    """An integrator's endpoint: verifies each delivery, refuses while `down` says so."""

    def __init__(self) -> None:
        self.port = free_port()
        self.verifier = Webhook(SECRET)
        self.accepted: list[str] = []
        self.refusals = 0
        self.bad_signatures = 0
        self.unavailable = 0  # answer 503 this many more times
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = self.verifier.verify(body, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return web.Response(status=400)
        if self.unavailable:
            self.unavailable -= 1
            self.refusals += 1
            return web.Response(status=503)
        assert payload["type"] == "order.updated" and payload["data"]["order_id"]
        self.accepted.append(request.headers["webhook-id"])
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_a_receiver_that_was_down_gets_every_event_once_after_it_is_back(
    engine: AsyncEngine,
) -> None:
    receiver = Receiver()
    endpoint = Endpoint("crm", f"http://127.0.0.1:{receiver.port}/hooks", Webhook(SECRET))
    book = WebhookLog(engine)
    deliverer = WebhookDeliverer(
        book, endpoint, poll=0.05, retry_base=0.05, retry_cap=0.2, settle=0
    )
    running = asyncio.create_task(deliverer.run())
    try:
        for _ in range(100):  # it starts at the newest event: wait until it has a cursor
            if await book.cursor("crm") is not None:
                break
            await asyncio.sleep(0.02)
        # Three payments: three orders queued, an event each (written with the ledger's
        # own transaction).
        ledger = Ledger(engine, 1337, Catalog(), events=True)
        await ledger.record(
            [
                Payment(1337, "0x" + f"{n:064x}", 0, 5, "0x" + "cd" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
                for n in range(1, 4)
            ]
        )
        await asyncio.sleep(0.5)  # refused: nothing listens yet
        receiver.unavailable = 2  # then up, but answering 503 twice
        await receiver.start()
        for _ in range(200):
            if len(receiver.accepted) >= 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # nothing more comes
    finally:
        deliverer.stop.set()
        await asyncio.wait_for(running, 10)
        await receiver.stop()
    assert receiver.bad_signatures == 0 and receiver.refusals == 2
    events = await book.after(0)
    ids = [f"msg_{e.event_id}" for e in events]
    assert len(ids) == 3 and receiver.accepted == ids  # each once, in order
    log = await book.attempts("crm", limit=100)
    failed = [a for a in log if not a.ok]
    assert failed and any(a.status_code is None for a in failed)  # refused connections
    assert sum(1 for a in failed if a.status_code == 503) == 2
    assert {a.event_id for a in log if a.ok} == {e.event_id for e in events}
    assert max(a.attempt for a in log) >= 3  # the first event was tried again and again
    assert await book.cursor("crm") == events[-1].event_id

    # A redelivery on request: the same id again, logged as one, the cursor unmoved.
    await receiver.start()
    try:
        again = WebhookDeliverer(book, endpoint)
        import aiohttp

        async with aiohttp.ClientSession() as http:
            again.http = http
            assert await again.attempt(events[0], redelivery=True)
    finally:
        await receiver.stop()
    assert receiver.accepted[-1] == ids[0]
    newest = (await book.attempts("crm", limit=1))[0]
    assert (newest.redelivery, newest.ok, newest.event_id) == (True, True, events[0].event_id)
    assert await book.cursor("crm") == events[-1].event_id
    body = json.loads(events[0].payload)
    assert body["state"] == "queued"
    if engine.dialect.name == "sqlite":
        # The operator's view of the same log.
        import subprocess
        import sys
        from pathlib import Path

        shown = subprocess.run(
            [str(Path(sys.executable).parent / "watcher"), "webhooks", "log", "--endpoint", "crm"],
            env={"PATH": "/usr/bin:/bin", "WATCHER_DATABASE_URL": str(engine.url)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert "(redelivery): delivered" in lines[0]
        assert sum("failed: HTTP 503" in line for line in lines) == 2
        assert any("failed: ClientConnectorError" in line for line in lines)


async def test_an_event_committed_late_with_a_lower_id_is_still_delivered(
    engine: AsyncEngine,
) -> None:
    """On PostgreSQL an event's id is taken when it is written, so a lower id can become
    visible after higher ones were delivered: the cursor waits for events to settle, and
    the late one is found and sent; nothing is sent twice."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from watcher.adapters.ledger.schema import OrderEventRecord

    def row(event_id: int) -> dict[str, Any]:
        payload = json.dumps({"order_id": f"{event_id:032x}", "state": "queued"})
        return {
            "id": event_id, "chain_id": 1337, "order_id": f"{event_id:032x}", "payer": ALICE,
            "state": "queued", "payload": payload, "created_at": datetime.now(UTC),
        }  # fmt: skip

    receiver = Receiver()
    await receiver.start()
    endpoint = Endpoint("crm", f"http://127.0.0.1:{receiver.port}/hooks", Webhook(SECRET))
    book = WebhookLog(engine)
    await book.start_at_newest("crm")  # nothing yet: from the start
    deliverer = WebhookDeliverer(book, endpoint)  # events settle after 300 s
    import aiohttp

    try:
        async with aiohttp.ClientSession() as http:
            deliverer.http = http
            async with engine.begin() as conn:
                await conn.execute(insert(OrderEventRecord), [row(10), row(11)])
            assert await deliverer.deliver_pending() == (2, False)
            async with engine.begin() as conn:  # id 5 commits only now
                await conn.execute(insert(OrderEventRecord), [row(5)])
            assert await deliverer.deliver_pending() == (1, False)
            assert await deliverer.deliver_pending() == (0, False)
    finally:
        await receiver.stop()
    assert receiver.accepted == ["msg_10", "msg_11", "msg_5"]
    assert await book.cursor("crm") == 0  # not settled yet: the cursor has not moved
