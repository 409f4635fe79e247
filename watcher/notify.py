"""MQTT order events: the outbox published at QoS 1, retained, in order.

Each order state change goes to `ctk/<chain id>/orders/<payer>/<order id>` as the order's
JSON (plus `event_id`), retained, so a wallet that subscribes to its own address sees the
current state of each of its orders at once. The broker being down never blocks the
ledger: events wait in the outbox and go out, in order, when it is back. One publisher at a
time per database (a PostgreSQL advisory lock; SQLite's single writer), so the order holds
across processes; delivery is at least once (a crash between PUBACK and the bookkeeping
sends an event again, with the same `event_id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher import metrics
from watcher.core.backoff import Backoff
from watcher.ledger import queries
from watcher.ledger.events import REMOVED
from watcher.ledger.schema import OrderEventRecord
from watcher.logs import fields

log = logging.getLogger("watcher.notify")
_PUBLISHER_LOCK = 0x4D515454  # "MQTT"


def order_topic(chain_id: int, payer: str, order_id: str) -> str:
    return f"ctk/{chain_id}/orders/{payer}/{order_id}"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool


def parse_mqtt_url(url: str) -> BrokerAddress:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{url!r} is not an mqtt:// or mqtts:// URL")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=parts.scheme == "mqtts",
    )


@dataclass
class OrderEventPublisher:
    engine: AsyncEngine
    broker: BrokerAddress
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    batch: int = 100
    idle_poll: float = 0.2

    async def run(self) -> None:
        import aiomqtt

        backoff = Backoff(base=0.5, cap=30.0)
        identifier = f"watcher-{socket.gethostname()}-{os.getpid()}"
        while not self.stop.is_set():
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    username=self.broker.username,
                    password=self.broker.password,
                    identifier=identifier,
                    timeout=10,
                    tls_params=aiomqtt.TLSParameters() if self.broker.tls else None,
                ) as client:
                    log.info(fields("mqtt_connected", host=self.broker.host, port=self.broker.port))
                    backoff.reset()
                    while not self.stop.is_set():
                        if await self.publish_pending(client) == 0:
                            await self._wait(self.idle_poll)
            except aiomqtt.MqttError as exc:
                metrics.MQTT_RECONNECTS.inc()
                delay = backoff.next_delay()
                log.warning(
                    fields(
                        "mqtt_unavailable",
                        host=self.broker.host,
                        error=str(exc)[:200],
                        retry_in=f"{delay:.1f}s",
                    )
                )
                await self._wait(delay)

    async def publish_pending(self, client: object) -> int:
        """Publish up to `batch` unpublished events, oldest first; return how many went out."""
        waiting = await self.backlog()
        metrics.MQTT_BACKLOG.set(waiting)
        if waiting == 0:
            return 0
        sent: list[int] = []
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                lock = await conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _PUBLISHER_LOCK}
                )
                if not lock.scalar_one():
                    return 0  # another process publishes
            rows = (
                await conn.execute(
                    select(OrderEventRecord)
                    .where(OrderEventRecord.published_at.is_(None))
                    .order_by(OrderEventRecord.id)
                    .limit(self.batch)
                )
            ).all()
            try:
                for row in rows:
                    if row.state == REMOVED:
                        payload = b""  # clears the retained state of an order a reorg undid
                    else:
                        payload = json.dumps(
                            {**json.loads(row.payload), "event_id": row.id}
                        ).encode()
                    topic = order_topic(row.chain_id, row.payer, row.order_id)
                    await client.publish(topic, payload, qos=1, retain=True)  # type: ignore[attr-defined]
                    sent.append(row.id)
            finally:
                if sent:
                    await conn.execute(
                        update(OrderEventRecord)
                        .where(OrderEventRecord.id.in_(sent))
                        .values(published_at=datetime.now(UTC))
                    )
        metrics.MQTT_PUBLISHED.inc(len(sent))
        return len(sent)

    async def backlog(self) -> int:
        """Events in the outbox not published yet."""
        async with queries.read_only(self.engine).connect() as conn:
            count = await conn.execute(
                select(func.count()).where(OrderEventRecord.published_at.is_(None))
            )
            return int(count.scalar_one())

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop.wait()
