"""`watcher market` for every role, on a real Hardhat node (issue 13): an operator deploys
the market; a customer opens a reverse second-price sealed-bid auction for two slots;
four providers commit, three reveal; it settles at a uniform price; one winner confirms
and the other does not; witnesses register, are drawn, report and reveal; the customer's
claim finalizes the committee and pays the compensation; a witness claims its reward. The
CLI's mistakes and refusals are one line each, and the books balance at the end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from web3 import HTTPProvider, Web3

from tests.chainhelpers import CTK
from tests.conftest import CliResult
from tests.markethelpers import Books, MarketDriver
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.dev.devchain import DevChain

Cli = Callable[..., CliResult]
CUSTOMER = 1
PROVIDERS = (2, 3, 4, 5)
WITNESSES = (6, 7, 8, 9, 10)


@pytest.fixture
def chain(timechain: DevChain, monkeypatch: pytest.MonkeyPatch) -> MarketDriver:
    monkeypatch.setenv("WATCHER_RPC_URL", timechain.url)
    return MarketDriver(Web3(HTTPProvider(timechain.url)))


def ok(result: CliResult) -> str:
    assert result.code == 0, result.err
    return result.out


def as_(index: int, *args: str) -> tuple[str, ...]:
    return (*args, "--dev-account", str(index))


def test_a_whole_round_through_the_cli(
    cli: Cli, chain: MarketDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = json.loads(ok(cli("token", "deploy", "--dev-account", "0", "--json")))["address"]
    monkeypatch.setenv("WATCHER_TOKEN_ADDRESS", token)
    ctk = chain.contract("CloudToken", token)
    people = [dev_account(i) for i in (CUSTOMER, *PROVIDERS, *WITNESSES)]
    for person in people:
        chain.fund(ctk, person, 1000)

    # Mistakes first: nothing configured, bad options, all one line.
    missing = cli("market", "show", dev_account(1).address)
    assert missing.code == 2 and missing.err.startswith("watcher: error: no market configured")
    market = ok(cli("market", "deploy", "--dev-account", "0")).strip()
    monkeypatch.setenv("WATCHER_MARKET_ADDRESS", market)
    terms = tmp_path / "sla.txt"
    terms.write_text("99.9 % uptime of one t3.micro for an hour, measured by HTTP probes\n")
    base = (
        "market", "open", "--side", "reverse", "--model", "second-price", "--slots", "2",
        "--reserve", "100", "--bid-deposit", "5", "--bidding", "10m", "--revealing", "10m",
        "--terms", str(terms), "--service", "1h", "--deposit", "40", "--witness-fee", "9",
    )  # fmt: skip
    for wrong, message in [
        (("--compensation", "120%"), "must be at most 100%"),
        (("--bidding", "soon"), "a duration must be a whole number and a unit"),
        (
            ("--quorum", "3"),
            "InvalidTerms(reason=the quorum M must be more than half of N and less than N)",
        ),
    ]:
        refused = cli(*as_(CUSTOMER, *base, *wrong))
        assert refused.code != 0 and message in refused.err and refused.err.count("\n") == 1, (
            refused.err
        )

    books = Books(ctk, *people)
    opened = cli(*as_(CUSTOMER, *base))
    auction = ok(opened).strip()
    assert "218 CTK in escrow" in opened.err  # 2 x (100 + 9)
    shown = ok(cli("market", "show", auction))  # reading needs no key
    assert "reverse second-price, 2 slot(s), reserve 100 CTK, open" in shown
    assert "each agreement: 1 hour of service" in shown
    assert "next: bidding goes on until" in shown
    stranger = cli("market", "show", dev_account(11).address)
    assert stranger.code == 1 and "is not an auction, agreement or committee" in stranger.err
    assert "the Market" in ok(cli("market", "show", market))
    above = cli(*as_(2, "market", "commit", auction, "101"))
    assert above.code == 1 and "must be at most the reserve 100 CTK" in above.err
    # Providers: three reveal, one (5) never does.
    prices = {2: "80", 3: "85", 4: "90", 5: "70"}
    for provider, price in prices.items():
        committed = ok(cli(*as_(provider, "market", "commit", auction, price)))
        assert "reveal it after" in committed
    again = cli(*as_(2, "market", "commit", auction, "60"))
    assert again.code == 1 and "has already committed" in again.err
    too_early = cli(*as_(2, "market", "reveal", auction))
    assert too_early.code == 1 and "bidding is open until" in too_early.err
    assert "(BiddingNotClosed)" in too_early.err
    rules = chain.rules_of(auction)
    chain.jump_to(rules.bidding_ends + 1)
    for provider in (3, 2, 4):
        assert "deposit returned" in ok(cli(*as_(provider, "market", "reveal", auction)))
    nothing = cli(*as_(CUSTOMER, "market", "reveal", auction))
    assert nothing.code == 1 and "nothing was committed" in nothing.err
    chain.jump_to(rules.reveal_ends + 1)
    settled = ok(cli(*as_(CUSTOMER, "market", "settle", auction)))
    # Second price: both winners are paid the best losing bid, 90.
    lines = settled.splitlines()
    assert lines[0].startswith(f"settled auction {auction}: 2 winner(s)")
    assert f"{dev_account(2).address} won agreement" in lines[1] and lines[1].endswith("for 90 CTK")
    assert f"{dev_account(3).address} won agreement" in lines[2] and lines[2].endswith("for 90 CTK")
    assert "5 CTK of unrevealed bid deposits forfeited, shared by the 2 winner(s)" in settled
    first, second = (line.split("won agreement ")[1].split()[0] for line in lines[1:3])

    wrong_party = cli(*as_(CUSTOMER, "market", "confirm", first))
    assert (
        wrong_party.code == 1 and "only the agreement's provider may confirm it" in wrong_party.err
    )
    for witness in WITNESSES:
        ok(cli(*as_(witness, "market", "register", "100")))
    confirmed = ok(cli(*as_(2, "market", "confirm", first)))
    assert "watcher market draw" in confirmed
    early = cli(*as_(CUSTOMER, "market", "draw", first))
    assert early.code == 1 and "try again after block" in early.err
    chain.mine_blocks(3)
    drawn = ok(cli(*as_(CUSTOMER, "market", "draw", first)))
    members = drawn.split(": ", 1)[1].split(" (tx")[0].split(", ")
    assert len(members) == 3
    index_of = {dev_account(i).address: i for i in WITNESSES}
    voters = [index_of[m] for m in members]
    committee = drawn.split("drew committee ")[1].split(":")[0]
    ok(cli(*as_(voters[0], "market", "report", first, "--met")))
    changed = ok(cli(*as_(voters[0], "market", "report", first, "--violated")))
    assert "in place of your earlier one" in changed
    ok(cli(*as_(voters[1], "market", "report", first, "--violated")))
    outsider = next(i for i in WITNESSES if i not in voters)
    stranger = cli(*as_(outsider, "market", "report", first, "--met"))
    assert stranger.code == 1 and "does not sit on committee" in stranger.err
    judges = chain.contract("WitnessCommittee", committee).functions
    chain.jump_to(judges.commitEnds().call() + 1)
    for voter in voters[:2]:
        assert "violated" in ok(cli(*as_(voter, "market", "reveal", committee)))
    not_yet = cli(*as_(CUSTOMER, "market", "claim", first))
    assert not_yet.code == 1 and "nothing is due yet" in not_yet.err
    chain.jump_to(judges.revealEnds().call() + 1)
    claimed = ok(cli(*as_(CUSTOMER, "market", "claim", first)))
    assert "violation confirmed (2 of 2 revealed reports said violated)" in claimed
    # 30 % of the 90 CTK fee and the silent witness's unearned 3 CTK share; the provider
    # keeps 63 and its 40 deposit; two witnesses earned 3 each.
    assert "customer 30 CTK, provider 103 CTK, witnesses 6 CTK" in claimed
    ok(cli(*as_(voters[0], "market", "claim", committee)))
    shown = ok(cli("market", "show", first))
    assert "closed: a violation was confirmed" in shown

    # The second winner never confirmed: after its deadline anyone cancels it.
    chain.jump_to(chain.contract("ServiceAgreement", second).functions.confirmBy().call() + 1)
    cancelled = ok(cli(*as_(CUSTOMER, "market", "cancel", second)))
    assert "99 CTK back to the customer with the provider's 40 CTK deposit" in cancelled

    # The books: everyone's CTK, the market's contracts included, sum to what they held.
    contracts = chain.made_by(market)
    books.add_new(*contracts)
    silent = voters[2]
    # A right report earns its 3 CTK share and half the silent one's 20 CTK penalty.
    witness_share = 3 * CTK + 10 * CTK
    # Both staked 100 CTK, still in the pool: less 20 for the silent one's silence.
    assert books.change(dev_account(voters[0])) == -100 * CTK + witness_share
    assert books.change(dev_account(silent)) == -100 * CTK
    pool = contracts[0].functions
    assert pool.witnesses(dev_account(silent).address).call()[0] == 80 * CTK
    assert books.change(dev_account(5)) == -5 * CTK
    books.assert_conserved(*contracts)
