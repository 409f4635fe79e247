"""Service agreements and their witness committees (issue 13) on a real Hardhat node: a
violation confirmed by M of N witnesses compensates the customer and pays the witnesses by
the payoff rule; an unconfirmed report changes nothing; a silent witness is penalized; a
provider who never confirms forfeits its deposit; the committee is drawn by sortition from
a block mined after the agreement was confirmed, weighted by reputation, never the
agreement's own parties. Every test ends with the CTK books balanced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.logs import DISCARD

from tests.chainhelpers import CTK
from tests.markethelpers import POOL_RULES, Books, Market, MarketDriver, rules, salt, terms
from watcher.dev.devchain import DevChain
from watcher.domain.market import AgreementTerms, Mechanism, Side, report_commitment

FEE = 80 * CTK
DEPOSIT = 40 * CTK
WITNESS_FEE = 9 * CTK
STAKE = 100 * CTK
SILENCE = POOL_RULES["silencePenalty"]
DISSENT = POOL_RULES["dissentPenalty"]


@dataclass
class Setup:
    driver: MarketDriver
    market: Market
    customer: LocalAccount
    provider: LocalAccount
    witnesses: list[LocalAccount]


@pytest.fixture(scope="module")
def setup(timechain: DevChain) -> Setup:
    driver = MarketDriver(Web3(HTTPProvider(timechain.url)))
    token = driver.token()
    market = driver.deploy_market(token)
    customer, provider, *witnesses = driver.players(market, 100, 7)
    market.register_witnesses(witnesses, STAKE)
    return Setup(driver, market, customer, provider, witnesses)


@dataclass
class Round:
    agreement: Any
    committee: Any
    members: list[LocalAccount]


def offered(setup: Setup, market: Market | None = None, **changes: Any) -> Any:
    """An agreement for FEE between the customer and the provider, won in a one-slot
    reverse English auction."""
    market = market or setup.market
    driver = setup.driver
    shape = rules(
        Side.REVERSE,
        Mechanism.ENGLISH,
        now=driver.now(),
        slots=1,
        reserve=100 * CTK,
        increment=CTK,
        bidding=60,
    )
    agreement_terms = terms(deposit=DEPOSIT, witness_fee=WITNESS_FEE, **changes)
    auction, _ = market.open(setup.customer, shape, agreement_terms)
    driver.call(setup.provider, auction.functions.bid(FEE))
    driver.jump_to(shape.bidding_ends + 1)
    ((_, agreement, fee),) = market.won(
        auction, driver.call(setup.customer, auction.functions.settle())
    )
    assert fee == FEE
    return agreement


def confirmed(setup: Setup, market: Market | None = None, **changes: Any) -> Round:
    """An agreement its provider confirmed, with its committee drawn."""
    market = market or setup.market
    driver = setup.driver
    agreement = offered(setup, market, **changes)
    receipt = driver.call(setup.provider, agreement.functions.confirm())
    (event,) = agreement.events.Confirmed().process_receipt(receipt, errors=DISCARD)
    committee = market.committee(event.args["committee"])
    assert driver.refused(setup.customer, committee.functions.draw()).startswith("SeedNotMined(")
    driver.mine_blocks(3)  # the seed block and one more: its hash is readable from then on
    receipt = driver.call(setup.customer, committee.functions.draw())
    (drawn,) = committee.events.Drawn().process_receipt(receipt, errors=DISCARD)
    by_address = {w.address: w for w in setup.witnesses}
    members = [by_address[address] for address in drawn.args["members"]]
    return Round(agreement, committee, members)


def report(setup: Setup, round_: Round, votes: dict[LocalAccount, bool]) -> None:
    """Members commit their votes, then reveal them after the commit window; a member not
    in `votes` stays silent."""
    driver, committee = setup.driver, round_.committee
    chain = driver.w3.eth.chain_id
    salts = {who: salt() for who in votes}
    for who, violated in votes.items():
        sealed = report_commitment(chain, committee.address, who.address, violated, salts[who])
        driver.call(who, committee.functions.commit(sealed))
    first = next(iter(votes), None)
    if first is not None:
        assert driver.refused(
            first, committee.functions.reveal(votes[first], salts[first])
        ).startswith("RevealNotOpen(")
    driver.jump_to(committee.functions.commitEnds().call() + 1)
    for who, violated in votes.items():
        driver.call(who, committee.functions.reveal(violated, salts[who]))
    driver.jump_to(committee.functions.revealEnds().call() + 1)


def small_market(setup: Setup, witnesses: list[LocalAccount], stake: int = STAKE) -> Market:
    """A market of its own whose pool holds just `witnesses`, each staking `stake`; the
    customer, the provider and the setup's first four witnesses have approved it."""
    small = setup.driver.deploy_market(setup.market.token)
    for who in (setup.customer, setup.provider, *setup.witnesses[:4]):
        setup.driver.approve(small, who)
    small.register_witnesses(witnesses, stake)
    return small


def reputation(setup: Setup, who: LocalAccount) -> int:
    value: int = setup.market.pool.functions.witnesses(who.address).call()[2]
    return value


def stake(setup: Setup, who: LocalAccount) -> int:
    value: int = setup.market.pool.functions.witnesses(who.address).call()[0]
    return value


def books_for(setup: Setup) -> Books:
    market = setup.market
    return Books(
        market.token, setup.customer, setup.provider, *setup.witnesses, market.pool.address
    )


def test_a_violation_confirmed_by_m_of_n_compensates_the_customer_and_pays_the_witnesses(
    setup: Setup,
) -> None:
    driver, market = setup.driver, setup.market
    books = books_for(setup)
    round_ = confirmed(setup)
    agreement, committee = round_.agreement, round_.committee
    books.add_new(agreement, committee)
    first, second, silent = round_.members
    assert {setup.customer.address, setup.provider.address}.isdisjoint(
        m.address for m in round_.members
    )
    before = {m.address: (reputation(setup, m), stake(setup, m)) for m in round_.members}

    report(setup, round_, {first: True, second: True})  # 2 of 3: confirmed; the third is silent
    receipt = driver.call(setup.customer, committee.functions.finalize())
    (closed,) = agreement.events.Closed().process_receipt(receipt, errors=DISCARD)
    assert closed.args["violated"] is True
    share = WITNESS_FEE // 3
    compensation = FEE * 3000 // 10_000  # EC2's 30 % credit
    # The customer: the fee and witness fee went in at settlement; back come the 30 % and
    # the silent witness's unearned share. Its penalty goes to the two who judged right.
    assert books.change(setup.customer) == -(FEE + WITNESS_FEE) + compensation + (
        WITNESS_FEE - 2 * share
    )
    # The provider: its deposit back and the fee less the compensation.
    assert books.change(setup.provider) == FEE - compensation
    for member in (first, second):
        driver.call(member, committee.functions.claim())
        assert books.change(member) == share + SILENCE // 2
        assert reputation(setup, member) == before[member.address][0] + 2
        assert stake(setup, member) == before[member.address][1]
    assert books.change(silent) == 0
    assert stake(setup, silent) == before[silent.address][1] - SILENCE
    assert reputation(setup, silent) == before[silent.address][0] - 10
    assert driver.refused(first, committee.functions.claim()) == "NothingOwed()"
    assert driver.refused(setup.customer, committee.functions.finalize()) == "AlreadyFinalized()"
    books.assert_conserved(market.pool, agreement, committee, empty=[agreement, committee])


def test_an_unconfirmed_report_changes_nothing_and_dissent_is_penalized(setup: Setup) -> None:
    driver, market = setup.driver, setup.market
    books = books_for(setup)
    round_ = confirmed(setup)
    agreement, committee = round_.agreement, round_.committee
    books.add_new(agreement, committee)
    dissenter, second, third = round_.members
    before = {m.address: (reputation(setup, m), stake(setup, m)) for m in round_.members}

    report(setup, round_, {dissenter: True, second: False, third: False})
    receipt = driver.call(setup.provider, committee.functions.finalize())
    (closed,) = agreement.events.Closed().process_receipt(receipt, errors=DISCARD)
    assert closed.args["violated"] is False
    share = WITNESS_FEE // 3
    # Two of three denied it (M = 2): the provider is paid in full, as if nobody had
    # reported; the customer gets back what the dissenter did not earn; the dissenter's
    # penalty goes to the two who judged right.
    assert books.change(setup.provider) == FEE
    assert books.change(setup.customer) == -(FEE + WITNESS_FEE) + (WITNESS_FEE - 2 * share)
    for member in (second, third):
        driver.call(member, committee.functions.claim())
        assert books.change(member) == share + DISSENT // 2
    assert stake(setup, dissenter) == before[dissenter.address][1] - DISSENT
    assert reputation(setup, dissenter) == before[dissenter.address][0] - 5
    books.assert_conserved(market.pool, agreement, committee, empty=[agreement, committee])


def test_a_copied_report_cannot_be_revealed_and_counts_as_silence(setup: Setup) -> None:
    """The copier cannot open what it copied (it names the honest witness), so it is
    silent; with the third silent too, neither side reaches M: undecided. The agreement
    closes as not violated, and the one witness who reported is paid, not penalized for
    a majority nobody formed, and takes the silent ones' penalties."""
    driver, market = setup.driver, setup.market
    books = books_for(setup)
    round_ = confirmed(setup)
    committee = round_.committee
    books.add_new(round_.agreement, committee)
    honest, copier, third = round_.members
    key = salt()
    sealed = report_commitment(driver.w3.eth.chain_id, committee.address, honest.address, True, key)
    driver.call(honest, committee.functions.commit(sealed))
    driver.call(copier, committee.functions.commit(sealed))
    driver.jump_to(committee.functions.commitEnds().call() + 1)
    driver.call(honest, committee.functions.reveal(True, key))
    assert driver.refused(copier, committee.functions.reveal(True, key)) == "WrongReveal()"
    driver.jump_to(committee.functions.revealEnds().call() + 1)
    driver.call(third, committee.functions.finalize())
    assert round_.agreement.functions.violated().call() is False
    assert books.change(setup.provider) == FEE
    share = WITNESS_FEE // 3
    assert books.change(setup.customer) == -FEE - share
    driver.call(honest, committee.functions.claim())
    assert books.change(honest) == share + 2 * SILENCE
    books.assert_conserved(
        market.pool, round_.agreement, committee, empty=[round_.agreement, committee]
    )


def test_a_provider_who_never_confirms_forfeits_its_deposit(setup: Setup) -> None:
    driver = setup.driver
    books = books_for(setup)
    agreement = offered(setup)
    books.add_new(agreement)
    assert driver.refused(setup.customer, agreement.functions.cancel()).startswith(
        "ConfirmationOpen("
    )
    assert driver.refused(setup.customer, agreement.functions.confirm()) == "NotProvider()"
    driver.jump_to(agreement.functions.confirmBy().call() + 1)
    assert driver.refused(setup.provider, agreement.functions.confirm()).startswith(
        "ConfirmationClosed("
    )
    driver.call(setup.customer, agreement.functions.cancel())
    assert books.change(setup.customer) == DEPOSIT
    assert books.change(setup.provider) == -DEPOSIT
    books.assert_conserved(agreement, empty=[agreement])


def test_without_enough_witnesses_no_committee_is_drawn_and_the_provider_is_paid(
    setup: Setup,
) -> None:
    driver = setup.driver
    small = small_market(setup, setup.witnesses[:2])
    books = Books(small.token, setup.customer, setup.provider, small.pool.address)
    agreement = offered(setup, small)
    books.add_new(agreement)
    driver.call(setup.provider, agreement.functions.confirm())
    committee = small.committee(agreement.functions.committee().call())
    books.add_new(committee)
    driver.mine_blocks(3)  # the seed block and one more: its hash is readable from then on
    assert (
        driver.refused(setup.customer, committee.functions.draw())
        == "NotEnoughWitnesses(found=2, wanted=3)"
    )
    assert driver.refused(setup.customer, committee.functions.finalize()).startswith("NotOver(")
    driver.jump_to(committee.functions.revealEnds().call() + 1)
    driver.call(setup.customer, committee.functions.finalize())
    assert books.change(setup.provider) == FEE
    assert books.change(setup.customer) == -FEE
    books.assert_conserved(small.pool, agreement, committee, empty=[agreement, committee])


def expected_draw(
    seed: bytes, roster: list[str], count: int, info: dict[str, tuple[int, ...]], skip: set[str]
) -> list[str]:
    """WitnessPool.draw written again: which witnesses the seed picks."""
    chosen: list[str] = []

    def eligible(candidate: str) -> bool:
        stake_, locked, reputation_, since, committed_at = info[candidate]
        return (
            candidate not in skip
            and since < committed_at
            and stake_ - locked >= POOL_RULES["dutyStake"]
            and reputation_ >= POOL_RULES["minReputation"]
            and candidate not in chosen
        )

    def word(index: int) -> int:
        return int.from_bytes(Web3.keccak(encode(["bytes32", "uint256"], [seed, index])), "big")

    tries = count * 8 + 32
    for attempt in range(tries):
        if len(chosen) == count:
            break
        pick = word(attempt)
        candidate = roster[pick % len(roster)]
        if eligible(candidate) and (pick >> 128) % 200 < info[candidate][2]:
            chosen.append(candidate)
    start = word(tries)
    for step in range(min(len(roster), 256)):
        if len(chosen) == count:
            break
        candidate = roster[(start + step) % len(roster)]
        if eligible(candidate):
            chosen.append(candidate)
    return chosen


