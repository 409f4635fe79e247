"""Waiting for the first of several things, the one way every task of the service does it
(after procrastinate's `utils.wait_any`): the losers are cancelled and gathered, so no
stray task outlives the wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def wait_any(*awaitables: Awaitable[object], timeout: float | None = None) -> None:
    """Return when the first awaitable is done, or after `timeout` seconds."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def pause(stop: asyncio.Event | None, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
    else:
        await wait_any(stop.wait(), timeout=seconds)
