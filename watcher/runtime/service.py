"""Wiring: from Settings to an open ledger, a chain source and a follower."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from watcher.adapters.chain.rpc import RpcError, RpcUnavailable, open_transport
from watcher.adapters.chain.source import RpcChainSource
from watcher.adapters.cloud.ec2 import open_ec2
from watcher.adapters.cloud.pool import open_pools
from watcher.adapters.cloud.storage import open_storage
from watcher.adapters.ledger import migrations
from watcher.adapters.ledger.database import create_engine, describe, is_sqlite
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.lease_book import LeaseBook
from watcher.adapters.ledger.ledger import Ledger
from watcher.adapters.ledger.webhooks import WebhookLog
from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.errors import ChainError, ConfigError, UserError
from watcher.ports.cloud import Cloud, CloudError
from watcher.runtime.config import Settings
from watcher.services.follower import ChainFollower, FollowerConfig
from watcher.services.leases import LeaseScheduler, LeaseWorker
from watcher.services.provisioner import Provisioner, ProvisionerConfig
from watcher.services.webhooks import Endpoint, WebhookDeliverer
from watcher.shared.logs import fields

log = logging.getLogger("watcher.runtime.service")


class DatabaseError(UserError):
    """The ledger database cannot be opened or is not at the expected schema."""


@asynccontextmanager
async def open_database(settings: Settings, *, migrate: bool) -> AsyncIterator[AsyncEngine]:
    """Open the ledger database. The embedded SQLite ledger is migrated on the spot
    (`migrate`); PostgreSQL must have been upgraded with `watcher db upgrade`."""
    if is_sqlite(settings.database_url):
        path = make_url(settings.database_url).database
        # One stat() before anything else runs: no need to hand it to a thread.
        if not migrate and path is not None and not Path(path).exists():  # noqa: ASYNC240
            raise DatabaseError(
                f"there is no ledger at {path} yet: 'watcher run' or 'watcher replay' creates it"
            )
        if migrate and path is not None:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create the folder of the ledger {path}: {exc.strerror}"
                ) from None
    engine = create_engine(settings.database_url)
    try:
        try:
            if migrate and is_sqlite(settings.database_url):
                await migrations.upgrade(engine)
            current = await migrations.current_revision(engine)
        except (OperationalError, DBAPIError, OSError) as exc:
            detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise DatabaseError(
                f"cannot open the ledger {describe(settings.database_url)}: {detail}"
            ) from None
        head = migrations.head_revision()
        if current != head:
            raise DatabaseError(
                f"the ledger {describe(settings.database_url)} is at schema {current or 'none'}, "
                f"this watcher needs {head}: run 'watcher db upgrade'"
            )
        yield engine
    finally:
        await engine.dispose()


async def upgrade_database(settings: Settings) -> tuple[str | None, str | None]:
    engine = create_engine(settings.database_url)
    try:
        before = await migrations.current_revision(engine)
        await migrations.upgrade(engine)
        return before, await migrations.current_revision(engine)
    except (OperationalError, DBAPIError, OSError) as exc:
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise DatabaseError(
            f"cannot upgrade the ledger {describe(settings.database_url)}: {detail}"
        ) from None
    finally:
        await engine.dispose()


@dataclass
class Watcher:
    source: RpcChainSource
    ledger: Ledger
    follower: ChainFollower
    engine: AsyncEngine


def _ledger_name(url: str) -> str:
    """The ledger as an operator finds it: a SQLite file's path, else the masked URL."""
    if is_sqlite(url):
        path = make_url(url).database
        if path:
            return f"the file {Path(path).resolve()}"
    return describe(url)


async def _block_hash(source: RpcChainSource, number: int) -> str | None:
    block = await source.block(number)
    return block.hash if block is not None else None


@asynccontextmanager
async def open_watcher(settings: Settings, *, max_attempts: int | None) -> AsyncIterator[Watcher]:
    token = settings.require_token_address()
    source = RpcChainSource(open_transport(settings.rpc_url, settings.rpc_timeout))
    try:
        try:
            chain_id = await source.chain_id()
            genesis = await source.block(0)
            token_deployed = await source.has_code(token)
            checkout_pays_with = (
                await source.checkout_token(settings.checkout_address)
                if settings.checkout_address is not None
                else token
            )
        except RpcUnavailable as exc:
            raise ChainError(
                f"cannot reach the RPC node at {source.transport.shown_url}: {exc}"
            ) from None
        except RpcError as exc:
            raise ChainError(
                f"the RPC node at {source.transport.shown_url} refused a request: {exc.message}"
            ) from None
        if genesis is None:
            raise ChainError(f"the RPC node at {source.transport.shown_url} has no block 0")
        if token_deployed and checkout_pays_with != token:
            # Its OrderPaid events would name orders for payments in another token (or
            # none at all): refuse rather than follow them.
            raise ConfigError(
                f"WATCHER_CHECKOUT_ADDRESS {settings.checkout_address} is "
                + (
                    "not a Checkout contract on this chain"
                    if checkout_pays_with is None
                    else f"a Checkout for token {checkout_pays_with}, not {token}"
                )
            )
        if (
            settings.default_plan is not None
            and settings.default_plan not in settings.catalog.plans
        ):
            raise ConfigError(f"default plan {settings.default_plan!r} is not in the catalog")
        async with open_database(settings, migrate=True) as engine:
            ledger = Ledger(
                engine,
                chain_id,
                settings.catalog,
                settings.reorg_history,
                settings.max_orders_per_payment,
                events=settings.events_on,
                vending=settings.vends,
            )
            # The chain is checked before the token: after a dev chain restart the token is
            # missing too, and the restart is the cause to name.
            await ledger.bind_chain(
                genesis.hash,
                token,
                token_deployed=token_deployed,
                block_hash=partial(_block_hash, source),
                name=_ledger_name(settings.database_url),
            )
            follower = ChainFollower(
                source,
                ledger,
                FollowerConfig(
                    token=token,
                    burn=BURN_ADDRESS,
                    checkout=settings.checkout_address,
                    confirmations=settings.confirmations,
                    finality=settings.finality,
                    start_block=settings.start_block,
                    max_block_range=settings.max_block_range,
                    max_attempts=max_attempts,
                ),
            )
            yield Watcher(source, ledger, follower, engine)
    finally:
        await source.close()


