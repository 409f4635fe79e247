"""The web side of `watcher run`: a JSON API (documented with OpenAPI) for wallets and
dashboards. FastAPI was chosen over aiohttp's server for this: the OpenAPI document and
request validation come from the same typed handlers, on the asyncio loop the watcher
already runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.domain.catalog import Catalog

if TYPE_CHECKING:  # FastAPI is imported when the API is served, not before
    from watcher.adapters.ledger.lease_book import LeaseBook
    from watcher.interfaces.web.drafts import BuyFromCredit
    from watcher.services.host_keys import HostKeys

BalanceReader = Callable[[str], Awaitable[int]]


async def serve_api(
    engine: AsyncEngine,
    chain_id: int,
    token_address: str,
    catalog: Catalog,
    host: str,
    port: int,
    stop: asyncio.Event,
    balance_of: BalanceReader | None = None,
    public_url: str | None = None,
    checkout_address: str | None = None,
    buy_from_credit: BuyFromCredit | None = None,
    region: str | None = None,
    explorer_url: str | None = None,
    host_keys: HostKeys | None = None,
    vending: bool | None = None,
    leases: bool = False,
    lease_book: LeaseBook | None = None,
) -> None:
    """Serve the API until `stop` is set (uvicorn, on this event loop)."""
    import uvicorn

    from watcher.interfaces.web.api import create_api

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # `watcher run` owns SIGINT/SIGTERM and stops every task in order; uvicorn's own
            # handlers would replace them and re-raise the signal at exit.
            yield

    app = create_api(
        engine,
        chain_id,
        token_address,
        catalog,
        balance_of,
        public_url,
        checkout_address,
        buy_from_credit,
        region,
        explorer_url,
        host_keys,
        vending,
        leases,
        lease_book,
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = Server(config)
    serving = asyncio.create_task(server.serve(), name="http-api")
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving
