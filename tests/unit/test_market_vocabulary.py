"""The market's vocabulary (watcher/domain/market.py) and the CLI's own input checks: the
rules reach the ABI field for field, the escrow an opening takes is the contract's, the
commitments are the contract's hash, and every bad argument is one line that sends nothing
(the contracts judge the rest; tests/integration/test_market_auctions.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from tests.conftest import CliResult
from watcher.domain.errors import InvalidInput
from watcher.domain.market import (
    AgreementTerms,
    AuctionRules,
    Mechanism,
    Side,
    bid_commitment,
    bid_escrow,
    initiator_escrow,
    parse_mechanism,
    parse_side,
    report_commitment,
)

Cli = Callable[..., CliResult]
BIDDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
AUCTION = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

TERMS = AgreementTerms(b"\x01" * 32, 86_400, 3600, 3600, 3600, 3000, 3, 2, 40, 9)


def rules(side: Side) -> AuctionRules:
    return AuctionRules(side, Mechanism.SECOND_PRICE_SEALED, 2, 1000, 2000, 100, 0, 0, 5)


def test_rules_and_terms_round_trip_through_their_abi_tuples() -> None:
    for side in Side:
        assert AuctionRules.from_tuple(rules(side).as_tuple()) == rules(side)
    assert AgreementTerms.from_tuple(TERMS.as_tuple()) == TERMS


def test_the_escrow_an_opening_takes() -> None:
    assert initiator_escrow(rules(Side.REVERSE), TERMS) == 2 * (100 + 9)
    assert initiator_escrow(rules(Side.FORWARD), TERMS) == 2 * 40
    assert bid_escrow(rules(Side.FORWARD), TERMS, 70) == 70 + 9
    assert bid_escrow(rules(Side.REVERSE), TERMS, 70) == 40


def test_commitments_hash_chain_contract_party_value_and_salt() -> None:
    salt = b"\x07" * 32
    expected = keccak(
        encode(
            ["uint256", "address", "address", "uint256", "bytes32"],
            [1337, AUCTION, BIDDER, 80, salt],
        )
    )
    assert bid_commitment(1337, AUCTION, BIDDER, 80, salt) == expected
    # Any other chain, contract, bidder, price or salt is another commitment.
    others = {
        bid_commitment(1, AUCTION, BIDDER, 80, salt),
        bid_commitment(1337, BIDDER, BIDDER, 80, salt),
        bid_commitment(1337, AUCTION, AUCTION, 80, salt),
        bid_commitment(1337, AUCTION, BIDDER, 81, salt),
        bid_commitment(1337, AUCTION, BIDDER, 80, b"\x08" * 32),
    }
    assert expected not in others and len(others) == 5
    assert report_commitment(1337, AUCTION, BIDDER, True, salt) != report_commitment(
        1337, AUCTION, BIDDER, False, salt
    )


def test_names_of_sides_and_models() -> None:
    assert parse_side(" Reverse ") is Side.REVERSE
    assert parse_mechanism("second-price") is Mechanism.SECOND_PRICE_SEALED
    assert Mechanism.FIRST_PRICE_SEALED.sealed and not Mechanism.DUTCH.sealed
    with pytest.raises(InvalidInput, match="forward or reverse"):
        parse_side("sideways")
    with pytest.raises(InvalidInput, match="english, dutch, first-price, second-price"):
        parse_mechanism("vickrey")


OPEN = (
    "market", "open", "--side", "reverse", "--model", "english", "--reserve", "10",
    "--increment", "1", "--terms", "sla.txt", "--market-address", AUCTION,
    "--token-address", BIDDER, "--dev-account", "1",
)  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--compensation", "101%"), "must be at most 100%"),
        (("--compensation", "12.345%"), "at most two decimals"),
        (("--compensation", "thirty"), "must be a percentage like 30%"),
        (("--bidding", "10 minutes"), 'a duration must be a whole number and a unit, like "30s"'),
        (("--slots", "11"), "'--slots': 11 is not in the range 1<=x<=10"),
        (("--witnesses", "2"), "'--witnesses': 2 is not in the range 3<=x<=21"),
        (("--reserve", "-1"), "'--reserve'"),
        (("--model", "vickrey"), "'--model': 'vickrey' is not one of"),
    ],
)
def test_bad_arguments_are_one_line_and_send_nothing(
    cli: Cli, extra: tuple[str, ...], message: str
) -> None:
    result = cli(*OPEN, *extra)
    assert result.code == 2, result.err
    assert result.err.startswith("watcher: error: ") and result.err.count("\n") == 1
    assert message in result.err


def test_a_terms_file_that_is_missing_or_empty(cli: Cli) -> None:
    missing = cli(*OPEN)
    assert missing.code == 2 and "cannot read the terms file sla.txt" in missing.err
    with open("sla.txt", "w") as empty:
        empty.write("  \n")
    blank = cli(*OPEN)
    assert blank.code == 2 and "the terms file sla.txt is empty" in blank.err


@pytest.mark.parametrize(
    "args",
    [
        ("market", "show", "0x1234"),
        ("market", "bid", AUCTION, "twelve"),
        ("market", "report", AUCTION),
        ("market", "withdraw", "0"),
    ],
)
def test_bad_addresses_amounts_and_missing_choices(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.code == 2, result.err
    assert result.err.startswith("watcher: error: ") and result.err.count("\n") == 1


def test_refusals_are_said_in_words_with_dates() -> None:
    from watcher.interfaces.market_cli import humane, span

    said = humane("the contract refused the transaction: BiddingClosed(biddingEnds=1796331584)")
    assert said == (
        "the contract refused the transaction: bidding closed at 2026-12-03 20:59:44 UTC "
        "(BiddingClosed)"
    )
    assert humane("the contract refused the transaction: SoldOut()").endswith(
        "every slot of this Dutch auction is taken (SoldOut)"
    )
    # An error without words of its own, or any other message, is left as it is.
    other = "the contract refused the transaction: InvalidRules(reason=slots must be 1 to 10)"
    assert humane(other) == other
    assert humane("cannot reach the RPC node") == "cannot reach the RPC node"
    assert [span(s) for s in (2_592_000, 7200, 60, 90)] == [
        "30 days",
        "2 hours",
        "1 minute",
        "90 seconds",
    ]
