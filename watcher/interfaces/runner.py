"""What the long-running and ledger commands do, behind the CLI's argument parsing."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from watcher.adapters.ledger import queries
from watcher.adapters.ledger.errors import classify
from watcher.adapters.ledger.ledger import BoughtFromCredit, Ledger
from watcher.domain.amounts import format_amount
from watcher.domain.errors import ConfigError, InvalidInput, UserError
from watcher.interfaces.web import serve_api
from watcher.runtime.config import Settings
from watcher.runtime.service import (
    lease_keepers,
    open_database,
    open_provisioners,
    open_watcher,
    webhook_deliverers,
)
from watcher.services.host_keys import HostKeys
from watcher.services.monitoring import keep_ledger_gauges, serve_metrics
from watcher.services.notify import OrderEventPublisher, parse_mqtt_url
from watcher.services.provisioner import Provisioner
from watcher.services.replay import replay
from watcher.shared import logs
from watcher.shared.logs import fields
from watcher.shared.net import bind_problem
from watcher.shared.redact import mask_url

log = logging.getLogger("watcher.runtime.service")


SHUTDOWN_GRACE = 20.0


async def run_service(settings: Settings) -> None:
    """The follower and the provisioning workers as named tasks in one TaskGroup. SIGINT or
    SIGTERM stops the follower at once and lets in-flight jobs finish for a grace period;
    a job still running then is released (its recorded phase tells the next worker where
    to go on)."""
    logs.configure()
    problem = bind_problem(settings.http_port, settings.http_host) if settings.http_port else None
    if problem is not None:
        raise ConfigError(
            f"cannot serve the web API: {problem} "
            "(set WATCHER_HTTP_HOST and WATCHER_HTTP_PORT, or WATCHER_HTTP_PORT=0 to turn it off)"
        )
    async with (
        open_watcher(settings, max_attempts=None) as watcher,
        open_provisioners(settings, watcher.engine, settings.workers) as workers,
        _metrics_endpoint(settings),
    ):
        follower = watcher.follower
        follower.order_listeners.extend(worker.wake for worker in workers)
        stopping = asyncio.Event()
        # Leases run out where resources are provisioned: stops, starts, terminations.
        keepers = (
            lease_keepers(settings, watcher.engine, workers[0].cloud)
            if workers and settings.leases
            else None
        )
        deliverers = webhook_deliverers(settings, watcher.engine)

        def stop() -> None:
            stopping.set()
            follower.stop.set()
            for worker in workers:
                worker.stop.set()
            if keepers is not None:
                keepers[0].stop.set()
                for lease_worker in keepers[1]:
                    lease_worker.stop.set()
            for deliverer in deliverers:
                deliverer.stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        cursor = await watcher.ledger.cursor()
        log.info(
            fields(
                "watcher_started",
                chain_id=watcher.ledger.chain_id,
                token=settings.token_address,
                cursor=cursor.number if cursor else None,
                confirmations=settings.confirmations,
                heads="websocket" if settings.ws_url else "polling",
                workers=len(workers),
                aws_region=settings.aws_region,
                # Which ledger: the default moved into the data folder, and a ledger other
                # than the one meant would launch every paid order again.
                ledger=_ledger_shown(settings.database_url),
                rpc=mask_url(settings.rpc_url),
                aws_endpoint=mask_url(settings.aws_endpoint_url)
                if settings.aws_endpoint_url
                else "aws",
            )
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(
                    follower.run(settings.ws_url, settings.poll_interval), name="chain-follower"
                )
                running = [
                    tasks.create_task(worker.run(), name=f"provisioner-{n}")
                    for n, worker in enumerate(workers)
                ]
                for deliverer in deliverers:
                    tasks.create_task(deliverer.run(), name=f"webhook-{deliverer.endpoint.name}")
                if keepers is not None:
                    scheduler, lease_workers = keepers
                    tasks.create_task(scheduler.run(), name="lease-scheduler")
                    running += [
                        tasks.create_task(w.run(), name=f"lease-worker-{n}")
                        for n, w in enumerate(lease_workers)
                    ]
                if workers and settings.reconcile_interval:
                    from watcher.runtime.audit import CloudSweep

                    sweep = CloudSweep(
                        watcher.engine,
                        workers[0].cloud,
                        settings.reconcile_interval,
                        keepers[0].book if keepers is not None else None,
                    )
                    tasks.create_task(sweep.run(follower.stop), name="cloud-sweep")
                tasks.create_task(
                    keep_ledger_gauges(
                        watcher.engine, follower.stop, events=settings.mqtt_url is not None
                    ),
                    name="ledger-gauges",
                )
                if settings.http_port:
                    tasks.create_task(
                        serve_api(
                            watcher.engine,
                            watcher.ledger.chain_id,
                            settings.require_token_address(),
                            settings.catalog,
                            settings.http_host,
                            settings.http_port,
                            follower.stop,
                            partial(watcher.source.token_balance, settings.require_token_address()),
                            settings.public_url,
                            settings.checkout_address,
                            partial(buy_from_credit, watcher.ledger, workers),
                            settings.aws_region,
                            settings.explorer_url,
                            HostKeys(watcher.engine, workers[0].cloud) if workers else None,
                            settings.vends,
                            settings.leases,
                            keepers[0].book if keepers is not None else None,
                        ),
                        name="http-api",
                    )
                    # The port was checked free before start-up: uvicorn binds it next.
                    log.info(
                        fields("api_served", url=_http_url(settings.http_host, settings.http_port))
                    )
                publisher = None
                if settings.mqtt_url is not None:
                    publisher = OrderEventPublisher(
                        watcher.engine, parse_mqtt_url(settings.mqtt_url)
                    )
                    tasks.create_task(publisher.run(), name="mqtt-publisher")
                await stopping.wait()
                if running:
                    _, late = await asyncio.wait(running, timeout=SHUTDOWN_GRACE)
                    for task in late:
                        task.cancel()
                if publisher is not None:
                    # The last state changes go out too, if the broker is there.
                    await _flush(publisher)
                    publisher.stop.set()
        except* UserError as failures:
            stop()
            raise failures.exceptions[0] from None
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        log.info(fields("watcher_stopped"))


async def buy_from_credit(
    ledger: Ledger, workers: Sequence[Provisioner], owner: str, reference: str
) -> BoughtFromCredit:
    """The API's purchase from credit, with the provisioner woken for the new order (as
    the follower wakes it for a paid one) instead of its next poll."""
    bought = await ledger.spend_credit(owner, reference)
    for worker in workers:
        worker.wake.set()
    return bought


def _ledger_shown(database_url: str) -> str:
    """The ledger for the start-up line: a SQLite file's absolute path, or the database's
    URL with its credentials masked."""
    from sqlalchemy.engine import make_url

    from watcher.adapters.ledger.database import describe, is_sqlite

    path = make_url(database_url).database
    if is_sqlite(database_url) and path:
        return str(Path(path).expanduser().absolute())
    return describe(database_url)


def _http_url(host: str, port: int, path: str = "/") -> str:
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address
    return f"http://{shown}:{port}{path}"


async def _flush(publisher: OrderEventPublisher, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    # The backlog lives in the database, not in an Event: poll it.
    try:
        while loop.time() < deadline and await publisher.backlog():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    except Exception as exc:
        if classify(exc) is None:
            raise
        # The ledger is away: what is left goes out on the next start.


@asynccontextmanager
async def _metrics_endpoint(settings: Settings) -> AsyncIterator[None]:
    if settings.metrics_port == 0:
        yield
        return
    async with serve_metrics(settings.metrics_host, settings.metrics_port):
        log.info(
            fields(
                "metrics_served",
                url=_http_url(settings.metrics_host, settings.metrics_port, "/metrics"),
            )
        )
        yield


async def run_drain(settings: Settings, max_wait: float) -> None:
    """Provision every queued job, then exit: for cron and tests."""
    logs.configure()
    async with (
        open_database(settings, migrate=True) as engine,
        open_provisioners(settings, engine, max(settings.workers, 1)) as workers,
    ):
        loop = asyncio.get_running_loop()
        for worker in workers:
            loop.add_signal_handler(signal.SIGINT, worker.stop.set)
        try:
            async with asyncio.TaskGroup() as tasks:
                drains = [
                    tasks.create_task(worker.drain(max_wait), name=f"drain-{n}")
                    for n, worker in enumerate(workers)
                ]
        except* UserError as failures:  # e.g. the ledger unusable: one line, no group
            raise failures.exceptions[0] from None
        pending = max(task.result() for task in drains)
    if pending:
        raise UserError(
            f"{pending} provisioning jobs still pending after {max_wait:.0f} s "
            "(see 'watcher orders')"
        )
    click.echo("drained: no provisioning job left")


async def run_replay(settings: Settings, first: int, last: int | None) -> None:
    logging.getLogger("watcher").setLevel(logging.WARNING)
    async with open_watcher(settings, max_attempts=8) as watcher:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, watcher.follower.stop.set)
        started = time.perf_counter()
        if sys.stderr.isatty():
            end = last if last is not None else await watcher.follower.target()
            with Progress(
                TextColumn("replay"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} blocks"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            ) as bar:
                task = bar.add_task("replay", total=max(end - first + 1, 1), rate="")

                def on_progress(blocks: int, payments: int) -> None:
                    elapsed = max(time.perf_counter() - started, 1e-9)
                    rate = f"{blocks / elapsed:,.0f} blocks/s  {payments / elapsed:,.0f} payments/s"
                    bar.update(task, completed=blocks, rate=rate)

                result = await replay(watcher.follower, watcher.ledger, first, end, on_progress)
        else:
            result = await replay(watcher.follower, watcher.ledger, first, last)
    rate = result.payments / result.seconds if result.seconds > 0 else 0.0
    click.echo(
        f"replayed blocks {result.first}-{result.last}: {result.payments} new payments, "
        f"{result.duplicates} already recorded, {result.orders} orders, "
        f"{result.seconds:.2f} s ({rate:,.0f} payments/s)"
    )


def _provisioning(order: queries.OrderView) -> str:
    """How the order's provisioning goes, in a few words: the error is what an operator
    needs first when orders wait (it used to be only in the job's last_error)."""
    if order.failure_reason is not None:
        return f"failed, price back in credit: {order.failure_reason}"
    parts = []
    if order.last_error is not None:
        parts.append(f"attempt {order.attempts} failed: {order.last_error}")
    if order.next_attempt_at is not None and order.attempts:
        parts.append(f"next try {order.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC")
    if not parts and order.state == "queued":
        parts.append("paid, waiting for a worker")
    return "; ".join(parts) or "-"


async def show_orders(
    settings: Settings,
    payer: str | None,
    chain_id: int | None,
    as_json: bool,
    order_id: str | None = None,
) -> None:
    async with open_database(settings, migrate=False) as engine:
        rows = await queries.orders(engine, chain_id, payer)
    if order_id is not None:
        await _show_order(rows, order_id, as_json)
        return
    if as_json:
        for order in rows:
            click.echo(_json(order.as_json()))
        return
    if not rows:
        click.echo("no orders")
        return
    # Compact, so that it reads at 80 columns: ids and addresses shortened (the order id's
    # first 8 characters find it again: `watcher orders ID`), details in the one-order view.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("order", "payer", "paid", "plan", "state", "resource / why"):
        table.add_column(column, no_wrap=column in {"order", "payer", "paid"})
    for order in rows:
        state = order.state + (" reorged!" if order.reorged else "")
        state += " overdue!" if order.overdue else ""
        why = order.instance_id or _provisioning(order)
        table.add_row(
            order.order_id[:8],
            _short(order.payer),
            f"{format_amount(order.amount)} CTK",
            order.plan,
            state,
            why,
        )
    Console(width=None if sys.stdout.isatty() else 80).print(table)


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


async def _show_order(rows: list[queries.OrderView], prefix: str, as_json: bool) -> None:
    """One order in full, found by its id or the start of it (at least 6 characters)."""
    wanted = prefix.strip().lower()
    if len(wanted) < 6:
        raise InvalidInput(f"give at least 6 characters of the order id, got {prefix!r}")
    found = [o for o in rows if o.order_id.startswith(wanted)]
    if not found:
        raise UserError(f"no order {prefix!r} (see `watcher orders`)")
    if len(found) > 1:
        raise UserError(f"{len(found)} orders start with {prefix!r}: give more of the id")
    (order,) = found
    if as_json:
        click.echo(_json(order.as_json()))
        return
    shown = order.as_json()
    width = max(len(f.name) for f in queries.ORDER_SHAPE)
    for f in queries.ORDER_SHAPE:
        value = shown[f.name]
        if value is None:
            continue
        if f.name == "amount":
            value = f"{format_amount(order.amount)} CTK ({value} base units)"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, sort_keys=True)
        click.echo(f"{f.name:<{width}}  {value}")
    click.echo(f"{'provisioning':<{width}}  {_provisioning(order)}")