def test_the_committee_is_the_one_a_later_block_hash_picks(setup: Setup) -> None:
    """Sortition: the members follow from the hash of a block mined after confirmation
    and nothing else; a seed block whose hash is gone (256 blocks on) is replaced."""
    driver, market, w3 = setup.driver, setup.market, setup.driver.w3
    books = books_for(setup)
    agreement = offered(setup)
    receipt = driver.call(setup.provider, agreement.functions.confirm())
    committee = market.committee(agreement.functions.committee().call())
    books.add_new(agreement, committee)
    seed_block = committee.functions.seedBlock().call()
    assert seed_block > receipt["blockNumber"]
    (formed,) = market.contract.events.CommitteeFormed().process_receipt(receipt, errors=DISCARD)
    assert formed.args["seedBlock"] == seed_block

    driver.mine_blocks(300)
    receipt = driver.call(setup.customer, committee.functions.draw())
    (reseeded,) = committee.events.Reseeded().process_receipt(receipt, errors=DISCARD)
    seed_block = reseeded.args["seedBlock"]
    assert seed_block > receipt["blockNumber"]
    assert committee.functions.members().call() == []

    driver.mine_blocks(3)  # the seed block and one more: its hash is readable from then on
    pool = market.pool
    # The roster as it stood at the commitment, and each stake's last change.
    frozen = committee.functions.rosterSize().call()
    committed_at = committee.functions.committedAt().call()
    roster = [pool.functions.roster(i).call() for i in range(frozen)]
    info = {
        address: (
            *pool.functions.witnesses(address).call()[:3],
            pool.functions.witnesses(address).call()[5],
            committed_at,
        )
        for address in roster
    }
    seed = Web3.keccak(
        encode(["bytes32", "address"], [w3.eth.get_block(seed_block)["hash"], committee.address])
    )
    driver.call(setup.customer, committee.functions.draw())
    members = committee.functions.members().call()
    skip = {setup.customer.address, setup.provider.address}
    assert members == expected_draw(seed, roster, 3, info, skip)  # type: ignore[arg-type]
    assert driver.refused(setup.customer, committee.functions.draw()) == "AlreadyDrawn()"
    books.assert_conserved(market.pool, agreement, committee)


def test_reputation_lost_to_silence_keeps_a_witness_off_committees(setup: Setup) -> None:
    """A pool of exactly three: all three sit on every committee until one, silent each
    time, falls below the minimum reputation; then its registration ends (its stake goes
    back) and it cannot come back. A witness who joins after an agreement was confirmed is
    not drawn for it (the roster is frozen at the commitment), only for later ones. The
    customer and provider, registered as witnesses too, never judge their own agreement."""
    driver = setup.driver
    people = [setup.customer, setup.provider, *setup.witnesses[:4]]
    honest_one, honest_two, silent, newcomer = setup.witnesses[:4]
    # Stakes large enough that five penalties leave a duty stake free: only reputation counts.
    small = small_market(
        setup, [setup.customer, setup.provider, honest_one, honest_two, silent], 3 * STAKE
    )
    books = Books(small.token, *people, small.pool.address)
    made: list[Any] = []
    rounds = 0
    while reputation_in(small, silent) >= POOL_RULES["minReputation"]:
        round_ = confirmed(setup, small)
        made += [round_.agreement, round_.committee]
        assert sorted(m.address for m in round_.members) == sorted(
            w.address for w in (honest_one, honest_two, silent)
        )
        report(setup, round_, {honest_one: False, honest_two: False})
        driver.call(honest_one, round_.committee.functions.finalize())
        rounds += 1
    assert rounds == 5  # 100 - 5 x 10 = 50, below 60
    # Ejected with what is left of its stake: 300 less five silence penalties.
    assert small.pool.functions.witnesses(silent.address).call()[0] == 0
    assert books.change(silent) == 3 * STAKE - 5 * SILENCE  # staked before the books opened
    assert driver.refused(silent, small.pool.functions.register(STAKE)).startswith(
        "ReputationTooLow(reputation=50"
    )
    agreement = offered(setup, small)
    driver.call(setup.provider, agreement.functions.confirm())
    committee = small.committee(agreement.functions.committee().call())
    driver.mine_blocks(3)  # the seed block and one more: its hash is readable from then on
    assert (
        driver.refused(setup.customer, committee.functions.draw())
        == "NotEnoughWitnesses(found=2, wanted=3)"
    )
    small.register_witnesses([newcomer], STAKE)
    assert (
        driver.refused(setup.customer, committee.functions.draw())
        == "NotEnoughWitnesses(found=2, wanted=3)"
    )
    later = confirmed(setup, small)
    assert sorted(m.address for m in later.members) == sorted(
        w.address for w in (honest_one, honest_two, newcomer)
    )
    books.add_new(*made, agreement, committee, later.agreement, later.committee)
    books.assert_conserved(small.pool, *made, committee, later.committee)


