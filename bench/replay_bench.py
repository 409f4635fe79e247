"""Replay benchmark (`make bench`): `watcher replay` of N payments from a local Hardhat
node, next to a bare `eth_getLogs` fetch of the same range measured in the same run.

    python bench/replay_bench.py [--payments 20000] [--per-tx 500] [--postgres] [--runs 3]

Prints the bare fetch time, the replay time (SQLite, and PostgreSQL with --postgres),
their ratio, payments per second and the replay process's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from web3 import HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chainhelpers import CTK, DevChainDriver  # noqa: E402
from watcher.adapters.chain.dev_accounts import dev_account  # noqa: E402
from watcher.dev.devchain import DevChain, hardhat_project  # noqa: E402
from watcher.domain.addresses import BURN_ADDRESS  # noqa: E402
from watcher.domain.payment import TRANSFER_TOPIC, topic_for_address  # noqa: E402
from watcher.shared.net import free_port  # noqa: E402

WATCHER = str(Path(sys.executable).parent / "watcher")


def make_payments(w3: Web3, total: int, per_tx: int) -> tuple[str, int, int]:
    driver = DevChainDriver(w3)
    ctk = driver.token()
    batcher = driver.deploy("PaymentBatcher")
    payers = [dev_account(i) for i in range(1, 11)]
    rng = random.Random(20_000)
    for payer in payers:
        driver.fund(ctk, payer, 100_000)
        driver.send(payer, ctk.functions.approve(batcher.address, 100_000 * CTK))
    start = driver.head + 1
    made = 0
    while made < total:
        count = min(per_tx, total - made)
        payer = payers[(made // per_tx) % len(payers)]
        amounts = [rng.randint(1, 30) * CTK for _ in range(count)]
        driver.send(payer, batcher.functions.payMany(ctk.address, BURN_ADDRESS, amounts))
        made += count
    return ctk.address, start, driver.head


async def bare_fetch(url: str, token: str, start: int, end: int) -> tuple[float, int]:
    """One eth_getLogs over the whole range with the follower's filter, JSON decoded."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_getLogs",
        "params": [
            {
                "fromBlock": hex(start),
                "toBlock": hex(end),
                "address": token,
                "topics": [TRANSFER_TOPIC, None, topic_for_address(BURN_ADDRESS)],
            }
        ],
    }
    async with aiohttp.ClientSession() as session:
        began = time.perf_counter()
        async with session.post(url, json=body) as response:
            logs = json.loads(await response.read())["result"]
        return time.perf_counter() - began, len(logs)


def replay(
    url: str, token: str, start: int, end: int, database_url: str
) -> tuple[float, float, int, str]:
    env = {
        **os.environ,
        "WATCHER_RPC_URL": url,
        "WATCHER_TOKEN_ADDRESS": token,
        "WATCHER_DATABASE_URL": database_url,
        "WATCHER_CONFIRMATIONS": "0",
    }
    if not database_url.startswith("sqlite"):
        subprocess.run([WATCHER, "db", "upgrade"], env=env, check=True, capture_output=True)
    began = time.perf_counter()
    done = subprocess.run(
        [WATCHER, "replay", "--from-block", str(start), "--to-block", str(end)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"watcher replay failed: {done.stderr.strip()}")
    wall = time.perf_counter() - began
    # The largest child so far: the replays are the biggest children this script runs.
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # The command reports its own replay time (without interpreter start-up).
    line = done.stdout.strip().splitlines()[-1]
    seconds = float(line.split(" s (")[0].rsplit(", ", 1)[1])
    return seconds, wall, peak_kib, line


async def create_pg_database() -> str:
    import asyncpg  # type: ignore[import-untyped]

    name = f"watcher_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_pg_database(url: str) -> None:
    import asyncpg

    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=20_000)
    parser.add_argument("--per-tx", type=int, default=500)
    parser.add_argument("--postgres", action="store_true", help="also replay into PostgreSQL")
    parser.add_argument("--runs", type=int, default=3, help="replays per database (median)")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp,
        (Path(tmp) / "hardhat.log").open("wb") as log,
    ):
        chain = DevChain(free_port(), hardhat_project(ROOT), log=log)
        with chain:
            chain.start()
            w3 = Web3(HTTPProvider(chain.url, request_kwargs={"timeout": 120}))
            began = time.perf_counter()
            token, start, end = make_payments(w3, args.payments, args.per_tx)
            print(
                f"setup: {args.payments} payments in blocks {start}-{end} ({time.perf_counter() - began:.1f} s)"
            )

            fetches = [asyncio.run(bare_fetch(chain.url, token, start, end)) for _ in range(3)]
            bare = statistics.median(t for t, _ in fetches)
            assert all(n == args.payments for _, n in fetches), fetches
            print(
                f"bare eth_getLogs of the range: {bare:.3f} s (median of 3), {args.payments / bare:,.0f} logs/s"
            )

            backends = ["sqlite", "postgresql"] if args.postgres else ["sqlite"]
            for name in backends:
                runs = []
                for attempt in range(args.runs):  # a fresh, empty ledger each time
                    if name == "sqlite":
                        database_url = f"sqlite+aiosqlite:///{Path(tmp) / f'bench-{attempt}.db'}"
                    else:
                        database_url = asyncio.run(create_pg_database())
                    try:
                        runs.append(replay(chain.url, token, start, end, database_url))
                    finally:
                        if name == "postgresql":
                            asyncio.run(drop_pg_database(database_url))
                seconds = statistics.median(r[0] for r in runs)
                wall = statistics.median(r[1] for r in runs)
                peak_kib = max(r[2] for r in runs)
                print(f"watcher replay into {name}: {runs[0][3]}")
                print(
                    f"  replay {seconds:.3f} s (median of {args.runs}) = {seconds / bare:.2f}x the bare fetch; "
                    f"{args.payments / seconds:,.0f} payments/s; {wall:.2f} s with interpreter start-up; "
                    f"peak memory of the replay process {peak_kib / 1024:.0f} MiB"
                )


if __name__ == "__main__":
    main()
