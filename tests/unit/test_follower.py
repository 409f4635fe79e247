"""The follower's rules, on FakeChain and a real SQLite ledger (fast and deterministic)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.fakes import FakeChain
from watcher.adapters.chain.rpc import RpcError, RpcUnavailable
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.ledger import Cursor, Ledger
from watcher.adapters.ledger.schema import OrderRecord
from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.catalog import Catalog
from watcher.domain.errors import InvalidInput, UserError
from watcher.domain.payment import MalformedChainData
from watcher.services.follower import ChainFollower, FollowerConfig, FollowerError
from watcher.services.replay import replay
from watcher.shared import metrics

CTK = 10**18
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
OTHER_TOKEN = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


def follower(chain: FakeChain, engine: AsyncEngine, **config: object) -> ChainFollower:
    settings = {
        "token": TOKEN,
        "burn": BURN_ADDRESS,
        "confirmations": 0,
        "max_attempts": 5,
        **config,
    }
    history = int(settings.pop("reorg_history", 256))  # type: ignore[call-overload]
    ledger = Ledger(engine, 1337, Catalog(), reorg_history=history)
    return ChainFollower(chain, ledger, FollowerConfig(**settings))  # type: ignore[arg-type]


def pay(
    payer: str, ctk: int | float, token: str = TOKEN, to: str = BURN_ADDRESS
) -> tuple[str, str, str, int]:
    return (token, payer, to, int(ctk * CTK))


async def assert_balanced(engine: AsyncEngine) -> None:
    totals = await queries.totals(engine, 1337)
    assert totals.paid == totals.credit + totals.spent


async def test_only_ctk_transfers_into_the_burn_address_count(engine: AsyncEngine) -> None:
    chain = FakeChain()
    chain.mine(
        [pay(ALICE, 10), pay(ALICE, 10, token=OTHER_TOKEN), pay(ALICE, 10, to=BOB), pay(ALICE, 0)]
    )
    await follower(chain, engine).sync()
    payments = await queries.payments(engine, 1337)
    assert [(p.payer, p.amount) for p in payments] == [(ALICE, 10 * CTK)]
    assert len(await queries.orders(engine)) == 1
    await assert_balanced(engine)


async def test_every_payment_in_one_transaction_block_counts(engine: AsyncEngine) -> None:
    chain = FakeChain()
    chain.mine([pay(ALICE, 10), pay(ALICE, 10), pay(BOB, 3)])
    await follower(chain, engine).sync()
    assert len(await queries.payments(engine, 1337)) == 3
    assert {(o.payer, o.log_index) for o in await queries.orders(engine)} == {
        (ALICE, 0),
        (ALICE, 1),
    }
    assert {c.payer: c.balance for c in await queries.credits(engine)} == {ALICE: 0, BOB: 3 * CTK}


async def test_credit_pooling(engine: AsyncEngine) -> None:
    chain = FakeChain()
    watcher = follower(chain, engine)
    chain.mine([pay(ALICE, 25)])
    await watcher.sync()
    assert len(await queries.orders(engine, payer=ALICE)) == 2
    assert (await queries.credits(engine, payer=ALICE))[0].balance == 5 * CTK
    chain.mine([pay(ALICE, 5)])
    await watcher.sync()
    orders = await queries.orders(engine, payer=ALICE)
    assert len(orders) == 3 and orders[2].block_number == 2
    assert (await queries.credits(engine, payer=ALICE))[0].balance == 0
    await assert_balanced(engine)


async def test_confirmations_hold_payments_back(engine: AsyncEngine) -> None:
    chain = FakeChain()
    watcher = follower(chain, engine, confirmations=2)
    chain.mine([pay(ALICE, 10)])
    chain.mine_empty(1)
    await watcher.sync()
    assert await queries.payments(engine, 1337) == []
    chain.mine_empty(1)
    await watcher.sync()
    assert len(await queries.payments(engine, 1337)) == 1


async def test_reorg_undoes_the_orphaned_payment_and_counts_the_reincluded_once(
    engine: AsyncEngine,
) -> None:
    chain = FakeChain()
    watcher = follower(chain, engine)
    for transfers in (None, None, [pay(ALICE, 10)], None):
        chain.mine(transfers)
        await watcher.sync()  # live following: one block per step
    (orphan,) = await queries.payments(engine, 1337)
    reorgs = metrics.REORGS._value.get()

    chain.reorg(2)  # blocks 3 and 4 are gone
    chain.mine_empty(1)
    chain.mine([pay(ALICE, 10)])  # included again, in another block
    chain.mine_empty(1)
    await watcher.sync()

    (payment,) = await queries.payments(engine, 1337)
    assert payment.block_number == 4 and payment.block_hash != orphan.block_hash
    assert payment.block_hash == chain.blocks[4].ref.hash
    (order,) = await queries.orders(engine)
    assert order.block_number == 4
    assert metrics.REORGS._value.get() == reorgs + 1
    await assert_balanced(engine)


async def test_an_orphaned_payment_that_never_returns_leaves_no_trace(engine: AsyncEngine) -> None:
    chain = FakeChain()
    watcher = follower(chain, engine)
    chain.mine([pay(ALICE, 25)])
    await watcher.sync()
    assert len(await queries.orders(engine)) == 2
    chain.reorg(1)
    chain.mine_empty(3)
    await watcher.sync()
    assert await queries.payments(engine, 1337) == []
    assert await queries.orders(engine) == []
    assert await queries.credits(engine) == []
    cursor = await watcher.ledger.cursor()
    assert cursor is not None and cursor.hash == chain.blocks[-1].ref.hash


async def test_a_reorg_under_a_started_order_is_flagged_never_silent(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    chain = FakeChain()
    watcher = follower(chain, engine, confirmations=1)
    chain.mine([pay(ALICE, 10)])
    chain.mine_empty(1)
    await watcher.sync()
    (order,) = await queries.orders(engine)
    async with engine.begin() as conn:  # the provisioner has started on it
        await conn.execute(update(OrderRecord).values(state="launching"))
    deep, flagged = metrics.DEEP_REORGS._value.get(), metrics.ORDERS_FLAGGED._value.get()

    chain.reorg(2)
    chain.mine_empty(3)
    with caplog.at_level(logging.WARNING, logger="watcher.services.follower"):
        await watcher.sync()

    (kept,) = await queries.orders(engine)
    assert kept.order_id == order.order_id and kept.reorged and kept.state == "launching"
    assert await queries.payments(engine, 1337) == []
    # The order is unfunded (its payment is gone), never a debt on the payer's credit.
    assert await queries.credits(engine) == []
    assert (await queries.totals(engine, 1337)).unfunded == 10 * CTK
    assert metrics.DEEP_REORGS._value.get() == deep + 1
    assert metrics.ORDERS_FLAGGED._value.get() == flagged + 1
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert any(order.order_id in m for m in critical)
    assert any(m.startswith("reorg undone_blocks=1 chain_depth_at_least=2") for m in critical)
    await assert_balanced(engine)


async def test_reinclusion_of_the_same_payment_clears_the_flag(engine: AsyncEngine) -> None:
    chain = FakeChain()
    watcher = follower(chain, engine)
    chain.mine([pay(ALICE, 10)])
    await watcher.sync()
    tx = chain.blocks[1].logs[0]
    async with engine.begin() as conn:
        await conn.execute(update(OrderRecord).values(state="running", instance_id="i-123"))
    chain.reorg(1)
    chain.mine_empty(1)
    await watcher.sync()
    assert (await queries.orders(engine))[0].reorged
    chain.blocks[-1].logs.append(
        {**tx, "blockNumber": "0x1", "blockHash": chain.blocks[-1].ref.hash}
    )
    chain.mine_empty(1)
    await watcher.ledger.rewind(None, floor=0)  # re-read block 1 with the payment back in it
    await watcher.sync()
    (order,) = await queries.orders(engine)
    assert not order.reorged and order.instance_id == "i-123"
    assert (await queries.credits(engine))[0].balance == 0
    await assert_balanced(engine)


async def fail_order(engine: AsyncEngine, reason: str = "InvalidSubnetID.NotFound") -> int | None:
    """Fail the oldest queued order the way a worker does (claim, then fail + refund)."""
    queue = JobQueue(engine, "test-worker", 30)
    job = await queue.claim()
    assert job is not None
    return await queue.fail(job.order_id, reason)


@pytest.mark.parametrize("confirmations", [0, 2])
async def test_a_failed_order_whose_payment_is_reorged_and_mined_again_loses_nothing(
    engine: AsyncEngine, confirmations: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 8.1: the failed order's price went back to credit; a reorg took the payment;
    the same transaction was mined again. The payment must buy a fresh order."""
    chain = FakeChain()
    watcher = follower(chain, engine, confirmations=confirmations)
    chain.mine([pay(ALICE, 10)])
    chain.mine_empty(confirmations)
    await watcher.sync()
    (failed,) = await queries.orders(engine)
    assert await fail_order(engine) == 10 * CTK
    assert (await queries.credits(engine))[0].balance == 10 * CTK
    tx = chain.blocks[1].logs[0]

    chain.reorg(confirmations + 1)
    chain.mine_empty(confirmations + 1)
    with caplog.at_level(logging.WARNING, logger="watcher.services.follower"):
        await watcher.sync()
    assert await queries.payments(engine, 1337) == []
    assert await queries.orders(engine) == []  # it held nothing: undone, as a replay would
    assert not any("instance" in r.getMessage() for r in caplog.records)
    await assert_balanced(engine)

    chain.blocks[-1].logs.append(
        {
            **tx,
            "blockNumber": hex(chain.blocks[-1].ref.number),
            "blockHash": chain.blocks[-1].ref.hash,
        }
    )
    await watcher.ledger.rewind(None, floor=0)  # re-read the chain with the payment back
    chain.mine_empty(confirmations)
    await watcher.sync()
    (again,) = await queries.orders(engine)
    assert again.order_id == failed.order_id and again.state == "queued" and not again.reorged
    assert [c.balance for c in await queries.credits(engine)] == [0]
    totals = await queries.totals(engine, 1337)
    assert totals.paid == 10 * CTK and totals.spent == 10 * CTK and totals.balanced