async def show_credit(
    settings: Settings, payer: str | None, chain_id: int | None, as_json: bool
) -> None:
    async with open_database(settings, migrate=False) as engine:
        rows = await queries.credits(engine, chain_id, payer)
    if as_json:
        for entry in rows:
            click.echo(_json(entry.as_json()))
        return
    if not rows:
        click.echo(f"no credit for {payer}" if payer else "no credit")
        return
    # What the credit is for depends on vending (off beside a Checkout).
    spent_on = (
        f"the next payment buys plan {settings.catalog.default}"
        if settings.vends
        else "spent on an order its owner drafts: `watcher buy`, or the checkout page"
    )
    for entry in rows:
        click.echo(
            f"{entry.payer}: {format_amount(entry.balance)} CTK credit "
            f"(chain {entry.chain_id}; {spent_on})"
        )


def _json(record: dict[str, object]) -> str:
    import json

    return json.dumps(record, separators=(",", ":"))


async def run_audit(settings: Settings, *, chain: bool, cloud: bool, as_json: bool) -> int:
    """Print one line per difference and a summary (or one JSON object); 0 when clean."""
    from watcher.runtime.audit import audit

    logging.getLogger("watcher").setLevel(logging.WARNING)
    report = await audit(settings, chain=chain, cloud=cloud)
    if as_json:
        click.echo(_json(report.as_json()))
    else:
        for difference in report.differences:
            click.echo(difference.line())
        for note in report.notes:
            click.echo(f"note: {note}")
        click.echo(report.summary())
    return 0 if report.clean else 1


