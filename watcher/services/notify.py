"""MQTT order events: the outbox published at QoS 1, retained, in order.

Each order state change goes to `ctk/<chain id>/orders/<payer>/<order id>` as the order's
JSON (plus `event_id`), retained, so a wallet that subscribes to its own address sees the
current state of each of its orders at once. The broker being down never blocks the
ledger: events wait in the outbox and go out, in order, when it is back, and no database
transaction is open while the broker is awaited. One publisher at a time per database (see
PublisherLock: a PostgreSQL session advisory lock, a file lock beside a SQLite ledger), so
the order holds across processes; delivery is at least once (a crash between PUBACK and
the bookkeeping sends an event again, with the same `event_id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watcher.adapters.ledger import queries
from watcher.adapters.ledger.errors import DatabaseRetry
from watcher.adapters.ledger.events import REMOVED
from watcher.adapters.ledger.schema import OrderEventRecord
from watcher.domain.backoff import Backoff
from watcher.shared import metrics
from watcher.shared.logs import fields
from watcher.shared.waiting import pause

log = logging.getLogger("watcher.services.notify")
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


async def outbox_backlog(engine: AsyncEngine) -> int:
    """Events in the outbox not published yet (the one query for the gauge, the publisher
    and the shutdown flush)."""
    async with queries.read_only(engine).connect() as conn:
        count = await conn.execute(
            select(func.count()).where(OrderEventRecord.published_at.is_(None))
        )
        return int(count.scalar_one())


class PublisherLock(Protocol):
    """Who may publish: one process per database, so events leave in id order even when
    several `watcher run` share a ledger. Held while connected to the broker, never
    inside a database transaction: a QoS 1 PUBACK may take seconds, and on SQLite a write
    transaction is the single writer lock that the follower and provisioners need."""

    async def acquire(self) -> bool:
        """True when this publisher holds the lock (already, or just took it)."""
        ...

    async def release(self) -> None: ...


class AdvisoryLock:
    """PostgreSQL: a session-level advisory lock on a connection of its own (autocommit,
    so it never sits idle in a transaction). We chose it over a lease row because it needs
    no schema change and the server drops it the moment the session ends (a crashed or cut
    off publisher frees it at once, with no lease to expire). Its known weaknesses are
    those Chainlink met: it does not survive a transaction-pooling pgbouncer (point
    WATCHER_DATABASE_URL at PostgreSQL or a session pooler), and a half-open TCP
    connection keeps it until the server notices. Before each batch the connection is
    checked: a lost connection means a lost lock, and publishing stops until it is taken
    again. The remaining window (the connection dies during one batch and another process
    takes over) can only re-send or interleave that one batch: delivery stays at least
    once, and each event carries its id."""

    def __init__(self, engine: AsyncEngine, key: int = _PUBLISHER_LOCK) -> None:
        self.engine = engine
        self.key = key
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> bool:
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                await self.release()
                raise
        conn = await self.engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            taken = await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
            if not taken.scalar_one():
                await conn.close()
                return False  # another process publishes
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.invalidate()
                await conn.close()
            raise
        self._conn = conn
        return True

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except Exception:
            # Unlock failed: end the session instead, which frees the lock too, rather than
            # give the pool a connection that still holds it.
            with contextlib.suppress(Exception):
                await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()


class FileLock:
    """SQLite: an exclusive flock() on a file beside the ledger. A SQLite ledger is a local
    file, so every process sharing it shares this machine and its kernel, which drops the
    lock when the holder exits, however it exits."""

    def __init__(self, ledger_path: str, name: str = "mqtt") -> None:
        self.path = f"{ledger_path}-{name}.lock"
        self._fd: int | None = None

    async def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False  # another process publishes
        self._fd = fd
        return True

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file releases the lock


def publisher_lock(engine: AsyncEngine, name: str = "mqtt") -> PublisherLock:
    """The lock of one publisher per database: MQTT's, or a webhook endpoint's (`name`)."""
    if engine.dialect.name == "postgresql":
        key = _PUBLISHER_LOCK if name == "mqtt" else zlib.crc32(name.encode()) & 0x7FFFFFFF
        return AdvisoryLock(engine, key)
    return FileLock(str(engine.url.database), name)


@dataclass
class OrderEventPublisher:
    engine: AsyncEngine
    broker: BrokerAddress
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    batch: int = 100
    idle_poll: float = 0.2

    def __post_init__(self) -> None:
        self.lock = publisher_lock(self.engine)

    async def run(self) -> None:
        import aiomqtt

        backoff = Backoff(base=0.5, cap=30.0)
        retry = DatabaseRetry("mqtt-publisher")
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
                    try:
                        while not self.stop.is_set():
                            try:
                                published = await self.publish_pending(client)
                            except aiomqtt.MqttError:
                                raise
                            except Exception as exc:
                                # The lock's connection may have gone with the database.
                                await self.lock.release()
                                await retry.wait(exc, self.stop)
                                continue
                            retry.succeeded()
                            if published == 0:
                                await self._wait(self.idle_poll)
                    finally:
                        # Not connected, not publishing: let a process that is take over.
                        await self.lock.release()
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
        """Publish up to `batch` unpublished events, oldest first; return how many went out.
        The batch is read, published and then marked in a short transaction of its own: no
        write transaction is open while a PUBACK is awaited. A crash before the marking
        sends the batch again (at least once, same event ids); `stop` ends a batch early,
        keeping what went out."""
        waiting = await self.backlog()
        metrics.MQTT_BACKLOG.set(waiting)
        if waiting == 0 or not await self.lock.acquire():
            return 0
        async with queries.read_only(self.engine).connect() as conn:
            rows = (
                await conn.execute(
                    select(OrderEventRecord)
                    .where(OrderEventRecord.published_at.is_(None))
                    .order_by(OrderEventRecord.id)
                    .limit(self.batch)
                )
            ).all()
        sent: list[int] = []
        try:
            for row in rows:
                if self.stop.is_set():
                    break
                if row.state == REMOVED:
                    payload = b""  # clears the retained state of an order a reorg undid
                else:
                    payload = json.dumps({**json.loads(row.payload), "event_id": row.id}).encode()
                topic = order_topic(row.chain_id, row.payer, row.order_id)
                await client.publish(topic, payload, qos=1, retain=True)  # type: ignore[attr-defined]
                sent.append(row.id)
        finally:
            if sent:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        update(OrderEventRecord)
                        .where(OrderEventRecord.id.in_(sent))
                        .values(published_at=datetime.now(UTC))
                    )
                metrics.MQTT_PUBLISHED.inc(len(sent))
                metrics.MQTT_BACKLOG.set(max(waiting - len(sent), 0))
        return len(sent)

    async def backlog(self) -> int:
        """Events in the outbox not published yet."""
        return await outbox_backlog(self.engine)

    async def _wait(self, seconds: float) -> None:
        await pause(self.stop, seconds)