async def test_an_unfunded_order_that_fails_is_not_refunded_and_is_bought_again(
    engine: AsyncEngine,
) -> None:
    chain = FakeChain()
    watcher = follower(chain, engine)
    chain.mine([pay(ALICE, 10)])
    await watcher.sync()
    tx = chain.blocks[1].logs[0]
    queue = JobQueue(engine, "w", 30)
    job = await queue.claim()
    assert job is not None and await queue.mark_launching(job.order_id)
    chain.reorg(1)
    chain.mine_empty(1)
    await watcher.sync()
    assert (await queries.orders(engine))[0].reorged
    assert await queue.fail(job.order_id, "capacity") == 0  # nobody paid for it now
    assert await queries.credits(engine) == []
    await assert_balanced(engine)

    chain.blocks[-1].logs.append(
        {**tx, "blockNumber": "0x1", "blockHash": chain.blocks[-1].ref.hash}
    )
    await watcher.ledger.rewind(None, floor=0)
    await watcher.sync()
    (order,) = await queries.orders(engine)
    assert order.state == "queued" and not order.reorged
    assert (await queries.totals(engine, 1337)).balanced


async def test_a_payment_mined_again_after_other_payments_pays_for_its_own_order_once(
    engine: AsyncEngine,
) -> None:
    """P1 bought X (running); a reorg took P1; P2 arrived; P1 came back: X is P1's again
    and P2's money buys a second order. Nothing is charged twice or lost."""
    chain = FakeChain()
    watcher = follower(chain, engine)
    chain.mine([pay(ALICE, 5)])
    chain.mine([pay(ALICE, 10)])
    await watcher.sync()
    p1 = chain.blocks[2].logs[0]
    async with engine.begin() as conn:
        await conn.execute(update(OrderRecord).values(state="running", instance_id="i-1"))
    chain.reorg(1)
    chain.mine([pay(ALICE, 10)])
    await watcher.sync()
    assert [o.reorged for o in await queries.orders(engine)] == [True, False]
    chain.blocks[-1].logs.append(
        {
            **p1,
            "blockNumber": hex(chain.blocks[-1].ref.number),
            "blockHash": chain.blocks[-1].ref.hash,
        }
    )
    await watcher.ledger.rewind(Cursor(chain.blocks[-2].ref.number, chain.blocks[-2].ref.hash))
    await watcher.sync()
    orders = await queries.orders(engine)
    assert len(orders) == 2 and not any(o.reorged for o in orders)
    assert [c.balance for c in await queries.credits(engine)] == [5 * CTK]
    assert (await queries.totals(engine, 1337)).balanced


