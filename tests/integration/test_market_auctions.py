"""The marketplace's eight auction models (issue 13) played on a real Hardhat node: forward
and reverse English, Dutch, first-price and second-price sealed bids, each with several
bidders, two slots, ties, a bid after the deadline, and, for the sealed ones, a replayed
commitment and a bidder who never reveals. Every test ends with the CTK books balanced:
what went into escrow came out again, to someone."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.logs import DISCARD

from tests.chainhelpers import CTK
from tests.markethelpers import Books, Market, MarketDriver, rules, salt, terms
from watcher.dev.devchain import DevChain
from watcher.domain.market import Mechanism, Side, bid_commitment

WITNESS_FEE = 9 * CTK
DEPOSIT = 40 * CTK


@dataclass
class Setup:
    driver: MarketDriver
    market: Market
    people: list[LocalAccount]


@pytest.fixture(scope="module")
def setup(timechain: DevChain) -> Setup:
    driver = MarketDriver(Web3(HTTPProvider(timechain.url)))
    token = driver.token()
    market = driver.deploy_market(token)
    return Setup(driver, market, driver.players(market, 0, 8))


def mirror(side: Side, offset: int) -> Callable[[int], int]:
    """Forward prices as given; reverse ones mirrored around `offset`, so one story serves
    both sides (a higher forward bid is a lower reverse one)."""
    return (lambda p: p * CTK) if side is Side.FORWARD else (lambda p: (offset - p) * CTK)


def standing(auction: Any) -> list[tuple[str, int]]:
    return [(entry[0], entry[2]) for entry in auction.functions.standing().call()]


@pytest.mark.parametrize("side", [Side.FORWARD, Side.REVERSE], ids=["forward", "reverse"])
def test_english_auction(setup: Setup, side: Side) -> None:
    driver, market = setup.driver, setup.market
    initiator, a, b, c, d = setup.people[:5]
    price = mirror(side, 110)
    books = Books(market.token, *setup.people[:5])
    now = driver.now()
    auction, _ = market.open(
        initiator,
        rules(side, Mechanism.ENGLISH, now=now, reserve=price(10), increment=2 * CTK),
        terms(deposit=DEPOSIT, witness_fee=WITNESS_FEE),
    )
    books.add_new(auction)
    bid = auction.functions.bid

    assert driver.refused(a, bid(price(9))).startswith("OutsideReserve(")
    driver.call(a, bid(price(10)))
    driver.call(b, bid(price(10)))  # a tie while a slot is free: ranks after the earlier bid
    assert standing(auction) == [(a.address, price(10)), (b.address, price(10))]
    assert (
        driver.refused(c, bid(price(11)))
        == f"BidNotBetter(worstStanding={price(10)}, increment={2 * CTK})"
    )
    escrow_b = books.balance(b)
    driver.call(c, bid(price(12)))  # displaces b, refunded at once
    refund = price(10) + WITNESS_FEE if side is Side.FORWARD else DEPOSIT
    assert books.balance(b) == escrow_b + refund
    assert driver.refused(a, bid(price(14))) == "AlreadyStanding()"
    driver.call(d, bid(price(12)))  # beats a's 10 by the increment; ties c's 12, after it
    assert standing(auction) == [(c.address, price(12)), (d.address, price(12))]
    driver.call(b, bid(price(14)))
    assert standing(auction) == [(b.address, price(14)), (c.address, price(12))]
    assert driver.refused(a, auction.functions.settle()) == "StillRunning()"

    driver.jump_to(auction.functions.rules().call()[3] + 1)
    assert driver.refused(a, bid(price(20))).startswith("BiddingClosed(")
    receipt = driver.call(a, auction.functions.settle())
    won = market.won(auction, receipt)
    assert [(who, fee) for who, _, fee in won] == [(b.address, price(14)), (c.address, price(12))]
    agreements = [agreement for _, agreement, _ in won]
    books.add_new(*agreements)

    # Losers are whole; winners' money (forward) or deposits (reverse) are in their agreements.
    assert books.change(a) == books.change(d) == 0
    if side is Side.FORWARD:
        assert books.change(b) == -(price(14) + WITNESS_FEE)
        assert books.change(c) == -(price(12) + WITNESS_FEE)
        assert books.change(initiator) == -2 * DEPOSIT
    else:
        assert books.change(b) == books.change(c) == -DEPOSIT
        assert books.change(initiator) == -(price(14) + price(12) + 2 * WITNESS_FEE)
    for winner, agreement, fee in won:
        assert books.balance(agreement) == fee + WITNESS_FEE + DEPOSIT
        customer, provider = (
            (winner, initiator.address) if side is Side.FORWARD else (initiator.address, winner)
        )
        assert agreement.functions.customer().call() == customer
        assert agreement.functions.provider().call() == provider
    books.assert_conserved(auction, *agreements, empty=[auction])
    assert driver.refused(a, auction.functions.settle()) == "NotOpen()"


@pytest.mark.parametrize("side", [Side.FORWARD, Side.REVERSE], ids=["forward", "reverse"])
def test_dutch_auction(setup: Setup, side: Side) -> None:
    driver, market = setup.driver, setup.market
    initiator, a, b, c, d, e = setup.people[:6]
    price = mirror(side, 120)
    books = Books(market.token, *setup.people[:6])
    now = driver.now()
    auction, _ = market.open(
        initiator,
        rules(
            side, Mechanism.DUTCH, now=now, reserve=price(20), start_price=price(100), bidding=800
        ),
        terms(deposit=DEPOSIT, witness_fee=WITNESS_FEE),
    )
    books.add_new(auction)
    opened = auction.functions.openedAt().call()
    ends = auction.functions.rules().call()[3]

    def clock(at: int) -> int:
        # The contract's rule, linear from the start price to the reserve, rounded to the start.
        span = abs(price(100) - price(20)) * (at - opened) // (ends - opened)
        return price(100) - span if side is Side.FORWARD else price(100) + span

    driver.jump_to(opened + 200)
    receipt = driver.call(a, auction.functions.accept(price(80)))
    (accepted,) = auction.events.Accepted().process_receipt(receipt, errors=DISCARD)
    at = driver.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert accepted.args["price"] == clock(at)
    # The start price is the loosest limit: the most a buyer pays, the least a provider takes.
    loose = price(100)
    assert driver.refused(a, auction.functions.accept(loose)) == "AlreadyStanding()"

    driver.jump_to(opened + 400)
    now_price = clock(opened + 401)
    # A limit the clock has passed is refused (forward: it asks more; reverse: it offers less).
    tight = now_price - 1 if side is Side.FORWARD else now_price + 1
    assert driver.refused(b, auction.functions.accept(tight)).startswith("PriceMoved(")

    # c and d go for the last slot in the same block: the earlier transaction wins.
    with driver.one_block():
        first = driver.send_unmined(c, auction.functions.accept(loose))
        second = driver.send_unmined(d, auction.functions.accept(loose))
    assert driver.w3.eth.get_transaction_receipt(first)["status"] == 1
    assert driver.w3.eth.get_transaction_receipt(second)["status"] == 0
    assert driver.refused(e, auction.functions.accept(loose)) == "SoldOut()"

    # Sold out: settled at once, before the deadline.
    receipt = driver.call(e, auction.functions.settle())
    won = market.won(auction, receipt)
    assert [who for who, _, _ in won] == [a.address, c.address]
    fees = [fee for _, _, fee in won]
    assert fees[0] == accepted.args["price"]
    books.add_new(*(agreement for _, agreement, _ in won))
    assert books.change(b) == books.change(d) == books.change(e) == 0
    if side is Side.FORWARD:
        assert books.change(a) == -(fees[0] + WITNESS_FEE)
        assert books.change(initiator) == -2 * DEPOSIT
    else:
        assert books.change(a) == books.change(c) == -DEPOSIT
        assert books.change(initiator) == -(sum(fees) + 2 * WITNESS_FEE)
    books.assert_conserved(auction, *(agreement for _, agreement, _ in won), empty=[auction])


@pytest.mark.parametrize("side", [Side.FORWARD, Side.REVERSE], ids=["forward", "reverse"])
def test_dutch_auction_nobody_takes_by_the_deadline(setup: Setup, side: Side) -> None:
    driver, market = setup.driver, setup.market
    initiator, a = setup.people[:2]
    price = mirror(side, 120)
    books = Books(market.token, initiator, a)
    auction, _ = market.open(
        initiator,
        rules(side, Mechanism.DUTCH, now=driver.now(), reserve=price(20), start_price=price(100)),
        terms(),
    )
    books.add_new(auction)
    assert books.change(initiator) < 0
    driver.jump_to(auction.functions.rules().call()[3] + 1)
    assert driver.refused(a, auction.functions.accept(price(20))).startswith("BiddingClosed(")
    receipt = driver.call(a, auction.functions.settle())
    assert market.won(auction, receipt) == []
    assert books.change(initiator) == 0
    books.assert_conserved(auction, empty=[auction])


SEALED = [
    (side, mechanism)
    for mechanism in (Mechanism.FIRST_PRICE_SEALED, Mechanism.SECOND_PRICE_SEALED)
    for side in (Side.FORWARD, Side.REVERSE)
]


@pytest.mark.parametrize(
    ("side", "mechanism"),
    SEALED,
    ids=[f"{s.name.lower()}-{m.name.lower()}" for s, m in SEALED],
)
def test_sealed_bid_auction(setup: Setup, side: Side, mechanism: Mechanism) -> None:
    driver, market, w3 = setup.driver, setup.market, setup.driver.w3
    initiator, a, b, c, d, e, f, copier = setup.people[:8]
    price = mirror(side, 110)
    deposit = 5 * CTK
    books = Books(market.token, *setup.people[:8])
    auction, _ = market.open(
        initiator,
        rules(side, mechanism, now=driver.now(), reserve=price(10), bid_deposit=deposit),
        terms(deposit=DEPOSIT, witness_fee=WITNESS_FEE),
    )
    books.add_new(auction)
    chain = w3.eth.chain_id
    bids = {a: price(30), b: price(25), c: price(25), d: price(40), e: price(5), f: price(20)}
    salts = {who: salt() for who in bids}

    def sealed(who: LocalAccount, value: int, key: bytes) -> bytes:
        return bid_commitment(chain, auction.address, who.address, value, key)

    # Commit in the order a, b, c, d, e, f: b before c, whose bids tie.
    assert auction.functions.commitment(a.address, bids[a], salts[a]).call() == sealed(
        a, bids[a], salts[a]
    )
    for who in (a, b, c, d, e):
        driver.call(who, auction.functions.commit(sealed(who, bids[who], salts[who])))
    # The copier replays a's commitment: refused, and useless anyway (it names a).
    copied = sealed(a, bids[a], salts[a])
    assert driver.refused(copier, auction.functions.commit(copied)) == "CommitmentTaken()"
    driver.call(f, auction.functions.commit(sealed(f, bids[f], salts[f])))
    assert driver.refused(a, auction.functions.reveal(bids[a], salts[a])).startswith(
        "BiddingNotClosed("
    )

    ends = auction.functions.rules().call()[3]
    driver.jump_to(ends + 1)
    late = initiator  # anyone: a commitment after the deadline is refused
    assert driver.refused(
        late, auction.functions.commit(sealed(late, price(50), salt()))
    ).startswith("BiddingClosed(")
    assert driver.refused(a, auction.functions.reveal(bids[a], salt())) == "WrongReveal()"
    assert driver.refused(copier, auction.functions.reveal(bids[a], salts[a])) == "NoCommitment()"
    # Revealing c before b does not change the tie: the earlier commitment ranks first.
    for who in (c, a, e, b, f):  # d never reveals
        driver.call(who, auction.functions.reveal(bids[who], salts[who]))
    assert driver.refused(a, auction.functions.reveal(bids[a], salts[a])) == "AlreadyRevealed()"
    best = [(a.address, price(30)), (b.address, price(25))]
    runner_up = [(c.address, price(25))] if mechanism is Mechanism.SECOND_PRICE_SEALED else []
    assert standing(auction) == best + runner_up  # e's bid is outside the reserve
    assert driver.refused(a, auction.functions.settle()) == "StillRunning()"  # d may still reveal

    driver.jump_to(auction.functions.rules().call()[4] + 1)
    receipt = driver.call(e, auction.functions.settle())
    won = market.won(auction, receipt)
    fees = (
        [price(25), price(25)]
        if mechanism is Mechanism.SECOND_PRICE_SEALED
        else [price(30), price(25)]
    )
    assert [(who, fee) for who, _, fee in won] == [(a.address, fees[0]), (b.address, fees[1])]
    agreements = [agreement for _, agreement, _ in won]
    books.add_new(*agreements)

    # d's deposit is forfeited, shared by the two winners: not given to the initiator,
    # whose sybil could otherwise set the price for free, nor to every revealer, since a
    # sybil's reveal costs nothing.
    share = deposit // 2
    assert books.change(d) == -deposit
    assert books.change(copier) == 0
    assert books.change(c) == books.change(e) == books.change(f) == 0
    if side is Side.FORWARD:
        assert books.change(a) == share - (fees[0] + WITNESS_FEE)
        assert books.change(b) == share - (fees[1] + WITNESS_FEE)
        assert books.change(initiator) == -2 * DEPOSIT
    else:
        assert books.change(a) == books.change(b) == share - DEPOSIT
        assert books.change(initiator) == -(sum(fees) + 2 * WITNESS_FEE)
    books.assert_conserved(auction, *agreements, empty=[auction])


def test_a_commitment_is_bound_to_its_auction(setup: Setup) -> None:
    """A commitment copied into another auction is accepted there as a hash (it is new
    there) but cannot be revealed by anyone: it names the first auction and bidder."""
    driver, market, w3 = setup.driver, setup.market, setup.driver.w3
    initiator, a, f = setup.people[0], setup.people[1], setup.people[6]
    books = Books(market.token, initiator, a, f)
    shape = rules(
        Side.FORWARD,
        Mechanism.FIRST_PRICE_SEALED,
        now=driver.now(),
        reserve=CTK,
        bid_deposit=5 * CTK,
    )
    first, _ = market.open(initiator, shape, terms())
    second, _ = market.open(initiator, shape, terms())
    books.add_new(first, second)
    key = salt()
    sealed = bid_commitment(w3.eth.chain_id, first.address, a.address, 7 * CTK, key)
    driver.call(a, first.functions.commit(sealed))
    driver.call(f, second.functions.commit(sealed))
    driver.jump_to(shape.bidding_ends + 1)
    assert driver.refused(f, second.functions.reveal(7 * CTK, key)) == "WrongReveal()"
    driver.call(a, first.functions.reveal(7 * CTK, key))
    driver.jump_to(shape.reveal_ends + 1)
    won = market.won(first, driver.call(a, first.functions.settle()))
    assert market.won(second, driver.call(a, second.functions.settle())) == []
    agreements = [agreement for _, agreement, _ in won]
    books.add_new(*agreements)
    # Nobody revealed in the second auction: the copier's deposit goes to its initiator.
    assert books.change(f) == -5 * CTK
    assert books.change(a) == -(7 * CTK + terms().witness_fee)
    books.assert_conserved(first, second, *agreements, empty=[first, second])


def test_an_auction_nobody_bid_in_can_be_cancelled(setup: Setup) -> None:
    driver, market = setup.driver, setup.market
    initiator, a = setup.people[:2]
    books = Books(market.token, initiator, a)
    shape = rules(
        Side.REVERSE, Mechanism.ENGLISH, now=driver.now(), reserve=50 * CTK, increment=CTK
    )
    auction, _ = market.open(initiator, shape, terms())
    books.add_new(auction)
    assert books.change(initiator) == -2 * (50 * CTK + terms().witness_fee)
    assert driver.refused(a, auction.functions.cancel()) == "NotInitiator()"
    driver.call(initiator, auction.functions.cancel())
    assert books.change(initiator) == 0
    assert driver.refused(a, auction.functions.bid(40 * CTK)) == "NotOpen()"
    books.assert_conserved(auction, empty=[auction])

    taken, _ = market.open(initiator, shape, terms())
    driver.call(a, taken.functions.bid(40 * CTK))
    assert driver.refused(initiator, taken.functions.cancel()) == "HasBids()"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"slots": 0}, "InvalidRules(reason=slots must be 1 to 10)"),
        ({"slots": 11}, "InvalidRules(reason=slots must be 1 to 10)"),
        ({"reserve": 0}, "InvalidRules(reason=the reserve price must be more than 0)"),
        ({"increment": 0}, "InvalidRules(reason=an English auction needs an increment)"),
        ({"bidding": -10}, "InvalidRules(reason=bidding must end in the future)"),
        (
            {"bid_deposit": 1},
            "InvalidRules(reason=only sealed auctions have a reveal end and a bid deposit)",
        ),
    ],
)
def test_bad_rules_are_refused_with_a_reason(
    setup: Setup, change: dict[str, int], reason: str
) -> None:
    driver, market = setup.driver, setup.market
    values: dict[str, Any] = {"reserve": 5 * CTK, "increment": CTK, "bidding": 600, **change}
    shape = rules(Side.FORWARD, Mechanism.ENGLISH, now=driver.now(), **values)
    driver.approve(market, setup.people[0])
    call = market.contract.functions.openAuction(shape.as_tuple(), terms().as_tuple())
    assert driver.refused(setup.people[0], call) == reason


@pytest.mark.parametrize(
    ("side", "mechanism", "change", "deposit", "reason"),
    [
        (
            Side.FORWARD,
            Mechanism.FIRST_PRICE_SEALED,
            {"bid_deposit": CTK // 100},
            DEPOSIT,
            "a sealed auction's bid deposit is at least 1% of the reserve",
        ),
        (Side.REVERSE, Mechanism.ENGLISH, {}, 0, "a reverse auction needs a provider deposit"),
        (
            Side.REVERSE,
            Mechanism.ENGLISH,
            {"increment": 5 * CTK},
            DEPOSIT,
            "a reverse English increment must be below the reserve",
        ),
    ],
)
def test_rules_that_would_make_a_shill_or_a_jam_free_are_refused(
    setup: Setup,
    side: Side,
    mechanism: Mechanism,
    change: dict[str, int],
    deposit: int,
    reason: str,
) -> None:
    driver, market = setup.driver, setup.market
    values: dict[str, Any] = {"reserve": 5 * CTK, **change}
    if mechanism is Mechanism.ENGLISH:
        values.setdefault("increment", CTK)
    shape = rules(side, mechanism, now=driver.now(), **values)
    call = market.contract.functions.openAuction(
        shape.as_tuple(), terms(deposit=deposit).as_tuple()
    )
    assert driver.refused(setup.people[0], call) == f"InvalidRules(reason={reason})"


@pytest.mark.parametrize(
    ("witnesses", "quorum", "reason", "extra"),
    [
        (2, 2, "a committee has 3 to 21 witnesses", None),
        (3, 3, "the quorum M must be more than half of N and less than N", None),
        (4, 2, "the quorum M must be more than half of N and less than N", None),
        # Locking witnesses' stakes for years, or for nothing, is refused.
        (
            3,
            2,
            "the service window must be longer than 0 s and at most 400 days",
            {"service": 401 * 86_400},
        ),
        (3, 2, "the report and reveal windows must be 10 minutes to 30 days", {"window": 599}),
        (
            3,
            2,
            "the report and reveal windows must be 10 minutes to 30 days",
            {"window": 31 * 86_400},
        ),
        (
            3,
            2,
            "the witness fee must pay every seat the pool's minimum",
            {"witness_fee": 3 * CTK - 1},
        ),
    ],
)
def test_bad_terms_are_refused_with_a_reason(
    setup: Setup, witnesses: int, quorum: int, reason: str, extra: dict[str, int] | None
) -> None:
    driver, market = setup.driver, setup.market
    shape = rules(Side.REVERSE, Mechanism.ENGLISH, now=driver.now(), reserve=5 * CTK, increment=CTK)
    changes = dict(extra or {})
    window = changes.pop("window", None)
    agreed = terms(witnesses=witnesses, quorum=quorum, **changes)
    if window is not None:
        agreed = dataclasses.replace(agreed, report_seconds=window)
    call = market.contract.functions.openAuction(shape.as_tuple(), agreed.as_tuple())
    driver.approve(market, setup.people[0])
    assert driver.refused(setup.people[0], call) == f"InvalidTerms(reason={reason})"
