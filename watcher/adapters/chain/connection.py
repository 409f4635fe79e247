"""Opening a JSON-RPC connection and turning transport failures into one-line errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3, WebSocketProvider
from web3.exceptions import (
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    Web3RPCError,
)

from watcher.domain.errors import ChainError
from watcher.shared.redact import mask_url, redact


@dataclass(frozen=True)
class Chain:
    """A live connection and the chain id it reported when it was opened."""

    w3: AsyncWeb3[Any]
    chain_id: int
    url: str


@contextmanager
def chain_errors(url: str, action: str = "talk to") -> Iterator[None]:
    """Translate what a dead, slow or unhappy node raises into a ChainError naming the URL,
    its credentials and API key masked (the message reaches terminals and logs)."""
    shown = mask_url(url)
    try:
        yield
    except ChainError:
        raise
    except (TimeoutError, TimeExhausted):
        raise ChainError(f"the RPC node at {shown} did not answer in time") from None
    except aiohttp.ClientConnectorError as exc:
        raise ChainError(
            f"cannot reach the RPC node at {shown}: {_os_reason(exc.os_error)}"
        ) from None
    except aiohttp.ClientResponseError as exc:
        raise ChainError(
            f"the RPC node at {shown} answered HTTP {exc.status} {redact(exc.message, url)}"
        ) from None
    except TooManyRequests:
        raise ChainError(f"the RPC node at {shown} is rate limiting us (HTTP 429)") from None
    except (aiohttp.ClientError, ProviderConnectionError, ConnectionError, OSError) as exc:
        # Library messages quote the URL they were given, credentials and all.
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ChainError(
            f"cannot {action} the RPC node at {shown}: {redact(detail, url)}"
        ) from None
    except Web3RPCError as exc:
        message = exc.rpc_response.get("error", {}).get("message") if exc.rpc_response else None
        raise ChainError(
            f"the RPC node at {shown} refused the request: {redact(str(message or exc), url)}"
        ) from None


def _os_reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the node running?)"
    if isinstance(error, socket.gaierror):
        return "unknown host"
    return (error.strerror or str(error)).lower()


@asynccontextmanager
async def connect(url: str, timeout: float) -> AsyncIterator[Chain]:
    """Open `url` (HTTP or WebSocket), check it answers with a chain id, and close it after."""
    if url.startswith(("ws://", "wss://")):
        provider = WebSocketProvider(url, request_timeout=timeout, max_connection_retries=1)
        ws_w3: AsyncWeb3[Any] = AsyncWeb3(provider)
        with chain_errors(url, "connect to"):
            await asyncio.wait_for(provider.connect(), timeout)
        try:
            yield await _probe(ws_w3, url)
        finally:
            await provider.disconnect()
        return
    # Retries are ours to decide (the CLI fails fast with a clear message; the follower
    # backs off), so web3's own silent retry loop is switched off.
    http = AsyncHTTPProvider(
        url,
        request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
        exception_retry_configuration=None,
    )
    http_w3: AsyncWeb3[Any] = AsyncWeb3(http)
    try:
        yield await _probe(http_w3, url)
    finally:
        await http.disconnect()


async def _probe(w3: AsyncWeb3[Any], url: str) -> Chain:
    with chain_errors(url, "connect to"):
        chain_id = await w3.eth.chain_id
    return Chain(w3=w3, chain_id=chain_id, url=url)


async def require_contract(chain: Chain, address: str, setting: str, deploy: str) -> None:
    """ChainError unless there is code at `address`, naming the setting to check and the
    command that deploys one (a wrong address must fail before any transaction)."""
    with chain_errors(chain.url):
        code = await chain.w3.eth.get_code(address)  # type: ignore[arg-type]
    if not code:
        raise ChainError(
            f"there is no contract at {address} on chain {chain.chain_id}; check "
            f"{setting} (or deploy one with '{deploy}')"
        )