async def test_refused_ranges_are_split_and_nothing_is_missed(engine: AsyncEngine) -> None:
    chain = FakeChain(max_log_range=7)
    for number in range(60):
        chain.mine([pay(ALICE, 1)] if number % 3 == 0 else None)
    splits = metrics.LOG_RANGE_SPLITS._value.get()
    watcher = follower(chain, engine)
    await watcher.sync()
    assert len(await queries.payments(engine, 1337)) == 20
    # The hint is taken at once; the range grows back after small answers, and is refused
    # again each time it passes the node's limit.
    assert 1 <= metrics.LOG_RANGE_SPLITS._value.get() - splits <= 4
    assert watcher.sizer.size in (7, 14)


async def test_a_block_too_big_for_the_node_stops_with_a_clear_error(engine: AsyncEngine) -> None:
    chain = FakeChain(max_log_range=0)
    chain.mine([pay(ALICE, 1)])
    with pytest.raises(FollowerError, match="even for the single block 0"):
        await follower(chain, engine).sync()


async def test_transient_failures_are_retried(engine: AsyncEngine) -> None:
    chain = FakeChain()
    chain.mine([pay(ALICE, 10)])
    chain.fail_next.extend(
        [
            RpcUnavailable("timeout", "slow"),
            RpcError(-32005, "daily request count exceeded, request rate limited"),
            MalformedChainData("garbage"),
        ]
    )
    timeouts = metrics.RPC_ERRORS.labels(kind="timeout")._value.get()
    watcher = follower(chain, engine)
    watcher.config = watcher.config.__class__(**{**watcher.config.__dict__, "max_attempts": 10})
    await watcher.sync()
    assert len(await queries.payments(engine, 1337)) == 1
    assert metrics.RPC_ERRORS.labels(kind="timeout")._value.get() == timeouts + 1