AWS_TIMEOUT = 30.0


async def check_catalog(cloud: Cloud, settings: Settings) -> None:
    """Refuse to sell what cannot be launched: every plan's image, security groups, subnet
    and key pair must exist in this account and region. A cloud that does not answer now
    is not a finding: say so and carry on (the workers retry, and orders show why)."""
    refused: list[str] = []
    for plan in settings.catalog.plans.values():
        try:
            problems = await cloud.check_plan(plan)
        except CloudError as exc:
            log.warning(fields("catalog_unchecked", plan=plan.name, error=str(exc)[:200]))
            continue
        if problems:
            refused.append(f"plan {plan.name!r}: " + "; ".join(problems))
    if refused:
        raise ConfigError(
            f"cannot launch in {settings.aws_region}: "
            + " | ".join(refused)
            + " (fix [plans] in watcher.toml)"
        )


@asynccontextmanager
async def open_cloud(settings: Settings) -> AsyncIterator[Cloud]:
    """Every provider the watcher sells from, by the kinds they make (EC2 instances,
    scaling pools, storage buckets): a new resource kind adds its provider here, and
    nothing else in the runtime changes."""
    region, endpoint = settings.aws_region, settings.aws_endpoint_url
    async with (
        open_ec2(region, endpoint, AWS_TIMEOUT) as ec2,
        open_pools(region, endpoint, AWS_TIMEOUT) as pools,
        open_storage(region, endpoint, AWS_TIMEOUT) as storage,
    ):
        yield Cloud(ec2, pools, storage)


@asynccontextmanager
async def open_provisioners(
    settings: Settings, engine: AsyncEngine, count: int
) -> AsyncIterator[list[Provisioner]]:
    """`count` provisioning workers sharing one EC2 client, each with its own lease id
    (none, and no AWS client at all, for a follow-only process)."""
    if count == 0:
        yield []
        return
    async with open_cloud(settings) as cloud:
        await check_catalog(cloud, settings)
        owner = f"{socket.gethostname()}-{os.getpid()}"
        config = ProvisionerConfig(capacity_attempts=settings.capacity_attempts)
        yield [
            Provisioner(
                JobQueue(
                    engine,
                    f"{owner}-{n}",
                    settings.claim_seconds,
                    events=settings.events_on,
                ),
                cloud,
                settings.catalog,
                config,
            )
            for n in range(count)
        ]


def lease_keepers(
    settings: Settings, engine: AsyncEngine, cloud: Cloud
) -> tuple[LeaseScheduler, list[LeaseWorker]]:
    """The lease scheduler, and as many lease workers as provisioning workers (each with a
    claim of its own) to stop, start and terminate resources when leases run out; a tick
    that queued a job wakes them."""
    owner = f"{socket.gethostname()}-{os.getpid()}-leases"
    book = LeaseBook(engine, owner, settings.claim_seconds, events=settings.events_on)
    scheduler = LeaseScheduler(book)
    workers = [
        LeaseWorker(
            LeaseBook(engine, f"{owner}-{n}", settings.claim_seconds, events=settings.events_on),
            cloud,
            wake=scheduler.wake,
        )
        for n in range(max(settings.workers, 1))
    ]
    return scheduler, workers


def webhook_deliverers(settings: Settings, engine: AsyncEngine) -> list[WebhookDeliverer]:
    """One deliverer per configured endpoint, its signing secret read from the
    environment; ConfigError (one line, never the secret) when it is missing or malformed."""
    found = []
    for endpoint in settings.webhooks:
        secret = endpoint.secret()
        try:
            signer = Webhook(secret)
        except Exception:  # the package raises several kinds for a malformed secret
            raise ConfigError(
                f"{endpoint.secret_env} is not a Standard Webhooks secret (whsec_ and base64)"
            ) from None
        found.append(
            WebhookDeliverer(WebhookLog(engine), Endpoint(endpoint.name, endpoint.url, signer))
        )
    return found
