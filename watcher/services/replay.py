"""`watcher replay`: backfill a block range through the same path as live following.

Blocks at or below the ledger's cursor are re-read and only payments the ledger lacks are
recorded; blocks above it are followed exactly as `watcher run` would (and may run beside
it: ledger writes are serialized and the cursor only moves by compare-and-set). Running
the same replay twice changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from watcher.adapters.ledger.ledger import Ledger
from watcher.domain.errors import InvalidInput, UserError
from watcher.services.follower import ChainFollower, SyncProgress


@dataclass(frozen=True)
class ReplayResult:
    first: int
    last: int
    payments: int
    duplicates: int
    orders: int
    seconds: float


async def replay(
    follower: ChainFollower,
    ledger: Ledger,
    first: int,
    last: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Replay [first, last] (last None: up to the safe head). `progress(blocks, payments)`
    is called as ranges complete."""
    safe = await follower.target()
    if last is None:
        last = safe
    elif last > safe:
        raise InvalidInput(
            f"block {last} is not confirmed yet: the safe head is {safe} "
            f"({follower.config.confirmations} confirmations); use --to-block latest"
        )
    if first > last:
        raise InvalidInput(f"--from-block {first} is after --to-block {last}")
    started = time.perf_counter()
    cursor = await ledger.cursor()
    total = SyncProgress()

    def report(base: SyncProgress) -> Callable[[SyncProgress], None]:
        def callback(done: SyncProgress) -> None:
            if progress is not None:
                progress(base.blocks + done.blocks, base.payments + done.payments)

        return callback

    if cursor is None:
        # An empty ledger: following starts at the replay's first block.
        follower.config = replace(follower.config, start_block=first)
    elif first > cursor.number + 1:
        raise UserError(
            f"the ledger has followed up to block {cursor.number}; replaying from {first} would "
            f"leave blocks {cursor.number + 1}-{first - 1} unread: "
            f"start at {cursor.number + 1} or earlier"
        )
    if cursor is not None and first <= cursor.number:
        below = await follower.backfill(first, min(last, cursor.number), report(total))
        _add(total, below)
    if cursor is None or last > cursor.number:
        above = await follower.sync(until=last, progress=report(total))
        _add(total, above)
    return ReplayResult(
        first, last, total.payments, total.duplicates, total.orders, time.perf_counter() - started
    )


def _add(total: SyncProgress, part: SyncProgress) -> None:
    total.blocks += part.blocks
    total.payments += part.payments
    total.duplicates += part.duplicates
    total.orders += part.orders