async def test_a_node_that_stays_down_ends_a_bounded_follower(engine: AsyncEngine) -> None:
    chain = FakeChain()
    chain.fail_next.extend([RpcUnavailable("connection", "refused")] * 3)
    with pytest.raises(FollowerError, match="refused"):
        await follower(chain, engine, max_attempts=3).sync()


async def test_a_chain_moving_during_a_step_is_not_committed_half_way(engine: AsyncEngine) -> None:
    chain = FakeChain()
    chain.mine([pay(ALICE, 10)])
    chain.mine_empty(1)

    def reorg_now() -> None:
        chain.reorg(2)
        chain.mine([pay(BOB, 10)])
        chain.mine_empty(1)

    chain.during_logs.append(reorg_now)
    await follower(chain, engine).sync()
    payments = await queries.payments(engine, 1337)
    assert [(p.payer, p.block_hash) for p in payments] == [(BOB, chain.blocks[1].ref.hash)]


async def test_reorg_deeper_than_history_restarts_below_it(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    chain = FakeChain()
    watcher = follower(chain, engine, reorg_history=1, initial_block_range=1)
    for _ in range(6):
        chain.mine([pay(ALICE, 1)])
    await watcher.sync()
    chain.reorg(5)
    for _ in range(6):
        chain.mine([pay(BOB, 1)])
    with caplog.at_level(logging.CRITICAL, logger="watcher.services.follower"):
        await watcher.sync()
    payers = [p.payer for p in await queries.payments(engine, 1337)]
    assert payers == [ALICE] + [BOB] * 6
    assert any("reorg_beyond_history" in r.getMessage() for r in caplog.records)
    await assert_balanced(engine)


async def test_replay_twice_changes_nothing_and_backfills_below_the_cursor(
    engine: AsyncEngine,
) -> None:
    chain = FakeChain()
    for _ in range(10):
        chain.mine([pay(ALICE, 4)])
    late_start = follower(chain, engine, start_block=6)
    await late_start.sync()
    assert len(await queries.payments(engine, 1337)) == 5
    first = await replay(follower(chain, engine), late_start.ledger, 1, None)
    assert (first.payments, first.duplicates) == (5, 5)
    before = await queries.orders(engine)
    again = await replay(follower(chain, engine), late_start.ledger, 1, None)
    assert (again.payments, again.orders) == (0, 0)
    assert await queries.orders(engine) == before
    await assert_balanced(engine)


async def test_replay_into_an_empty_ledger_gives_the_same_orders(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    chain = FakeChain()
    for n in range(12):
        chain.mine([pay(ALICE, 3), pay(BOB, 7)] if n % 2 else [pay(ALICE, 11)])
    live = follower(chain, engine, initial_block_range=1)
    await live.sync()
    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'replayed.db'}")
    await migrations.upgrade(other)
    try:
        await replay(follower(chain, other), Ledger(other, 1337, Catalog()), 0, None)
        ids = [o.order_id for o in await queries.orders(engine)]
        assert ids and ids == [o.order_id for o in await queries.orders(other)]
        assert [c.balance for c in await queries.credits(engine)] == [
            c.balance for c in await queries.credits(other)
        ]
    finally:
        await other.dispose()


async def test_replay_refuses_gaps_and_unconfirmed_blocks(engine: AsyncEngine) -> None:
    chain = FakeChain()
    chain.mine_empty(10)
    watcher = follower(chain, engine, confirmations=3)
    await watcher.sync(until=4)
    with pytest.raises(UserError, match="leave blocks 5-6 unread"):
        await replay(watcher, watcher.ledger, 7, None)
    with pytest.raises(InvalidInput, match="block 9 is not confirmed yet: the safe head is 7"):
        await replay(watcher, watcher.ledger, 0, 9)
    with pytest.raises(InvalidInput, match="after --to-block"):
        await replay(watcher, watcher.ledger, 6, 5)


async def test_orders_followed_live_carry_their_block_time(engine: AsyncEngine) -> None:
    from datetime import UTC, datetime

    chain = FakeChain()
    watcher = follower(chain, engine)
    chain.mine([pay(ALICE, 10)])
    chain.mine([pay(BOB, 10)])
    await watcher.sync()  # one range for both: only its end block's time is known
    chain.mine([pay(ALICE, 10)])
    await watcher.sync()  # live: one block, its time known
    by_block = {o.block_number: o.paid_at for o in await queries.orders(engine)}
    stamp = lambda n: datetime.fromtimestamp(chain.blocks[n].ref.timestamp, UTC)  # noqa: E731
    assert by_block == {1: None, 2: stamp(2), 3: stamp(3)}


def remine(chain: FakeChain, log: dict[str, str], log_index: int = 0) -> None:
    """Put `log` (the same transaction) into the newest block, at `log_index`."""
    ref = chain.blocks[-1].ref
    chain.blocks[-1].logs.append(
        {**log, "blockNumber": hex(ref.number), "blockHash": ref.hash, "logIndex": hex(log_index)}
    )


async def test_a_payment_mined_again_at_another_log_index_keeps_its_order(
    engine: AsyncEngine,
) -> None:
    """Ethereum numbers logs across the block: a transaction mined again behind another
    one gets another log index. Its order (and instance) is still the same one."""
    chain = FakeChain()
    watcher = follower(chain, engine)
    chain.mine([pay(ALICE, 10)])
    await watcher.sync()
    tx = chain.blocks[1].logs[0]
    async with engine.begin() as conn:
        await conn.execute(update(OrderRecord).values(state="running", instance_id="i-1"))
    (before,) = await queries.orders(engine)

    chain.reorg(1)
    chain.mine([pay(BOB, 10)])
    remine(chain, tx, log_index=1)
    await watcher.sync()
    orders = {o.payer: o for o in await queries.orders(engine)}
    alice = orders[ALICE]
    assert alice.order_id == before.order_id and alice.instance_id == "i-1"
    assert not alice.reorged and alice.log_index == 1 and alice.state == "running"
    assert orders[BOB].state == "queued"
    assert len(orders) == 2 and len(await queries.orders(engine)) == 2
    totals = await queries.totals(engine, 1337)
    assert totals.balanced and totals.unfunded == 0 and totals.credit == 0


async def test_a_relinked_order_moves_to_its_payments_new_block(engine: AsyncEngine) -> None:
    """A later reorg finds orders by block: a relinked order must carry the block its
    payment is in now, or a reorg above it would flag it (credit for nothing) or one
    below it would miss it (a debt)."""
    chain = FakeChain()
    watcher = follower(chain, engine)
    chain.mine_empty(2)
    chain.mine([pay(ALICE, 10)])  # block 3
    await watcher.sync()
    tx = chain.blocks[3].logs[0]
    async with engine.begin() as conn:
        await conn.execute(update(OrderRecord).values(state="running", instance_id="i-1"))
    chain.reorg(2)
    chain.mine_empty(1)  # block 2'
    remine(chain, tx)
    chain.mine_empty(2)
    await watcher.sync()
    (order,) = await queries.orders(engine)
    assert order.block_number == 2 and not order.reorged

    chain.reorg(2)  # blocks 3' and 4' go; the payment in block 2' stays
    chain.mine_empty(3)
    await watcher.sync()
    (order,) = await queries.orders(engine)
    assert not order.reorged
    assert [c.balance for c in await queries.credits(engine)] == [0]
    totals = await queries.totals(engine, 1337)
    assert totals.balanced and totals.unfunded == 0


async def test_new_heads_wake_the_follower_and_a_lost_subscription_reconnects(
    engine: AsyncEngine,
) -> None:
    """The follower learns of new heads from the chain layer's subscription (here a fake
    one): a head wakes it at once (no polling: the poll interval is an hour), and a socket
    that fails is reconnected, with a backfill from the cursor."""
    import asyncio
    from contextlib import asynccontextmanager

    chain = FakeChain()
    watcher = follower(chain, engine)
    connects: list[int] = []
    head = asyncio.Event()

    @asynccontextmanager
    async def heads(url: str) -> AsyncIterator[AsyncIterator[None]]:
        connects.append(len(connects))
        if len(connects) == 1:
            raise OSError("connection refused")  # the first try fails: back off, retry

        async def ticks() -> AsyncIterator[None]:
            while True:
                await head.wait()
                head.clear()
                yield None

        yield ticks()

    watcher.heads = heads
    reconnects = metrics.WS_RECONNECTS._value.get()
    running = asyncio.create_task(watcher.run("ws://fake", poll_interval=3600))
    try:
        for _ in range(200):  # the first connect fails, the second one holds
            if len(connects) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(connects) == 2 and metrics.WS_RECONNECTS._value.get() == reconnects + 1
        chain.mine([pay(ALICE, 10)])
        head.set()  # only the head can wake it: the poll interval is an hour
        for _ in range(200):
            if await queries.payments(engine, 1337):
                break
            await asyncio.sleep(0.05)
        assert len(await queries.payments(engine, 1337)) == 1
    finally:
        watcher.stop.set()
        await asyncio.wait_for(running, 10)


async def test_catching_up_reads_the_next_ranges_while_the_ledger_writes(
    engine: AsyncEngine,
) -> None:
    chain = FakeChain()
    for _ in range(40):
        chain.mine([pay(ALICE, 10)])
    watcher = follower(chain, engine)
    logs_calls_at_write: list[int] = []
    record = watcher.ledger.record

    async def watched(*args: object, **kwargs: object) -> object:
        logs_calls_at_write.append(chain.calls.count("logs"))
        return await record(*args, **kwargs)  # type: ignore[arg-type]

    watcher.ledger.record = watched  # type: ignore[method-assign]
    done = await watcher.sync()
    assert done.payments == 40 and len(await queries.orders(engine)) == 40
    # 41 blocks in ranges of at least 8: the first range was being written while a later
    # one was already asked for, and every range was written once, in order.
    assert len(logs_calls_at_write) == chain.calls.count("logs") >= 4
    assert logs_calls_at_write[0] >= 2
    cursor = await watcher.ledger.cursor()
    assert cursor is not None and cursor.number == 40
    await assert_balanced(engine)


async def test_a_reorg_under_a_range_read_ahead_is_caught_before_it_is_written(
    engine: AsyncEngine,
) -> None:
    chain = FakeChain()
    for _ in range(40):
        chain.mine([pay(ALICE, 10)])

    def reorg_first_range() -> None:
        # While the second range's logs are read, the chain loses its last 36 blocks
        # (the end of the first range among them) and grows again with other payments.
        chain.reorg(36)
        for _ in range(36):
            chain.mine([pay(BOB, 10)])

    chain.during_logs.extend([lambda: None, reorg_first_range])
    watcher = follower(chain, engine)
    await watcher.sync()
    payments = await queries.payments(engine, 1337)
    assert [(p.block_number, p.block_hash) for p in payments] == [
        (block.ref.number, block.ref.hash) for block in chain.blocks[1:]
    ]
    assert [p.payer for p in payments] == [ALICE] * 4 + [BOB] * 36
    await assert_balanced(engine)


async def test_a_range_read_again_after_a_refusal_must_still_continue_the_written_one(
    engine: AsyncEngine,
) -> None:
    """The node refuses the second range and, at that moment, the chain reorganises under
    the first: the second range, read again in smaller pieces from the new chain, must not
    be written on top of the first (found in review)."""
    chain = FakeChain()
    for _ in range(40):
        chain.mine([pay(ALICE, 10)])

    def refuse_and_reorg() -> None:
        chain.reorg(36)
        for _ in range(36):
            chain.mine([pay(BOB, 10)])
        chain.max_log_range = 4

    chain.during_logs.extend([lambda: None, refuse_and_reorg])
    watcher = follower(chain, engine)
    await watcher.sync()
    payments = await queries.payments(engine, 1337)
    assert [(p.block_number, p.block_hash) for p in payments] == [
        (block.ref.number, block.ref.hash) for block in chain.blocks[1:]
    ]
    assert [p.payer for p in payments] == [ALICE] * 4 + [BOB] * 36
    await assert_balanced(engine)


async def test_stop_ends_a_catch_up_after_the_range_being_written(engine: AsyncEngine) -> None:
    chain = FakeChain()
    for _ in range(400):
        chain.mine([pay(ALICE, 10)])
    watcher = follower(chain, engine, initial_block_range=8, max_block_range=8)
    record = watcher.ledger.record
    writes = 0

    async def stop_after_the_first(*args: object, **kwargs: object) -> object:
        nonlocal writes
        writes += 1
        watcher.stop.set()
        return await record(*args, **kwargs)  # type: ignore[arg-type]

    watcher.ledger.record = stop_after_the_first  # type: ignore[method-assign]
    await watcher.sync()
    assert writes == 1
    cursor = await watcher.ledger.cursor()
    assert cursor is not None and cursor.number == 7
    # Started again, it goes on from there to the head.
    watcher.stop.clear()
    watcher.ledger.record = record  # type: ignore[method-assign]
    await watcher.sync()
    assert len(await queries.payments(engine, 1337)) == 400
    await assert_balanced(engine)