def reputation_in(market: Market, who: LocalAccount) -> int:
    value: int = market.pool.functions.witnesses(who.address).call()[2]
    return value


def test_a_witness_on_duty_cannot_take_its_stake_and_keeps_its_record_when_it_returns(
    setup: Setup,
) -> None:
    driver = setup.driver
    small = small_market(setup, setup.witnesses[:3])
    pool = small.pool
    books = Books(small.token, *setup.witnesses[:3], setup.customer, setup.provider, pool.address)
    assert (
        driver.refused(setup.customer, pool.functions.register(STAKE - 1))
        == f"StakeTooLow(stake={STAKE - 1}, minStake={STAKE})"
    )
    round_ = confirmed(setup, small)
    member = round_.members[0]
    assert (
        driver.refused(member, pool.functions.withdraw(STAKE))
        == f"StakeLocked(free={STAKE - POOL_RULES['dutyStake']})"
    )
    report(setup, round_, {})  # everyone silent
    driver.call(setup.customer, round_.committee.functions.finalize())
    left = pool.functions.witnesses(member.address).call()[0]
    assert left == STAKE - SILENCE
    assert driver.refused(member, pool.functions.withdraw(left - 1)).startswith("StakeTooLow(")
    driver.call(member, pool.functions.withdraw(left))  # all of it: leaves the pool
    assert pool.functions.witnesses(member.address).call()[0] == 0
    assert pool.functions.rosterSize().call() == 3  # the roster only grows
    assert books.change(member) == STAKE - SILENCE  # it had staked STAKE before the books opened
    small.register_witnesses([member], STAKE)
    assert reputation_in(small, member) == 90  # not washed by leaving
    books.add_new(round_.agreement, round_.committee)
    books.assert_conserved(pool, round_.agreement, round_.committee, empty=[round_.agreement])


def test_terms_hash_and_window_are_on_chain(setup: Setup) -> None:
    books = books_for(setup)
    agreement = offered(setup, service=7200)
    books.add_new(agreement)
    on_chain = AgreementTerms.from_tuple(tuple(agreement.functions.terms().call()))
    assert on_chain.terms_hash == terms().terms_hash
    assert on_chain.service_seconds == 7200
    receipt = setup.driver.call(setup.provider, agreement.functions.confirm())
    started = setup.driver.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert agreement.functions.startedAt().call() == started
    assert agreement.functions.endsAt().call() == started + 7200
    books.add_new(agreement.functions.committee().call())
    books.assert_conserved(setup.market.pool, agreement)


def test_a_late_draw_still_leaves_the_witnesses_their_windows(setup: Setup) -> None:
    """Drawn in the last second reporting was open, the committee's windows move out, so
    no member is made silent by the timing of someone else's draw; and a member may change
    its report before reporting closes."""
    driver, market = setup.driver, setup.market
    books = books_for(setup)
    agreement = offered(setup)
    driver.call(setup.provider, agreement.functions.confirm())
    committee = market.committee(agreement.functions.committee().call())
    books.add_new(agreement, committee)
    planned = committee.functions.commitEnds().call()
    driver.mine_blocks(3)
    driver.jump_to(planned - 1)
    receipt = driver.call(setup.customer, committee.functions.draw())
    drawn_at = driver.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    commit_ends = committee.functions.commitEnds().call()
    assert commit_ends == drawn_at + 3600 > planned
    assert committee.functions.revealEnds().call() == commit_ends + 3600
    by_address = {w.address: w for w in setup.witnesses}
    members = [by_address[a] for a in committee.functions.members().call()]
    round_ = Round(agreement, committee, members)
    # The first member first says "met", then changes its mind before reporting closes.
    chain = driver.w3.eth.chain_id
    first = members[0]
    early = report_commitment(chain, committee.address, first.address, False, salt())
    driver.call(first, committee.functions.commit(early))
    report(setup, round_, dict.fromkeys(members, True))
    driver.call(setup.customer, committee.functions.finalize())
    assert agreement.functions.violated().call() is True
    books.assert_conserved(market.pool, agreement, committee)
