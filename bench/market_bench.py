"""AWESOME's experiments on our contracts (`make bench-market`): gas per function and the
latency of a whole auction and SLA round for 1, 10, 50 and 100 players, on Hardhat with
automine and with a block every second, side by side with AWESOME's published figures.

    python bench/market_bench.py [--players 1,10,50,100] [--block-time 1.0] [--json FILE]

A round is the paper's experiment, a reverse sealed-bid auction: a customer opens a
second-price auction for one slot; n providers commit, then reveal (all at once, each from
its own key, as independent players would); the auction settles; the winner confirms its
agreement; a committee of 3 is drawn from a pool of 5 witnesses (registered before the
first round); two report a violation, one reports none; the committee is finalized and the
two witnesses who judged right claim their reward. Everything goes through watcher's own
adapter (`watcher.adapters.chain.market`), as `watcher market` sends it, approvals
included (each is an exact `approve`, counted against its role).

Latency is wall time from the customer's first transaction to the last claim, without the
auction's and agreement's own windows (bidding, revealing, service, reporting), which the
bench skips with evm_increaseTime: they are policy, not overhead. With automine every
transaction is mined when it arrives; with --block-time the node mines on a timer, and
players who act at once share a block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chainhelpers import CTK, DevChainDriver  # noqa: E402
from watcher.adapters.chain.connection import Chain, connect  # noqa: E402
from watcher.adapters.chain.market import Market, Sent  # noqa: E402
from watcher.adapters.chain.signer import Signer  # noqa: E402
from watcher.adapters.chain.token import CloudToken  # noqa: E402
from watcher.dev.devchain import DevChain, hardhat_project  # noqa: E402
from watcher.domain.market import (  # noqa: E402
    AgreementTerms,
    AuctionRules,
    Mechanism,
    PoolRules,
    Side,
    bid_commitment,
    report_commitment,
)
from watcher.shared.net import free_port  # noqa: E402

TIMEOUT = 120.0
POOL = PoolRules(100 * CTK, 50 * CTK, 20 * CTK, 10 * CTK, 60, CTK)
WITNESS_POOL = 5

# AWESOME's own measurements (Kovan), as the issue quotes them.
AWESOME = {
    "100 bids placed": "2.5-3.1 M",
    "customer, whole auction": "7.53 M (deployment 4.33 M, placeBids 436 k, genSLAContract 997 k, "
    "calculateWitnessFee 1.11 M)",
    "provider": "0.46 M",
    "witness": "0.46 M",
    "latency, 1 player": "about 5 s",
    "latency, 100 players": "about 110 s (linear in players)",
}


@dataclass
class Round:
    players: int
    mode: str
    seconds: float = 0.0
    # function -> gas of every call of it in the round
    gas: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    # role -> total gas
    roles: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    commits: list[int] = field(default_factory=list)  # by bidder, in order
    reveals: list[int] = field(default_factory=list)

    def note(self, role: str, function: str, sent: Sent) -> None:
        self.gas[function].append(sent.gas_used)
        self.roles[role] += sent.gas_used + sent.approval_gas


class Node:
    """Time and mining of the Hardhat node, over the async connection."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    async def rpc(self, method: str, params: list[Any]) -> Any:
        return await self.chain.w3.provider.make_request(method, params)  # type: ignore[arg-type]

    async def skip_past(self, timestamp: int) -> None:
        """Jump the clock past `timestamp` (a window the bench does not wait out)."""
        latest = await self.chain.w3.eth.get_block("latest")
        if int(latest["timestamp"]) <= timestamp:
            await self.rpc("evm_setNextBlockTimestamp", [timestamp + 1])
            await self.rpc("evm_mine", [])

    async def wait_for_block(self, number: int, interval: bool) -> None:
        while await self.chain.w3.eth.block_number < number:
            if interval:
                await asyncio.sleep(0.05)
            else:
                await self.rpc("evm_mine", [])


def signer(account: LocalAccount) -> Signer:
    return Signer(account, "bench")


