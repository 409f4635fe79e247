"""ChainFollower: CTK Transfer logs into the burn address -> the ledger, exactly once.

Each step covers a range [cursor+1, end] with end <= the safe head, and commits payments,
credit, orders and the new cursor in one database transaction, so a crash at any moment
leaves the ledger at a range boundary and a restart continues from there. While catching
up, one task reads the next ranges from the node while the ledger writes this one.

Reorgs, after Chainlink's log poller: every step first checks that the cursor block is
still canonical; when it is not, the follower walks back through the block hashes the
ledger remembers to the last common block, undoes everything above it in one transaction
and resumes from there. A step reads the end block's header before and after fetching the
logs and only commits when both agree, so logs and cursor always come from one chain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, TypeVar

from watcher.adapters.chain.heads import HeadSubscription, new_heads
from watcher.adapters.chain.rpc import RpcError, RpcUnavailable, is_rate_limit
from watcher.adapters.chain.source import ChainSource, HeadTag
from watcher.adapters.ledger.errors import DatabaseRetry
from watcher.adapters.ledger.ledger import Cursor, CursorMoved, Ledger
from watcher.domain.backoff import Backoff
from watcher.domain.blocks import BlockRef
from watcher.domain.checkout import ORDER_PAID_TOPIC, decode_order_paid, named_orders
from watcher.domain.errors import ChainError, UserError
from watcher.domain.order import OrderState
from watcher.domain.payment import (
    TRANSFER_TOPIC,
    MalformedChainData,
    Payment,
    decode_payment,
    topic_for_address,
)
from watcher.domain.pricing import NewOrder
from watcher.domain.ranges import RangeSizer, classify_range_error
from watcher.shared import metrics
from watcher.shared.logs import fields
from watcher.shared.redact import mask_url, redact
from watcher.shared.waiting import wait_any

log = logging.getLogger("watcher.services.follower")
T = TypeVar("T")


class FollowerError(ChainError):
    """The follower cannot go on (the node keeps refusing, a block cannot be split...)."""


class Stopped(Exception):
    """The stop event was set while waiting to retry."""


@dataclass(frozen=True)
class FollowerConfig:
    token: str
    burn: str
    confirmations: int = 2
    finality: str = "confirmations"
    start_block: int = 0
    max_block_range: int = 10_000
    initial_block_range: int = 2_000
    # None: retry a failing node for ever (the service); a number: give up (the CLI).
    max_attempts: int | None = None
    # The Checkout contract: its OrderPaid events say which drafted order a payment is for.
    checkout: str | None = None


@dataclass
class SyncProgress:
    blocks: int = 0
    payments: int = 0
    duplicates: int = 0
    orders: int = 0
    reorgs: int = 0
    cursor: int | None = None


@dataclass
class _Step:
    advanced_to: int | None = None
    blocks: int = 0
    payments: int = 0
    duplicates: int = 0
    orders: int = 0
    reorged: bool = False
    # The chain moved under the step, or another writer advanced the cursor: plan again.
    retry: bool = False


ProgressCallback = Callable[[SyncProgress], None]

# While catching up, ranges read ahead of the one being written (bounded: memory). A range
# is at least _MIN_PIECE blocks, so that being a few blocks behind stays one request.
_READ_AHEAD = 3
_MIN_PIECE = 8


@dataclass(frozen=True)
class _Range:
    """One range as the node answered it: the end block (read before the logs, and found
    unchanged after them), the parent of the first block, and the logs."""

    start: int
    end: BlockRef
    parent: BlockRef | None
    logs: list[dict[str, Any]]
    # The Checkout's OrderPaid logs, and the times of the blocks that hold them.
    paid: list[dict[str, Any]] = field(default_factory=list)
    times: dict[int, datetime] = field(default_factory=dict)


class _ChainMoved(Exception):
    """A block read again had changed: the reads ahead are dropped, the step planned again."""


_DONE = None  # the reader has read up to the limit


@dataclass
class ChainFollower:
    source: ChainSource
    ledger: Ledger
    config: FollowerConfig
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # Set whenever new orders are queued: the provisioners wait on these.
    order_listeners: list[asyncio.Event] = field(default_factory=list)
    # Where new heads come from over a WebSocket (the chain layer's subscription).
    heads: HeadSubscription = new_heads

    def __post_init__(self) -> None:
        initial = min(self.config.initial_block_range, self.config.max_block_range)
        self.sizer = RangeSizer(initial=initial, maximum=self.config.max_block_range)
        self._topics: list[str | None] = [TRANSFER_TOPIC, None, topic_for_address(self.config.burn)]

    # --- public ---

    async def target(self) -> int:
        """The newest block the follower may process: the safe head."""
        tag: HeadTag = "latest" if self.config.finality == "confirmations" else self.config.finality  # type: ignore[assignment]
        head = await self._call(self.source.head, tag)
        metrics.CHAIN_HEAD.set(head)
        return head - self.config.confirmations if tag == "latest" else head

    async def sync(
        self, until: int | None = None, progress: ProgressCallback | None = None
    ) -> SyncProgress:
        """Process every block up to the safe head (or `until`, if lower), then return."""
        done = SyncProgress()
        try:
            while not self.stop.is_set():
                limit = await self.target()
                if until is not None:
                    limit = min(limit, until)
                step = await self._catch_up(limit, done, progress)
                if step.reorged:
                    done.reorgs += 1
                    continue
                if step.retry:
                    continue
                if step.advanced_to is None:
                    break
        except Stopped:
            pass
        return done

    def _tally(self, done: SyncProgress, step: _Step, progress: ProgressCallback | None) -> None:
        done.blocks += step.blocks
        done.payments += step.payments
        done.duplicates += step.duplicates
        done.orders += step.orders
        done.cursor = step.advanced_to
        if progress is not None:
            progress(done)

    async def backfill(
        self, first: int, last: int, progress: ProgressCallback | None = None
    ) -> SyncProgress:
        """Record payments in [first, last], at or below the cursor, that the ledger lacks
        (e.g. from before the start block it was first run with). Leaves the cursor alone."""
        done = SyncProgress()
        start = first
        try:
            while start <= last and not self.stop.is_set():
                end = min(last, start + self.sizer.size - 1)
                logs, end = await self._logs(start, end)
                paid, times = await self._named(start, end)
                payments = self._decode(logs, start, end)
                recorded = await self.ledger.record(
                    payments,
                    block_times=times,
                    named=self._named_orders(payments, paid, start, end),
                )
                self._count(recorded.payments, recorded.duplicates, recorded.orders)
                step = _Step(
                    end,
                    end - start + 1,
                    len(recorded.payments),
                    recorded.duplicates,
                    len(recorded.orders),
                )
                self._tally(done, step, progress)
                start = end + 1
        except Stopped:
            pass
        return done

    async def run(self, ws_url: str | None, poll_interval: float) -> None:
        """Follow the chain until `stop` is set: named tasks in one TaskGroup, so a failure
        in one of them is never silent."""
        wake = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._poll(wake, poll_interval), name="head-poller")
                subscription = None
                if ws_url is not None:
                    subscription = tasks.create_task(
                        self._subscribe(wake, ws_url), name="head-subscription"
                    )
                tasks.create_task(self._follow(wake), name="chain-follower")
                await self.stop.wait()
                if subscription is not None:
                    subscription.cancel()  # it only looks at `stop` when a head arrives
        except* UserError as group:  # the node refuses for good, or the ledger is unusable
            raise group.exceptions[0] from None

    # --- one step ---

    async def _catch_up(
        self, limit: int, done: SyncProgress, progress: ProgressCallback | None
    ) -> _Step:
        """Steps from the cursor up to `limit`: a reader task fetches ranges in order, each
        one's reads checked as a step's are, while this one writes them to the ledger."""
        cursor = await self.ledger.cursor()
        start = cursor.number + 1 if cursor is not None else self.config.start_block
        if start > limit:
            if cursor is not None and not await self._canonical(cursor):
                await self._reorg(cursor)
                return _Step(reorged=True)
            return _Step()
        ranges: asyncio.Queue[_Range | Exception | None] = asyncio.Queue(_READ_AHEAD)
        reader = asyncio.create_task(self._read(start, limit, ranges), name="log-reader")
        advanced = _Step()
        try:
            while (item := await ranges.get()) is not _DONE:
                if isinstance(item, _ChainMoved):
                    log.info(fields("chain_moved_during_step", block=str(item)))
                    return _Step(retry=True)
                if isinstance(item, Exception):
                    raise item
                # Every range must continue the cursor as it is now: the first one the
                # ledger's, each next one the range just written. (A range read again
                # after a refusal was read after its own end block, so this is its check.)
                if cursor is not None and (item.parent is None or item.parent.hash != cursor.hash):
                    # Ask again, now, before calling it a reorg.
                    if not await self._canonical(cursor):
                        await self._reorg(cursor)
                        return _Step(reorged=True)
                    return _Step(retry=True)
                step = await self._write(item, cursor)
                if step.retry:
                    return step
                self._tally(done, step, progress)
                advanced = step
                cursor = Cursor(item.end.number, item.end.hash)
                if self.stop.is_set():
                    break  # stop between ranges: what is written is whole
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        return advanced

    async def _read(
        self, start: int, limit: int, ranges: asyncio.Queue[_Range | Exception | None]
    ) -> None:
        """Read [start, limit] range by range into `ranges`, each range's reads in the
        order that makes its logs and its end block one chain: the end block, the parent
        of its first block, the logs, then the end block again. That last read is the
        next range's parent read (the same block), so a range costs three calls."""
        try:
            pending: _Range | None = None
            while start <= limit:
                if self.stop.is_set():
                    await ranges.put(_DONE)  # the writer stops too; `pending` is dropped
                    return
                end = min(limit, start + self._piece(start, limit) - 1)
                while True:
                    before = await self._call(self.source.block, end)
                    if before is None:
                        raise _ChainMoved(end)  # the chain got shorter under us
                    parent = await self._call(self.source.block, start - 1) if start else None
                    if pending is not None:
                        if parent != pending.end:
                            raise _ChainMoved(pending.end.number)
                        await ranges.put(pending)
                        pending = None
                    try:
                        logs = await self._call(
                            self.source.logs,
                            start,
                            end,
                            self.config.token,
                            self._topics,
                            splittable=True,
                        )
                    except RpcError as exc:
                        end = self._split(exc, start, end)
                        continue
                    break
                self.sizer.answered(end - start + 1, len(logs))
                # OrderPaid only matters next to a payment: no Transfers, no second read.
                paid, times = await self._named(start, end) if logs else ([], {})
                pending = _Range(start, before, parent, logs, paid, times)
                start = end + 1
            if pending is not None:
                if await self._call(self.source.block, pending.end.number) != pending.end:
                    raise _ChainMoved(pending.end.number)
                await ranges.put(pending)
            await ranges.put(_DONE)
        except Exception as exc:  # handed to the writer, which raises it in its own task
            await ranges.put(exc)

    async def _named(
        self, start: int, end: int
    ) -> tuple[list[dict[str, Any]], dict[int, datetime]]:
        """The Checkout's OrderPaid logs of [start, end] and the times of their blocks
        (a payment names an order only if mined before its quote's deadline), read
        between the range's two reads of its end block like its Transfers."""
        if self.config.checkout is None:
            return [], {}
        paid = await self._call(
            self.source.logs, start, end, self.config.checkout, [ORDER_PAID_TOPIC]
        )
        times: dict[int, datetime] = {}
        for event in (decode_order_paid(raw, self.config.checkout) for raw in paid):
            if event is None or event.block_number in times:
                continue
            block = await self._call(self.source.block, event.block_number)
            if block is None or block.hash != event.block_hash:
                raise _ChainMoved(event.block_number)
            if not block.timestamp:  # 0: the node gave no time, and a deadline needs one
                raise MalformedChainData(f"block {event.block_number} has no timestamp")
            times[event.block_number] = datetime.fromtimestamp(block.timestamp, UTC)
        return paid, times

    def _piece(self, start: int, limit: int) -> int:
        """How many blocks to ask for from `start`: the sizer's size, or a share of what
        is left when less than that is left for the ranges read ahead."""
        share = max(_MIN_PIECE, -(-(limit - start + 1) // (_READ_AHEAD + 1)))
        return min(self.sizer.size, share)

    async def _write(self, fetched: _Range, cursor: Cursor | None) -> _Step:
        start, after, logs = fetched.start, fetched.end, fetched.logs
        end = after.number
        payments = self._decode(logs, start, end, end_hash=after.hash)
        named = self._named_orders(payments, fetched.paid, start, end)
        try:
            # The end block's time is known from its header: when following live (one block
            # per step) that is every payment's block, for the payment-to-running metric.
            times = {end: datetime.fromtimestamp(after.timestamp, UTC)} if after.timestamp else {}
            recorded = await self.ledger.record(
                payments,
                advance_from=cursor,
                advance_to=after,
                block_times={**fetched.times, **times},
                named=named,
            )
        except CursorMoved:
            return _Step(retry=True)  # `watcher replay` (or another run) got there first
        metrics.CURSOR_BLOCK.set(end)
        metrics.CHAIN_LAG.set(max(metrics.CHAIN_HEAD._value.get() - end, 0))
        self._count(recorded.payments, recorded.duplicates, recorded.orders)
        if recorded.orders:
            for listener in self.order_listeners:
                listener.set()
        if log.isEnabledFor(logging.INFO):
            self._log_recorded(recorded.payments, recorded.orders)
        return _Step(
            end, end - start + 1, len(recorded.payments), recorded.duplicates, len(recorded.orders)
        )

    def _log_recorded(self, payments: list[Payment], orders: list[NewOrder]) -> None:
        for payment in payments:
            log.info(
                fields(
                    "payment_recorded",
                    tx=payment.tx_hash,
                    log_index=payment.log_index,
                    block=payment.block_number,
                    payer=payment.payer,
                    amount=payment.amount,
                )
            )
        for order in orders:
            log.info(
                fields(
                    "order_queued", order_id=order.order_id, payer=order.payer, plan=order.plan.name
                )
            )

    def _named_orders(
        self, payments: list[Payment], paid: list[dict[str, Any]], start: int, end: int
    ) -> dict[tuple[str, int], str]:
        """Which payments name a drafted order (the Checkout's OrderPaid right after them)."""
        if self.config.checkout is None or not paid:
            return {}
        events = []
        for raw in paid:
            event = decode_order_paid(raw, self.config.checkout)
            if event is None:
                continue
            if not start <= event.block_number <= end:
                raise MalformedChainData(
                    f"log of block {event.block_number} outside [{start}, {end}]"
                )
            events.append(event)
        return named_orders(payments, events)

    def _decode(
        self, logs: list[dict[str, Any]], start: int, end: int, end_hash: str | None = None
    ) -> list[Payment]:
        payments: list[Payment] = []
        for raw in logs:
            payment = decode_payment(raw, self.ledger.chain_id, self.config.token, self.config.burn)
            if payment is None:
                continue
            if not start <= payment.block_number <= end:
                raise MalformedChainData(
                    f"log of block {payment.block_number} outside [{start}, {end}]"
                )
            if (
                end_hash is not None
                and payment.block_number == end
                and payment.block_hash != end_hash
            ):
                raise MalformedChainData(f"log of block {end} carries a hash of another chain")
            payments.append(payment)
        # Nodes answer in chain order; sort only an answer that is not (cheaper to check).
        if any(
            (a.block_number, a.log_index) > (b.block_number, b.log_index)
            for a, b in pairwise(payments)
        ):
            payments.sort(key=lambda p: (p.block_number, p.log_index))
        return payments

    async def _logs(self, start: int, end: int) -> tuple[list[dict[str, Any]], int]:
        while True:
            try:
                logs = await self._call(
                    self.source.logs, start, end, self.config.token, self._topics, splittable=True
                )
            except RpcError as exc:
                end = self._split(exc, start, end)
                continue
            self.sizer.answered(end - start + 1, len(logs))
            return logs, end

    def _split(self, exc: RpcError, start: int, end: int) -> int:
        requested = end - start + 1
        refusal = classify_range_error(exc.code, exc.message, requested)
        if refusal is None:
            raise FollowerError(
                f"eth_getLogs for blocks {start}-{end} failed: {exc.message}"
            ) from None
        if not self.sizer.refused(refusal, requested):
            raise FollowerError(
                f"the node refuses eth_getLogs even for the single block {start}: {exc.message}"
            )
        metrics.LOG_RANGE_SPLITS.inc()
        log.info(
            fields("log_range_split", blocks=requested, next=self.sizer.size, reason=exc.message)
        )
        return start + self.sizer.size - 1

    # --- reorgs ---

    async def _canonical(self, cursor: Cursor) -> bool:
        block = await self._call(self.source.block, cursor.number)
        return block is not None and block.hash == cursor.hash

    async def _reorg(self, cursor: Cursor) -> None:
        floor = self.config.start_block - 1
        ancestor: Cursor | None = None
        for candidate in await self.ledger.known_blocks(cursor.number):
            if await self._canonical(candidate):
                ancestor = candidate
                break
        if ancestor is None and cursor.number - floor > self.ledger.reorg_history:
            # No remembered block survived: start over from the first block followed.
            log.critical(
                fields(
                    "reorg_beyond_history",
                    cursor=cursor.number,
                    history=self.ledger.reorg_history,
                    restart_from=floor + 1,
                )
            )
        rewound = await self.ledger.rewind(ancestor, floor=floor)
        undone = cursor.number - (ancestor.number if ancestor is not None else floor)
        # Only blocks buried under the confirmations are ever processed, so anything undone
        # means the chain reorganised at least that much deeper: with confirmations (or a
        # finalized head) promised, that is a breach of the safety margin, not routine.
        by_count = self.config.finality == "confirmations"
        breach = self.config.confirmations > 0 or not by_count
        chain_depth = undone + (self.config.confirmations if by_count else 0)
        metrics.REORGS.inc()
        metrics.REORG_DEPTH.observe(chain_depth)
        if breach:
            metrics.DEEP_REORGS.inc()
        log.log(
            logging.CRITICAL if breach else logging.WARNING,
            fields(
                "reorg",
                undone_blocks=undone,
                chain_depth_at_least=chain_depth,
                confirmations=self.config.confirmations,
                ancestor=ancestor.number if ancestor is not None else floor,
                payments_undone=rewound.payments_removed,
                orders_undone=rewound.orders_removed,
            ),
        )
        if rewound.orders_flagged:
            metrics.ORDERS_FLAGGED.inc(len(rewound.orders_flagged))
            # Say what is known per order: a `launching` order may or may not have an
            # instance (its launch is held until the payment is back); the others do.
            for flagged in rewound.orders_flagged:
                has = (
                    "its instance may exist (launch held until the payment is mined again)"
                    if flagged.state is OrderState.LAUNCHING
                    else "its instance exists"
                )
                log.critical(
                    fields(
                        "reorg_orphaned_provisioned_order",
                        chain_depth_at_least=chain_depth,
                        order_id=flagged.order_id,
                        state=flagged.state.value,
                        action=f"unfunded until its payment is mined again; {has}: "
                        "operator must review",
                    )
                )

    # --- live following ---

    async def _follow(self, wake: asyncio.Event) -> None:
        # A database error mid-step is safe to retry from the top: a step commits its
        # payments and the cursor in one transaction, so the ledger is at a range boundary
        # whether or not the failed commit went through, and the next step starts from
        # whatever cursor is recorded.
        retry = DatabaseRetry("chain-follower")
        while not self.stop.is_set():
            wake.clear()
            try:
                await self.sync()
            except Exception as exc:
                await retry.wait(exc, self.stop)
                continue
            retry.succeeded()
            await self._until(wake, None)

    async def _poll(self, wake: asyncio.Event, interval: float) -> None:
        while not self.stop.is_set():
            await self._until(None, interval)
            wake.set()

    async def _subscribe(self, wake: asyncio.Event, url: str) -> None:
        backoff = Backoff(base=0.5, cap=30.0)
        while not self.stop.is_set():
            try:
                async with self.heads(url) as ticks:
                    log.info(fields("heads_subscribed", url=mask_url(url)))
                    backoff.reset()
                    wake.set()  # backfill from the cursor whatever was missed while down
                    async for _ in ticks:
                        wake.set()
                        if self.stop.is_set():
                            return
            except (
                Exception
            ) as exc:  # any failure of the socket: reconnect, never crash the service
                metrics.WS_RECONNECTS.inc()
                log.warning(
                    fields(
                        "heads_subscription_lost",
                        url=mask_url(url),
                        error=type(exc).__name__,
                        detail=redact(str(exc), url)[:200],
                    )
                )
            wake.set()
            await self._until(None, backoff.next_delay())

    async def _until(self, event: asyncio.Event | None, timeout: float | None) -> None:
        """Wait for `event`, `timeout` or the stop signal, whichever comes first."""
        if event is None:
            await wait_any(self.stop.wait(), timeout=timeout)
        else:
            await wait_any(self.stop.wait(), event.wait(), timeout=timeout)

    # --- calls to the node ---

    async def _call(
        self, method: Callable[..., Awaitable[T]], *args: Any, splittable: bool = False
    ) -> T:
        """Retry what a node does when it is down, slow or throttling, with capped
        exponential backoff and jitter. With `splittable`, a refused log range goes back to
        the caller to split instead."""
        backoff = Backoff(base=0.25, cap=15.0)
        while True:
            try:
                return await method(*args)
            except RpcError as exc:
                if not is_rate_limit(exc):
                    if splittable and classify_range_error(exc.code, exc.message, 2) is not None:
                        raise
                    kind = "rpc_error"
                else:
                    kind = "rate_limited"
                error: Exception = exc
            except RpcUnavailable as exc:
                kind, error = exc.kind, exc
            except MalformedChainData as exc:
                kind, error = "malformed", exc
            metrics.RPC_ERRORS.labels(kind=kind).inc()
            if (
                self.config.max_attempts is not None
                and backoff.attempt + 1 >= self.config.max_attempts
            ):
                raise FollowerError(str(error)) from None
            delay = backoff.next_delay()
            log.warning(
                fields(
                    "rpc_retry",
                    kind=kind,
                    attempt=backoff.attempt,
                    wait=f"{delay:.2f}s",
                    error=redact(str(error))[:300],
                )
            )
            await self._until(None, delay)
            if self.stop.is_set():
                raise Stopped

    def _count(self, payments: list[Payment], duplicates: int, orders: list[Any]) -> None:
        metrics.PAYMENTS_RECORDED.inc(len(payments))
        metrics.PAYMENTS_CTK.inc(sum(p.amount for p in payments) / 10**18)
        metrics.PAYMENT_DUPLICATES.inc(duplicates)
        metrics.ORDERS_CREATED.inc(len(orders))


__all__ = ["BlockRef", "ChainFollower", "FollowerConfig", "FollowerError", "SyncProgress"]
