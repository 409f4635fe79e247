"""A lean JSON-RPC client for the follower's hot path.

web3.py's HTTP provider opens a new TCP connection per request (`force_close`) and
formats every result into AttributeDicts; following a chain makes thousands of calls and
decodes tens of thousands of logs, so the follower speaks JSON-RPC itself over one
keep-alive aiohttp session (or web3's WebSocket provider for ws:// URLs) and decodes
only what it uses. Errors are sorted into what the follower does about them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from typing import Any, Protocol

import aiohttp

from watcher.shared.redact import mask_url, redact


class RpcError(Exception):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message


class RpcUnavailable(Exception):
    """No usable answer: refused connection, timeout, HTTP 429 or 5xx. Retried with backoff.
    `kind` labels it for logs and metrics."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class RpcTransport(Protocol):
    url: str
    # The URL as logs and messages may show it: a provider's API key is often in the URL.
    shown_url: str

    async def call(self, method: str, params: list[Any]) -> Any: ...

    async def close(self) -> None: ...


_RATE_WORDS = (
    "rate limit",
    "rate-limit",
    "too many requests",
    "request count",
    "capacity",
    "throttl",
)


def is_rate_limit(error: RpcError) -> bool:
    """Some providers report throttling as a JSON-RPC error (Infura: -32005) rather than 429."""
    text = error.message.lower()
    return any(word in text for word in _RATE_WORDS) or error.code == 429


class HttpTransport:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.shown_url = mask_url(url)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def call(self, method: str, params: list[Any]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            async with self._session.post(self.url, json=payload) as response:
                if response.status == 429:
                    raise RpcUnavailable("rate_limited", f"{self.shown_url} answered HTTP 429")
                if response.status >= 500:
                    raise RpcUnavailable(
                        "http_5xx", f"{self.shown_url} answered HTTP {response.status}"
                    )
                raw = await response.read()
        except TimeoutError:
            raise RpcUnavailable(
                "timeout", f"{self.shown_url} did not answer {method} in time"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            kind = "unknown_host" if isinstance(exc.os_error, socket.gaierror) else "connection"
            raise RpcUnavailable(
                kind, f"cannot connect to {self.shown_url}: {redact(str(exc.os_error), self.url)}"
            ) from None
        except aiohttp.ClientError as exc:
            # aiohttp's messages quote the request URL, credentials and all.
            raise RpcUnavailable(
                "connection", f"{self.shown_url}: {redact(str(exc), self.url)}"
            ) from None
        return _result(raw, response.status, method)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class WebSocketTransport:
    """JSON-RPC over web3.py's WebSocketProvider, for a ws:// or wss:// RPC URL."""

    def __init__(self, url: str, timeout: float) -> None:
        from web3 import WebSocketProvider

        self.url = url
        self.shown_url = mask_url(url)
        self._timeout = timeout
        self._provider = WebSocketProvider(url, request_timeout=timeout, max_connection_retries=1)
        self._connected = False

    async def call(self, method: str, params: list[Any]) -> Any:
        from web3.exceptions import ProviderConnectionError, TimeExhausted

        try:
            if not self._connected:
                await asyncio.wait_for(self._provider.connect(), self._timeout)
                self._connected = True
            response: Any = await self._provider.make_request(method, params)  # type: ignore[arg-type]
        except (TimeoutError, TimeExhausted):
            raise RpcUnavailable(
                "timeout", f"{self.shown_url} did not answer {method} in time"
            ) from None
        except (ProviderConnectionError, OSError, ConnectionError) as exc:
            await self.close()
            # web3's connection errors quote the URL it was given.
            raise RpcUnavailable(
                "connection", f"cannot connect to {self.shown_url}: {redact(str(exc), self.url)}"
            ) from None
        return _unwrap(response, method)

    async def close(self) -> None:
        if self._connected:
            self._connected = False
            await self._provider.disconnect()


def open_transport(url: str, timeout: float) -> RpcTransport:
    if url.startswith(("ws://", "wss://")):
        return WebSocketTransport(url, timeout)
    return HttpTransport(url, timeout)


def _result(raw: bytes, status: int, method: str) -> Any:
    try:
        body = json.loads(raw)
    except ValueError:
        raise RpcUnavailable(
            "bad_response", f"HTTP {status} answer to {method} is not JSON"
        ) from None
    return _unwrap(body, method)


def _unwrap(body: Any, method: str) -> Any:
    if not isinstance(body, dict):
        raise RpcUnavailable("bad_response", f"answer to {method} is not a JSON-RPC object")
    error = body.get("error")
    if error is not None:
        if isinstance(error, dict):
            code = error.get("code")
            raise RpcError(
                code if isinstance(code, int) else None, str(error.get("message", error))
            )
        raise RpcError(None, str(error))
    if "result" not in body:
        raise RpcUnavailable("bad_response", f"answer to {method} has neither result nor error")
    return body["result"]
