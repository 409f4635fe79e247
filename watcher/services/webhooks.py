"""Webhooks for integrators: every order and lease state change in the outbox, POSTed to
each configured endpoint, signed per the Standard Webhooks specification (the
`standardwebhooks` package: `webhook-id`, `webhook-timestamp`, `webhook-signature`
headers, HMAC-SHA256 over id, timestamp and body).

Each endpoint has its own cursor into the outbox and gets the events in order, each with
a stable id (`msg_<event id>`): a receiver that was down gets everything after it is back,
and dedupes by that id (a delivery whose answer was lost is sent again). A failed attempt
is retried with exponential backoff; every attempt goes into the delivery log (`watcher
webhooks log`), and `watcher webhooks redeliver` sends one again. Delivery reads the
outbox after the ledger wrote it, so a slow or dead endpoint never holds up the ledger.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from standardwebhooks.webhooks import Webhook

from watcher.adapters.ledger.webhooks import Attempt, OutboxEvent, WebhookLog
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
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http:
            self.http = http
            await self._run()

    async def _run(self) -> None:
        if await self.log_book.cursor(self.endpoint.name) is None:
            await self.log_book.start_at_newest(self.endpoint.name)
        failures = 0
        while not self.stop.is_set():
            try:
                delivered, failed = await self.deliver_pending()
            except Exception as exc:  # the database: wait, and go on where the cursor is
                log.warning(
                    fields(
                        "webhook_ledger_error", endpoint=self.endpoint.name, error=str(exc)[:200]
                    )
                )
                delivered, failed = 0, True
            if failed:
                failures += 1
                await pause(self.stop, min(self.retry_base * 2 ** (failures - 1), self.retry_cap))
            else:
                failures = 0
                if not delivered:
                    await pause(self.stop, self.poll)

    async def deliver_pending(self) -> tuple[int, bool]:
        """Send the events after the cursor, in order, until one fails; (how many were
        delivered, whether one failed)."""
        cursor = await self.log_book.cursor(self.endpoint.name) or 0
        delivered = 0
        for event in await self.log_book.after(cursor):
            if self.stop.is_set():
                break
            ok = await self.attempt(event, redelivery=False)
            if not ok:
                return delivered, True
            delivered += 1
        return delivered, False

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
            ),
            advance=ok and not redelivery,
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
