"""Serving Prometheus metrics from `watcher run`, and the gauges read from the ledger."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher import __version__
from watcher.adapters.ledger import accounts, queries
from watcher.adapters.ledger.errors import DatabaseRetry
from watcher.adapters.ledger.schema import OrderRecord
from watcher.domain.errors import ConfigError
from watcher.domain.leases import LeaseState
from watcher.domain.order import OrderState
from watcher.services.notify import outbox_backlog
from watcher.shared import metrics
from watcher.shared.logs import fields
from watcher.shared.net import bind_problem
from watcher.shared.waiting import pause

log = logging.getLogger("watcher.services.monitoring")
LEDGER_GAUGE_INTERVAL = 5.0


async def _metrics(_: web.Request) -> web.Response:
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


@asynccontextmanager
async def serve_metrics(host: str, port: int) -> AsyncIterator[None]:
    """`GET /metrics` on host:port until the block ends."""
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        # Worded like the web API's: what is wrong, and the settings that change it.
        problem = bind_problem(port, host) or f"cannot listen on {host}:{port}: {exc.strerror}"
        raise ConfigError(
            f"cannot serve metrics: {problem} (set WATCHER_METRICS_HOST and "
            "WATCHER_METRICS_PORT, or WATCHER_METRICS_PORT=0 to turn it off)"
        ) from None
    try:
        yield
    finally:
        await runner.cleanup()


async def refresh_ledger_gauges(engine: AsyncEngine, events: bool = False) -> None:
    """Orders by state, pending jobs and the oldest one's age, and with `events` (MQTT on)
    the outbox backlog: read from the ledger, so every process sharing a database reports
    the same figures, and the backlog keeps counting while the broker is away (the
    publisher only looks at it while connected)."""
    now = datetime.now(UTC)
    async with queries.read_only(engine).connect() as conn:
        counts = dict(
            (
                await conn.execute(
                    select(OrderRecord.state, func.count()).group_by(OrderRecord.state)
                )
            ).all()
        )
        unfunded = (
            await conn.execute(
                select(func.count()).where(
                    OrderRecord.reorged.is_(True),
                    OrderRecord.state != OrderState.FAILED.value,
                )
            )
        ).scalar_one()
    for state in OrderState:
        metrics.ORDERS.labels(state=state.value).set(counts.get(state.value, 0))
    metrics.ORDERS_UNFUNDED.set(unfunded)
    # One named query for the queue's figures (the API's health uses it too). The oldest
    # job's age leaves out orders held for a reorg: they wait for their payment on purpose.
    jobs = await queries.job_health(engine)
    metrics.JOBS_PENDING.set(jobs.pending)
    oldest = jobs.oldest_created_at
    metrics.OLDEST_JOB_AGE.set((now - oldest).total_seconds() if oldest is not None else 0)
    metrics.JOBS_RETRYING.set(jobs.retrying)
    metrics.JOBS_FAILING.set(jobs.failing)
    metrics.JOBS_OVERDUE.set(jobs.overdue)
    leases = await queries.lease_health(engine)
    for lease_state in LeaseState:
        count = leases.by_state.get(lease_state.value, 0)
        metrics.LEASES.labels(state=lease_state.value).set(count)
    metrics.LEASES_ENDING_SOON.set(leases.ending_soon)
    metrics.LEASE_JOBS_OVERDUE.set(leases.overdue_jobs)
    if events:
        metrics.MQTT_BACKLOG.set(await outbox_backlog(engine))


# The money check reads every payment, credit and order: once a minute, not every 5 s.
MONEY_CHECK_EVERY = 12


async def check_money(engine: AsyncEngine) -> dict[int, int]:
    """Set watcher_money_imbalance per chain; log critical when it is not 0. A database
    error here is not a finding: the gauges keep their last values."""
    try:
        async with queries.read_only(engine).connect() as conn:
            found = await accounts.imbalances(conn)
    except Exception as exc:
        log.warning(fields("money_check_failed", error=str(exc)[:200]))
        return {}
    for chain_id, off in found.items():
        metrics.MONEY_IMBALANCE.labels(chain_id=str(chain_id)).set(off)
        if off:
            log.critical(fields("money_unbalanced", chain_id=chain_id, off_by=off))
    return found


async def keep_ledger_gauges(
    engine: AsyncEngine, stop: asyncio.Event, events: bool = False
) -> None:
    metrics.BUILD.info({"version": __version__})
    retry = DatabaseRetry("ledger-gauges")
    rounds = 0
    while not stop.is_set():
        try:
            await refresh_ledger_gauges(engine, events)
        except Exception as exc:
            await retry.wait(exc, stop)
            continue
        retry.succeeded()
        rounds += 1
        if rounds % MONEY_CHECK_EVERY == 1:
            await check_money(engine)
        await pause(stop, LEDGER_GAUGE_INTERVAL)