async def show_webhook_log(
    settings: Settings, endpoint: str | None, limit: int, as_json: bool
) -> None:
    from watcher.adapters.ledger.webhooks import WebhookLog

    async with open_database(settings, migrate=False) as engine:
        attempts = await WebhookLog(engine).attempts(endpoint, limit)
    if as_json:
        for a in attempts:
            click.echo(
                _json(
                    {
                        "endpoint": a.endpoint,
                        "event_id": a.event_id,
                        "attempt": a.attempt,
                        "ok": a.ok,
                        "status_code": a.status_code,
                        "error": a.error,
                        "redelivery": a.redelivery,
                        "at": a.at.isoformat(),
                    }
                )
            )
        return
    if not attempts:
        click.echo("no webhook deliveries yet")
        return
    for a in attempts:
        answer = f"HTTP {a.status_code}" if a.status_code is not None else "no answer"
        outcome = "delivered" if a.ok else f"failed: {a.error or answer}"
        again = " (redelivery)" if a.redelivery else ""
        click.echo(
            f"{a.at:%Y-%m-%d %H:%M:%S} {a.endpoint} event {a.event_id} "
            f"attempt {a.attempt}{again}: {outcome}"
        )


async def redeliver_webhook(settings: Settings, name: str, event_id: int) -> None:
    import aiohttp

    from watcher.adapters.ledger.webhooks import WebhookLog
    from watcher.runtime.service import webhook_deliverers

    async with open_database(settings, migrate=False) as engine:
        chosen = [d for d in webhook_deliverers(settings, engine) if d.endpoint.name == name]
        if not chosen:
            known = ", ".join(e.name for e in settings.webhooks) or "none in the settings"
            raise InvalidInput(f"no webhook endpoint {name!r} (endpoints: {known})")
        event = await WebhookLog(engine).event(event_id)
        if event is None:
            raise UserError(f"no event {event_id} in the outbox")
        deliverer = chosen[0]
        async with aiohttp.ClientSession() as http:
            deliverer.http = http
            ok = await deliverer.attempt(event, redelivery=True)
    if not ok:
        raise UserError(
            f"event {event_id} was not delivered to {name}; `watcher webhooks log` says why"
        )
    click.echo(f"event {event_id} delivered to {name} again")
