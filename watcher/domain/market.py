"""The on-chain marketplace's vocabulary (contracts/market/, after the AWESOME paper): the
auction models, an auction's rules and its agreements' terms as the contracts take them,
and the commitments that seal a bid or a witness's report.

The contracts are the authority on what is valid: this module only names things and
shapes them for the ABI, so no rule lives here twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from watcher.domain.errors import InvalidInput


class Side(IntEnum):
    """Forward: a provider sells, customers bid up. Reverse: a customer buys, providers
    bid down."""

    FORWARD = 0
    REVERSE = 1


class Mechanism(IntEnum):
    ENGLISH = 0
    DUTCH = 1
    FIRST_PRICE_SEALED = 2
    SECOND_PRICE_SEALED = 3

    @property
    def sealed(self) -> bool:
        return self in (Mechanism.FIRST_PRICE_SEALED, Mechanism.SECOND_PRICE_SEALED)


class Kind(IntEnum):
    """What the Market made an address as (Market.kindOf)."""

    NONE = 0
    AUCTION = 1
    AGREEMENT = 2
    COMMITTEE = 3

    @property
    def label(self) -> str:
        return {0: "stranger", 1: "auction", 2: "service agreement", 3: "witness committee"}[
            self.value
        ]

    @property
    def with_article(self) -> str:
        return ("an " if self.label[0] in "aeiou" else "a ") + self.label


# The names the CLI takes and prints, one per value.
SIDE_NAMES = {Side.FORWARD: "forward", Side.REVERSE: "reverse"}
MECHANISM_NAMES = {
    Mechanism.ENGLISH: "english",
    Mechanism.DUTCH: "dutch",
    Mechanism.FIRST_PRICE_SEALED: "first-price",
    Mechanism.SECOND_PRICE_SEALED: "second-price",
}


def parse_side(text: str) -> Side:
    for side, name in SIDE_NAMES.items():
        if text.strip().lower() == name:
            return side
    raise InvalidInput(f"side must be forward or reverse, got {text!r}")


def parse_mechanism(text: str) -> Mechanism:
    for mechanism, name in MECHANISM_NAMES.items():
        if text.strip().lower() == name:
            return mechanism
    names = ", ".join(MECHANISM_NAMES.values())
    raise InvalidInput(f"the auction model must be one of {names}, got {text!r}")


@dataclass(frozen=True)
class AuctionRules:
    """contracts/market/MarketTypes.sol's AuctionRules, field for field."""

    side: Side
    mechanism: Mechanism
    slots: int
    bidding_ends: int
    reveal_ends: int
    reserve: int
    start_price: int
    increment: int
    bid_deposit: int

    def as_tuple(self) -> tuple[int, ...]:
        return (
            int(self.side),
            int(self.mechanism),
            self.slots,
            self.bidding_ends,
            self.reveal_ends,
            self.reserve,
            self.start_price,
            self.increment,
            self.bid_deposit,
        )

    @classmethod
    def from_tuple(cls, values: tuple[int, ...]) -> AuctionRules:
        side, mechanism, *rest = values
        return cls(Side(side), Mechanism(mechanism), *rest)


@dataclass(frozen=True)
class AgreementTerms:
    """contracts/market/MarketTypes.sol's AgreementTerms, field for field."""

    terms_hash: bytes
    service_seconds: int
    confirm_seconds: int
    report_seconds: int
    reveal_seconds: int
    compensation_bps: int
    witnesses: int
    quorum: int
    provider_deposit: int
    witness_fee: int

    def as_tuple(self) -> tuple[bytes | int, ...]:
        return (
            self.terms_hash,
            self.service_seconds,
            self.confirm_seconds,
            self.report_seconds,
            self.reveal_seconds,
            self.compensation_bps,
            self.witnesses,
            self.quorum,
            self.provider_deposit,
            self.witness_fee,
        )

    @classmethod
    def from_tuple(cls, values: tuple[bytes | int, ...]) -> AgreementTerms:
        terms_hash, *rest = values
        assert isinstance(terms_hash, bytes)
        return cls(terms_hash, *(int(value) for value in rest))


@dataclass(frozen=True)
class PoolRules:
    """contracts/market/WitnessPool.sol's PoolRules: the market's rules for witnesses."""

    min_stake: int
    duty_stake: int
    silence_penalty: int
    dissent_penalty: int
    min_reputation: int
    min_witness_pay: int

    def as_tuple(self) -> tuple[int, ...]:
        return (
            self.min_stake,
            self.duty_stake,
            self.silence_penalty,
            self.dissent_penalty,
            self.min_reputation,
            self.min_witness_pay,
        )


def initiator_escrow(rules: AuctionRules, terms: AgreementTerms) -> int:
    """What opening the auction takes from its initiator (Auction.initialize)."""
    if rules.side is Side.REVERSE:
        return rules.slots * (rules.reserve + terms.witness_fee)
    return rules.slots * terms.provider_deposit


def bid_escrow(rules: AuctionRules, terms: AgreementTerms, price: int) -> int:
    """What a bid at `price` puts in (Auction._bidEscrow): a forward bid its price and the
    witness fee, a reverse bid the provider's deposit."""
    if rules.side is Side.FORWARD:
        return price + terms.witness_fee
    return terms.provider_deposit


def bid_commitment(chain_id: int, auction: str, bidder: str, price: int, salt: bytes) -> bytes:
    """Auction.commitment: keccak256(abi.encode(chain id, auction, bidder, price, salt))."""
    return keccak(
        encode(
            ["uint256", "address", "address", "uint256", "bytes32"],
            [chain_id, auction, bidder, price, salt],
        )
    )


def report_commitment(
    chain_id: int, committee: str, witness: str, violated: bool, salt: bytes
) -> bytes:
    """WitnessCommittee.reportCommitment, likewise bound to the committee and the witness."""
    return keccak(
        encode(
            ["uint256", "address", "address", "bool", "bytes32"],
            [chain_id, committee, witness, violated, salt],
        )
    )