async def play(
    market: Market,
    node: Node,
    customer: Signer,
    providers: list[Signer],
    witnesses: dict[str, Signer],
    result: Round,
    interval: bool,
) -> None:
    chain_id = market.chain.chain_id
    latest = await market.chain.w3.eth.get_block("latest")
    now = int(latest["timestamp"])
    rules = AuctionRules(
        side=Side.REVERSE,
        mechanism=Mechanism.SECOND_PRICE_SEALED,
        slots=1,
        bidding_ends=now + 3600,
        reveal_ends=now + 7200,
        reserve=100 * CTK,
        start_price=0,
        increment=0,
        bid_deposit=5 * CTK,
    )
    terms = AgreementTerms(
        terms_hash=Web3.keccak(text="99.9 % uptime"),
        service_seconds=86_400,
        confirm_seconds=3600,
        report_seconds=3600,
        reveal_seconds=3600,
        compensation_bps=3000,
        witnesses=3,
        quorum=2,
        provider_deposit=40 * CTK,
        witness_fee=9 * CTK,
    )
    started = time.monotonic()
    skipped = 0.0
    sent = await market.open_auction(customer, rules, terms, TIMEOUT)
    result.note("customer", "openAuction", sent)
    auction_address = sent.event("AuctionOpened").args["auction"]
    auction = await market.auction(auction_address)
    # Each provider asks less than the one before: in a reverse auction every reveal is then
    # the best so far and pushes out the runner-up, the most expensive path a reveal takes.
    prices = {p.address: 99 * CTK - index * CTK // 100 for index, p in enumerate(providers)}
    salts = {p.address: Web3.keccak(text=f"salt {p.address}") for p in providers}

    async def commit(provider: Signer) -> None:
        sealed = bid_commitment(
            chain_id,
            auction_address,
            provider.address,
            prices[provider.address],
            salts[provider.address],
        )
        sent = await market.commit_bid(provider, auction, sealed, TIMEOUT)
        result.note("provider", "commit (bid)", sent)
        result.commits.append(sent.gas_used)

    async def reveal(provider: Signer) -> None:
        price, salt = prices[provider.address], salts[provider.address]
        sent = await market.reveal_bid(provider, auction, price, salt, TIMEOUT)
        result.note("provider", "reveal (bid)", sent)
        result.reveals.append(sent.gas_used)

    await asyncio.gather(*(commit(p) for p in providers))
    mark = time.monotonic()
    await node.skip_past(rules.bidding_ends)
    skipped += time.monotonic() - mark
    await asyncio.gather(*(reveal(p) for p in providers))
    sent = await market.settle(customer, auction_address, TIMEOUT)
    result.note("customer", "settle", sent)
    won = sent.event("Won").args
    winner = next(p for p in providers if p.address == won["bidder"])
    agreement = won["agreement"]
    sent = await market.confirm(winner, agreement, TIMEOUT)
    result.note("provider", "confirm (agreement)", sent)
    committee = sent.event("Confirmed").args["committee"]
    seed_block = sent.event("CommitteeFormed").args["seedBlock"]
    await node.wait_for_block(seed_block + 1, interval)
    sent = await market.draw(customer, committee, TIMEOUT)
    result.note("customer", "draw (committee)", sent)
    members = [witnesses[address] for address in sent.event("Drawn").args["members"]]
    votes = {members[0].address: True, members[1].address: True, members[2].address: False}
    report_salts = {m.address: Web3.keccak(text=f"report {m.address} {committee}") for m in members}

    async def report(member: Signer) -> None:
        sealed = report_commitment(
            chain_id, committee, member.address, votes[member.address], report_salts[member.address]
        )
        result.note(
            "witness",
            "commit (report)",
            await market.commit_report(member, committee, sealed, TIMEOUT),
        )

    async def reveal_report(member: Signer) -> None:
        sent = await market.reveal_report(
            member, committee, votes[member.address], report_salts[member.address], TIMEOUT
        )
        result.note("witness", "reveal (report)", sent)

    await asyncio.gather(*(report(m) for m in members))
    view = await market.committee(committee)
    mark = time.monotonic()
    await node.skip_past(view.commit_ends)
    skipped += time.monotonic() - mark
    await asyncio.gather(*(reveal_report(m) for m in members))
    mark = time.monotonic()
    await node.skip_past(view.reveal_ends)
    skipped += time.monotonic() - mark
    sent = await market.finalize(customer, committee, TIMEOUT)
    result.note("customer", "finalize (committee)", sent)

    async def claim(member: Signer) -> None:
        result.note("witness", "claim", await market.claim(member, committee, TIMEOUT))

    await asyncio.gather(*(claim(m) for m in members[:2]))
    result.seconds = time.monotonic() - started - skipped
    # The per-witness figure is one witness's share of a round; registration is added below.
    result.roles["witness"] //= 3
    result.roles["provider"] //= len(providers)


async def run_mode(players: list[int], block_time: float | None) -> list[Round]:
    interval = block_time is not None
    mode = f"{block_time:g} s blocks" if interval else "automine"
    results: list[Round] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        open(Path(tmp) / "hardhat.log", "wb") as log,
        DevChain(free_port(), hardhat_project(ROOT), log=log) as node_process,
    ):
        node_process.start()
        driver = DevChainDriver(Web3(HTTPProvider(node_process.url)))
        token = driver.token()
        accounts = [
            Account.from_key(Web3.keccak(text=f"market bench {i}"))
            for i in range(1 + WITNESS_POOL + max(players))
        ]
        for account in accounts:
            driver.w3.provider.make_request("hardhat_setBalance", [account.address, hex(10**22)])  # type: ignore[arg-type]
            driver.fund(token, account, 2_000)
        async with connect(node_process.url, 30) as chain:
            node = Node(chain)
            ctk = await CloudToken.at(chain, token.address)
            operator = signer(driver.admin)
            deployed = await Market.deploy(chain, operator, token.address, POOL, TIMEOUT)
            market = await Market.at(chain, deployed.address, ctk)
            customer = signer(accounts[0])
            witnesses = {a.address: signer(a) for a in accounts[1 : 1 + WITNESS_POOL]}
            registration: list[int] = []
            for witness in witnesses.values():
                sent = await market.register(witness, POOL.min_stake, TIMEOUT)
                registration.append(sent.gas_used + sent.approval_gas)
            if interval:
                await node.rpc("evm_setAutomine", [False])
                await node.rpc("evm_setIntervalMining", [int(block_time * 1000)])
            providers_all = [signer(a) for a in accounts[1 + WITNESS_POOL :]]
            for n in players:
                result = Round(n, mode)
                await play(market, node, customer, providers_all[:n], witnesses, result, interval)
                result.roles["witness"] += int(statistics.mean(registration))
                result.gas["register (witness)"] = registration
                result.gas["deploy market (operator, once)"] = [deployed.gas_used]
                results.append(result)
                print(f"  {mode}: {n} player(s) in {result.seconds:.1f} s", file=sys.stderr)
    return results


