"""The ledger schema on both databases: migrations match the models, amounts are exact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.ledger import Cursor, CursorMoved, Ledger
from watcher.adapters.ledger.schema import Base
from watcher.domain.blocks import BlockRef
from watcher.domain.catalog import Catalog
from watcher.domain.payment import Payment

PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def test_migrations_describe_exactly_the_models(engine: AsyncEngine) -> None:
    await migrations.upgrade(engine)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert diff == []
    assert set(Base.metadata.tables) <= tables
    assert await migrations.current_revision(engine) == migrations.head_revision()


async def test_orders_from_credit_migration_keeps_jobs_and_the_queued_index(
    engine: AsyncEngine,
) -> None:
    """0012 copies `orders` on SQLite (to drop NOT NULL): the jobs, which cascade from
    orders, and the partial index of queued orders must come through."""
    from alembic import command
    from sqlalchemy import text

    def upgrade_to(revision: str) -> Any:
        def run(sync: Any) -> None:
            config = migrations.alembic_config()
            config.attributes["connection"] = sync
            command.upgrade(config, revision)

        return run

    async with engine.begin() as conn:
        await conn.run_sync(upgrade_to("0011"))
        await conn.execute(
            text(
                "INSERT INTO orders (order_id, chain_id, tx_hash, log_index, unit, block_number,"
                " payer, amount, plan, instance_type, state, reorged, created_at, updated_at)"
                " VALUES ('o1', 1337, :tx, 0, 0, 5, :payer, '10', 'p', 't3.micro', 'launched',"
                " false, '2026-11-22 00:00:00', '2026-11-22 00:00:00')"
            ),
            {"tx": "0x" + "ab" * 32, "payer": PAYER},
        )
        await conn.execute(
            text(
                "INSERT INTO jobs (order_id, kind, state, attempts, available_at, created_at)"
                " VALUES ('o1', 'launch', 'done', 1, '2026-11-22 00:00:00',"
                " '2026-11-22 00:00:00')"
            )
        )
    await migrations.upgrade(engine)
    async with engine.connect() as conn:
        jobs = (await conn.execute(text("SELECT order_id, state FROM jobs"))).all()
        indexes = await conn.run_sync(lambda sync: inspect(sync).get_indexes("orders"))
    assert [tuple(j) for j in jobs] == [("o1", "done")]
    queued = next(i for i in indexes if i["name"] == "ix_orders_queued")
    where = queued.get("dialect_options", {})
    assert any("queued" in str(v) for k, v in where.items() if k.endswith("_where")), queued

    # And back down, over 0013 and 0012 (no order bought from credit yet): jobs stay.
    def downgrade_to(revision: str) -> Any:
        def run(sync: Any) -> None:
            config = migrations.alembic_config()
            config.attributes["connection"] = sync
            command.downgrade(config, revision)

        return run

    for revision in ("0012", "0011"):
        async with engine.begin() as conn:
            await conn.run_sync(downgrade_to(revision))
        async with engine.connect() as conn:
            jobs = (await conn.execute(text("SELECT order_id, state FROM jobs"))).all()
        assert [tuple(j) for j in jobs] == [("o1", "done")], revision


async def test_upgrade_twice_is_a_no_op(engine: AsyncEngine) -> None:
    await migrations.upgrade(engine)
    await migrations.upgrade(engine)
    assert await migrations.current_revision(engine) == migrations.head_revision()


async def test_amounts_up_to_uint256_max_survive(engine: AsyncEngine) -> None:
    await migrations.upgrade(engine)
    ledger = Ledger(engine, 1337, Catalog())
    biggest = 2**256 - 1
    payment = Payment(1337, "0x" + "ab" * 32, 0, 5, "0x" + "cd" * 32, PAYER, biggest)  # type: ignore[arg-type]
    recorded = await ledger.record(
        [payment], advance_from=None, advance_to=BlockRef(5, "0x" + "cd" * 32, "0x" + "ef" * 32)
    )
    assert recorded.payments == [payment]
    (stored,) = await queries.payments(engine, 1337)
    assert stored.amount == biggest
    price = Catalog().default_plan.price
    orders = await queries.orders(engine)
    assert len(orders) == 100  # one payment never buys more than max_orders_per_payment
    (credit,) = await queries.credits(engine)
    assert credit.balance == biggest - 100 * price
    totals = await queries.totals(engine, 1337)
    assert totals.paid == biggest == totals.credit + totals.spent


async def test_the_same_log_is_recorded_once(engine: AsyncEngine) -> None:
    await migrations.upgrade(engine)
    ledger = Ledger(engine, 1337, Catalog())
    payment = Payment(1337, "0x" + "ab" * 32, 3, 5, "0x" + "cd" * 32, PAYER, 10**19)  # type: ignore[arg-type]
    first = await ledger.record([payment])
    again = await ledger.record([payment])
    assert (len(first.payments), first.duplicates) == (1, 0)
    assert (len(again.payments), again.duplicates, again.orders) == (0, 1, [])
    assert len(await queries.orders(engine)) == 1


async def test_the_cursor_only_moves_by_compare_and_set(engine: AsyncEngine) -> None:
    await migrations.upgrade(engine)
    ledger = Ledger(engine, 1337, Catalog())
    block = BlockRef(9, "0x" + "11" * 32, "0x" + "22" * 32)
    await ledger.record([], advance_from=None, advance_to=block)
    assert await ledger.cursor() == Cursor(9, block.hash)
    with pytest.raises(CursorMoved):
        await ledger.record(
            [], advance_from=None, advance_to=BlockRef(10, "0x" + "33" * 32, block.hash)
        )
    assert await ledger.cursor() == Cursor(9, block.hash)


async def test_at_most_one_pending_job_per_order_and_kind(engine: AsyncEngine) -> None:
    """Jobs have their own ids; an order may have many over its life, but the database
    refuses a second pending one of the same kind (issue 9)."""
    from datetime import UTC, datetime

    from sqlalchemy import insert, update
    from sqlalchemy.exc import IntegrityError

    from watcher.adapters.ledger.schema import JobRecord

    await migrations.upgrade(engine)
    ledger = Ledger(engine, 1337, Catalog())
    payer = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    await ledger.record(
        [Payment(1337, "0x" + "11" * 32, 0, 3, "0x" + "22" * 32, payer, 10 * 10**18)]
    )  # type: ignore[arg-type]
    (order,) = await queries.orders(engine)
    # A queued order is its own launch job until a worker claims it: the claim writes it.
    claimed = await JobQueue(engine, "worker-1", claim_seconds=60).claim()
    assert claimed is not None and claimed.order_id == order.order_id
    now = datetime.now(UTC)
    row = {
        "order_id": order.order_id,
        "kind": "launch",
        "state": "queued",
        "attempts": 0,
        "available_at": now,
        "created_at": now,
    }
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(JobRecord).values(**row))
    async with engine.begin() as conn:
        await conn.execute(update(JobRecord).values(state="done"))
        await conn.execute(insert(JobRecord).values(**row))  # the next one, once it is done
        await conn.execute(insert(JobRecord).values(**{**row, "kind": "stop"}))  # another kind
        ids = (await conn.execute(select(JobRecord.id).order_by(JobRecord.id))).scalars().all()
    assert len(ids) == 3 and len(set(ids)) == 3


async def test_a_launch_job_is_written_when_first_claimed_and_claimed_once(
    engine: AsyncEngine,
) -> None:
    """The follower writes no jobs row per order (a queued order is its own launch job);
    workers claiming at once each take a different order, every order exactly once, and
    the pending count is the same before and after the rows are written."""
    import asyncio

    from watcher.adapters.ledger.schema import JobRecord

    await migrations.upgrade(engine)
    ledger = Ledger(engine, 1337, Catalog())
    price = Catalog().default_plan.price
    await ledger.record(
        [
            Payment(1337, "0x" + f"{n:064x}", 0, 3, "0x" + "22" * 32, PAYER, price)  # type: ignore[arg-type]
            for n in range(12)
        ]
    )
    async with engine.connect() as conn:
        assert (await conn.execute(select(JobRecord.id))).all() == []
    before = await queries.job_health(engine)
    assert before.pending == 12 and before.oldest_created_at is not None
    assert all(o.attempts == 0 and o.next_attempt_at for o in await queries.orders(engine))

    workers = [JobQueue(engine, f"worker-{n}", claim_seconds=60) for n in range(4)]

    async def drain(queue: JobQueue) -> list[str]:
        taken = []
        while (job := await queue.claim()) is not None:
            taken.append(job.order_id)
        return taken

    taken = [o for share in await asyncio.gather(*map(drain, workers)) for o in share]
    assert sorted(taken) == sorted(o.order_id for o in await queries.orders(engine))
    after = await queries.job_health(engine)
    assert (after.pending, after.oldest_created_at) == (12, before.oldest_created_at)
    assert all(o.attempts == 1 for o in await queries.orders(engine))
