"""Lease scheduler benchmark (`make bench`): one tick of the lease scheduler among N active
leases, and the time to process 1,000 expiries, on SQLite and PostgreSQL.

    python bench/lease_bench.py [--leases 100000] [--due 1000] [--postgres]

Each figure is a ratio against a baseline measured in the same run on the same database:
the same tick over a ledger holding only the due leases. A ratio near 1 means the work of
a tick follows the leases that are due (the partial index on their next moment), not all
leases.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, func, select  # noqa: E402

from tests.conftest import fresh_postgres_database  # noqa: E402
from watcher.adapters.ledger import migrations  # noqa: E402
from watcher.adapters.ledger.bulk import DbValues, bulk_insert  # noqa: E402
from watcher.adapters.ledger.database import create_engine  # noqa: E402
from watcher.adapters.ledger.lease_book import LeaseBook  # noqa: E402
from watcher.adapters.ledger.schema import JobRecord, OrderRecord  # noqa: E402
from watcher.domain.leases import LeaseTerms  # noqa: E402
from watcher.services.leases import LeaseScheduler  # noqa: E402

COLUMNS = (
    "order_id", "chain_id", "tx_hash", "log_index", "unit", "block_number", "payer", "amount",
    "plan", "instance_type", "state", "reorged", "created_at", "updated_at", "lease_terms",
    "lease_state", "paid_until", "due_at", "warned", "auto_renew", "cancelled", "periods",
)  # fmt: skip
TERMS = LeaseTerms().to_json()
PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


async def fill(url: str, running: int, due: int) -> None:
    """`running` leases due hours from now and `due` whose paid time has just ended."""
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine)
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            db = DbValues(conn)
            rows = []
            for n in range(running + due):
                ended = n < due
                until = now - timedelta(seconds=1) if ended else now + timedelta(hours=5)
                rows.append(
                    (
                        f"{n:032x}", 1337, "0x" + f"{n:064x}", 0, 0, 10, PAYER,
                        db.amount(10**19), "t3.micro", "t3.micro", "running", db.flag(False),
                        db.time(now), db.time(now), TERMS, "expiring" if ended else "active",
                        db.time(until), db.time(until if ended else until - timedelta(hours=1)),
                        2 if ended else 0, db.flag(False), db.flag(False), 1,
                    )
                )  # fmt: skip
            await bulk_insert(conn, OrderRecord.__table__, COLUMNS, rows)  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def tick_seconds(url: str, runs: int) -> tuple[float, float]:
    """(an idle tick, a tick processing every due lease): the median idle tick over
    `runs`, then the one tick that moves the due leases to stopping (a stop job each)."""
    engine = create_engine(url)
    try:
        scheduler = LeaseScheduler(LeaseBook(engine, "bench", 60))
        # The due leases first, to measure an idle tick without them: put them aside.
        async with engine.begin() as conn:
            due_ids = [
                r[0]
                for r in (
                    await conn.execute(
                        select(OrderRecord.order_id, OrderRecord.due_at).where(
                            OrderRecord.lease_state == "expiring"
                        )
                    )
                ).all()
            ]
        moments = []
        await scheduler.book.due_orders()  # warm the connection
        for _ in range(runs):
            start = time.perf_counter()
            await scheduler.book.due_orders(500)
            moments.append(time.perf_counter() - start)
        start = time.perf_counter()
        moved = await scheduler.tick()
        busy = time.perf_counter() - start
        assert moved == len(due_ids), (moved, len(due_ids))
        async with engine.connect() as conn:
            jobs = (await conn.execute(select(func.count()).select_from(JobRecord))).scalar_one()
        assert jobs == len(due_ids)
        async with engine.begin() as conn:
            await conn.execute(delete(JobRecord))
        return statistics.median(moments), busy
    finally:
        await engine.dispose()


async def measure(kind: str, leases: int, due: int, runs: int) -> None:
    async def one(running: int) -> tuple[float, float]:
        if kind == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite+aiosqlite:///{Path(folder) / 'ledger.db'}"
                await fill(url, running, due)
                return await tick_seconds(url, runs)
        async with fresh_postgres_database() as url:
            await fill(url, running, due)
            return await tick_seconds(url, runs)

    base_idle, base_busy = await one(0)
    idle, busy = await one(leases)
    print(
        f"{kind:<10} finding the due leases: {idle * 1000:7.2f} ms among {leases:,} active leases, "
        f"{base_idle * 1000:7.2f} ms alone ({idle / base_idle:.2f}x)"
    )
    print(
        f"{kind:<10} {due:,} expiries in one tick: {busy:6.2f} s among {leases:,} leases, "
        f"{base_busy:6.2f} s alone ({busy / base_busy:.2f}x; {due / busy:,.0f} per second)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    asyncio.run(measure("sqlite", args.leases, args.due, args.runs))
    if args.postgres:
        asyncio.run(measure("postgresql", args.leases, args.due, args.runs))


if __name__ == "__main__":
    main()