def table(results: list[Round]) -> str:
    automine = [r for r in results if r.mode == "automine"]
    timed = [r for r in results if r.mode != "automine"]
    lines = ["### Gas per function (median of its calls in a round; automine)", ""]
    header = "| function | " + " | ".join(f"n = {r.players}" for r in automine) + " |"
    lines += [header, "|---|" + "---:|" * len(automine)]
    for function in automine[0].gas:
        cells = [f"{int(statistics.median(r.gas[function])):,}" for r in automine]
        lines.append(f"| {function} | " + " | ".join(cells) + " |")
    lines += ["", "### Gas per bidder as n grows (automine)", ""]
    lines += ["| n | commit: first / last / max | reveal: first / last / max |", "|---:|---|---|"]
    for r in automine:
        lines.append(
            f"| {r.players} | {r.commits[0]:,} / {r.commits[-1]:,} / {max(r.commits):,} | "
            f"{r.reveals[0]:,} / {r.reveals[-1]:,} / {max(r.reveals):,} |"
        )
    biggest = automine[-1]
    bids = sum(biggest.commits) + sum(biggest.reveals)
    lines += ["", "### Per role, and beside AWESOME's figures", ""]
    lines += ["| figure | watcher | AWESOME |", "|---|---:|---|"]
    lines.append(
        f"| {biggest.players} bids placed (commit + reveal, without approvals) | {bids / 1e6:.2f} M | "
        f"{AWESOME['100 bids placed']} (100 bids) |"
    )
    lines.append(
        f"| customer, whole auction (n = {biggest.players}, approvals in) | "
        f"{biggest.roles['customer'] / 1e6:.2f} M | {AWESOME['customer, whole auction']} |"
    )
    lines.append(
        f"| provider (approvals in) | {biggest.roles['provider'] / 1e6:.2f} M | {AWESOME['provider']} |"
    )
    lines.append(
        f"| witness (registration and approval in) | {biggest.roles['witness'] / 1e6:.2f} M | {AWESOME['witness']} |"
    )
    lines.append(
        f"| market deployment (operator, once for all auctions) | "
        f"{biggest.gas['deploy market (operator, once)'][0] / 1e6:.2f} M | (per auction: 4.33 M) |"
    )
    lines += ["", "### Latency of a whole round (s, without the auction's own windows)", ""]
    lines += [
        "| players | automine | " + (timed[0].mode if timed else "timed") + " | AWESOME |",
        "|---:|---:|---:|---|",
    ]
    for auto in automine:
        other = next((r for r in timed if r.players == auto.players), None)
        paper = {1: AWESOME["latency, 1 player"], 100: AWESOME["latency, 100 players"]}.get(
            auto.players, ""
        )
        lines.append(
            f"| {auto.players} | {auto.seconds:.1f} | {other.seconds:.1f} | {paper} |"
            if other
            else f"| {auto.players} | {auto.seconds:.1f} | - | {paper} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", default="1,10,50,100")
    parser.add_argument("--block-time", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    players = [int(p) for p in args.players.split(",")]
    results = asyncio.run(run_mode(players, None))
    if args.block_time > 0:
        results += asyncio.run(run_mode(players, args.block_time))
    print(table(results))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "players": r.players,
                        "mode": r.mode,
                        "seconds": r.seconds,
                        "gas": r.gas,
                        "roles": r.roles,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
