"""New heads over a WebSocket (`eth_subscribe("newHeads")`): the chain layer's push
signal, next to the JSON-RPC source. The follower only learns "a new block is there" from
it (it reads everything else through the source), and reconnects when it fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

# A subscription: entered, it yields an iterator with one item per new head; any failure of
# the socket raises out of it.
HeadSubscription = Callable[[str], AbstractAsyncContextManager[AsyncIterator[None]]]


@asynccontextmanager
async def new_heads(url: str) -> AsyncIterator[AsyncIterator[None]]:
    # web3's WebSocket provider: one connection, no retries of its own (the follower's
    # reconnect loop backs off and backfills from its cursor).
    from web3 import AsyncWeb3, WebSocketProvider

    async with AsyncWeb3(WebSocketProvider(url, max_connection_retries=1)) as w3:
        await w3.eth.subscribe("newHeads")

        async def ticks() -> AsyncIterator[None]:
            async for _ in w3.socket.process_subscriptions():
                yield None

        yield ticks()
