"""Webhooks for integrators: every order and lease state change in the outbox, POSTed to
each configured endpoint, signed per the Standard Webhooks specification (the
`standardwebhooks` package: `webhook-id`, `webhook-timestamp`, `webhook-signature`
headers, HMAC-SHA256 over id, timestamp and body).

Each endpoint gets the events in id order, each with a stable id (`msg_<event id>`): a
receiver that was down gets everything after it is back, and dedupes by that id (a
delivery whose answer was lost is sent again). An event counts as delivered by its logged
attempt; the endpoint's cursor only moves over events delivered and older than `settle`,
because on PostgreSQL an event with a lower id can commit after a higher one (ids are
taken when written, not when committed): such a late event is still found and sent. One
process delivers to an endpoint at a time (a lock per endpoint, as MQTT's publisher has).
A failed attempt is retried with exponential backoff; every attempt goes into the
delivery log (`watcher webhooks log`), and `watcher webhooks redeliver` sends one again.
Delivery reads the outbox after the ledger wrote it, so a slow or dead endpoint never
holds up the ledger.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from standardwebhooks.webhooks import Webhook

from watcher.adapters.ledger.webhooks import Attempt, OutboxEvent, WebhookLog
from watcher.services.notify import publisher_lock
from watcher.shared.logs import fields
from watcher.shared.waiting import pause

log = logging.getLogger("watcher.services.webhooks")

EVENT_TYPE = "order.updated"


def message_id(event_id: int) -> str:
    return f"msg_{event_id}"


def body_of(event: OutboxEvent) -> str:
    """The JSON body: the event's type, when it happened, and the order as the API shows
    it (public fields only)."""
    return json.dumps(
        {
            "type": EVENT_TYPE,
            "timestamp": event.created_at.isoformat(),
            "data": json.loads(event.payload),
        },
        separators=(",", ":"),
    )


@dataclass
class Endpoint:
    name: str
    url: str
    signer: Webhook


async def send(
    http: aiohttp.ClientSession, endpoint: Endpoint, event: OutboxEvent, timeout: float
) -> tuple[bool, int | None, str | None]:
    """One signed POST: (delivered, HTTP status, error). 2xx is delivered; anything else,
    or no answer, is not (and the attempt says which)."""
    now = datetime.now(UTC)
    body = body_of(event)
    msg = message_id(event.event_id)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": endpoint.signer.sign(msg, now, body),
    }
    try:
        async with http.post(
            endpoint.url,
            data=body.encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as answer:
            ok = 200 <= answer.status < 300
            return ok, answer.status, None if ok else f"HTTP {answer.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:500]


@dataclass
class WebhookDeliverer:
    """Delivers the outbox to one endpoint, in order, for as long as the watcher runs."""

    log_book: WebhookLog
    endpoint: Endpoint
    http: aiohttp.ClientSession | None = None
    poll: float = 1.0
    timeout: float = 10.0
    retry_base: float = 1.0
    retry_cap: float = 600.0
    # Events older than this that are delivered move the cursor (see the module's doc).
    settle: float = 300.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http:
            self.http = http
            await self._run()

    async def _run(self) -> None:
        if await self.log_book.cursor(self.endpoint.name) is None:
            await self.log_book.start_at_newest(self.endpoint.name)
        lock = publisher_lock(self.log_book.engine, f"webhook-{self.endpoint.name}")
        failures = 0
        try:
            while not self.stop.is_set():
                if not await lock.acquire():  # another watcher delivers to this endpoint
                    await pause(self.stop, max(self.poll, 5.0))
                    continue
                failures = await self._step(failures)
        finally:
            await lock.release()

    async def _step(self, failures: int) -> int:
        """One pass over what is pending; the consecutive failures so far."""
        try:
            delivered, failed = await self.deliver_pending()
        except Exception as exc:  # the database: wait, and go on where the cursor is
            log.warning(
                fields("webhook_ledger_error", endpoint=self.endpoint.name, error=str(exc)[:200])
            )
            delivered, failed = 0, True
        if failed:
            failures += 1
            await pause(self.stop, min(self.retry_base * 2 ** (failures - 1), self.retry_cap))
            return failures
        if not delivered:
            await pause(self.stop, self.poll)
        return 0

    async def deliver_pending(self) -> tuple[int, bool]:
        """Send the events after the cursor not yet delivered, in order, until one fails;
        then move the cursor over the settled, delivered prefix. (How many were sent,
        whether one failed.)"""
        name = self.endpoint.name
        cursor = await self.log_book.cursor(name) or 0
        events = await self.log_book.after(cursor, limit=500)
        done = await self.log_book.delivered(name, cursor)
        sent = 0
        failed = False
        for event in events:
            if self.stop.is_set():
                break
            if event.event_id in done:
                continue
            if not await self.attempt(event, redelivery=False):
                failed = True
                break
            done.add(event.event_id)
            sent += 1
        settled = datetime.now(UTC) - timedelta(seconds=self.settle)
        moved = cursor
        for event in events:
            if event.event_id not in done or event.created_at > settled:
                break
            moved = event.event_id
        if moved != cursor:
            await self.log_book.move_cursor(name, moved, datetime.now(UTC))
        return sent, failed

    async def attempt(self, event: OutboxEvent, redelivery: bool) -> bool:
        tries = await self.log_book.tries(self.endpoint.name, event.event_id)
        assert self.http is not None
        ok, status, error = await send(self.http, self.endpoint, event, self.timeout)
        await self.log_book.record(
            Attempt(
                endpoint=self.endpoint.name,
                event_id=event.event_id,
                attempt=tries + 1,
                ok=ok,
                status_code=status,
                error=error,
                redelivery=redelivery,
                at=datetime.now(UTC),
            )
        )
        if not ok:
            log.warning(
                fields(
                    "webhook_failed",
                    endpoint=self.endpoint.name,
                    event_id=event.event_id,
                    status=status,
                    error=error,
                )
            )
        return ok
