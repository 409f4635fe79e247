"""Driving the marketplace contracts on a Hardhat node of its own (the market's tests move
its clock), with plain web3, independent of watcher's adapters; and the books that check
every test's CTK is conserved."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from tests.chainhelpers import CTK, DevChainDriver, artifact
from watcher.adapters.chain.transactions import revert_reason
from watcher.domain.market import AgreementTerms, AuctionRules, Mechanism, Side

DAY = 86_400

POOL_RULES = {
    "minStake": 100 * CTK,
    "dutyStake": 50 * CTK,
    "silencePenalty": 20 * CTK,
    "dissentPenalty": 10 * CTK,
    "minReputation": 60,
    "minWitnessPay": CTK,
}


class Refused(Exception):
    """A call the contracts refused; `reason` is the decoded custom error, e.g. SoldOut()."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def player(index: int) -> LocalAccount:
    """A deterministic test key (not a dev account: there are only 20 of those)."""
    key = Web3.keccak(text=f"watcher market player {index}")
    account: LocalAccount = Account.from_key(key)
    return account


def salt() -> bytes:
    return os.urandom(32)


@dataclass
class Market:
    driver: MarketDriver
    contract: Any
    token: Any
    pool: Any
    abi: list[dict[str, Any]] = field(default_factory=list)

    def auction(self, address: str) -> Any:
        return self.driver.w3.eth.contract(address=address, abi=artifact("Auction")["abi"])

    def agreement(self, address: str) -> Any:
        return self.driver.w3.eth.contract(address=address, abi=artifact("ServiceAgreement")["abi"])

    def committee(self, address: str) -> Any:
        return self.driver.w3.eth.contract(address=address, abi=artifact("WitnessCommittee")["abi"])

    def open(
        self, initiator: LocalAccount, rules: AuctionRules, terms: AgreementTerms
    ) -> tuple[Any, TxReceipt]:
        self.driver.approve(self, initiator)
        receipt = self.driver.call(
            initiator, self.contract.functions.openAuction(rules.as_tuple(), terms.as_tuple())
        )
        (opened,) = self.contract.events.AuctionOpened().process_receipt(receipt, errors=DISCARD)
        return self.auction(opened.args["auction"]), receipt

    def won(self, auction: Any, receipt: TxReceipt) -> list[tuple[str, Any, int]]:
        """(winner, agreement, fee) for each Won event of a settlement, in slot order."""
        return [
            (event.args["bidder"], self.agreement(event.args["agreement"]), event.args["fee"])
            for event in auction.events.Won().process_receipt(receipt, errors=DISCARD)
        ]

    def register_witnesses(self, witnesses: Iterable[LocalAccount], stake: int) -> None:
        for witness in witnesses:
            self.driver.approve(self, witness)
            self.driver.call(witness, self.pool.functions.register(stake))


class MarketDriver(DevChainDriver):
    """The dev chain driver, with a clock to move, players to fund and calls that may be
    refused (raising Refused with the contract's reason)."""

    def __init__(self, w3: Web3) -> None:
        super().__init__(w3)
        self.abi: list[dict[str, Any]] = []
        for name in (
            "CloudToken",
            "Auction",
            "ServiceAgreement",
            "WitnessCommittee",
            "WitnessPool",
            "Market",
        ):
            self.abi += artifact(name)["abi"]

    def deploy_market(self, token: Any, pool_rules: dict[str, int] | None = None) -> Market:
        rules = dict(POOL_RULES, **(pool_rules or {}))
        auction = self.deploy("Auction")
        agreement = self.deploy("ServiceAgreement")
        committee = self.deploy("WitnessCommittee")
        market = self.deploy(
            "Market",
            token.address,
            auction.address,
            agreement.address,
            committee.address,
            (
                rules["minStake"],
                rules["dutyStake"],
                rules["silencePenalty"],
                rules["dissentPenalty"],
                rules["minReputation"],
                rules["minWitnessPay"],
            ),
        )
        pool = self.w3.eth.contract(
            address=market.functions.pool().call(), abi=artifact("WitnessPool")["abi"]
        )
        return Market(self, market, token, pool)

    def players(
        self, market: Market, first: int, count: int, ctk: int = 10_000
    ) -> list[LocalAccount]:
        """`count` funded accounts (ETH for gas, `ctk` CTK), each having approved the market."""
        accounts = [player(first + i) for i in range(count)]
        for account in accounts:
            self.w3.provider.make_request(  # type: ignore[arg-type]
                "hardhat_setBalance", [account.address, hex(10**21)]
            )
            self.fund(market.token, account, ctk)
            self.approve(market, account)
        return accounts

    def approve(self, market: Market, account: LocalAccount) -> None:
        self.send(account, market.token.functions.approve(market.contract.address, 2**255))

    def call(self, account: LocalAccount, call: Any) -> TxReceipt:
        """Send `call` from `account`; a refusal raises Refused with the decoded reason."""
        try:
            return self.send(account, call)
        except (ContractCustomError, ContractLogicError) as exc:
            raise Refused(revert_reason(exc, self.abi)) from None

    def refused(self, account: LocalAccount, call: Any) -> str:
        try:
            self.send(account, call)
        except (ContractCustomError, ContractLogicError) as exc:
            return revert_reason(exc, self.abi)
        raise AssertionError("the call was not refused")

    def contract(self, name: str, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=artifact(name)["abi"])

    def rules_of(self, auction: str) -> AuctionRules:
        values = self.contract("Auction", auction).functions.rules().call()
        return AuctionRules.from_tuple(tuple(values))

    def made_by(self, market: str) -> list[Any]:
        """Every clone the Market at `market` made, and its pool: contracts with `held`."""
        factory = self.contract("Market", market)
        found = [self.contract("WitnessPool", factory.functions.pool().call())]
        for event, field_name, kind in (
            ("AuctionOpened", "auction", "Auction"),
            ("AgreementOffered", "agreement", "ServiceAgreement"),
            ("CommitteeFormed", "committee", "WitnessCommittee"),
        ):
            for log in factory.events[event]().get_logs(from_block=0):
                found.append(self.contract(kind, log.args[field_name]))
        return found

    # --- the clock ---

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def at(self, timestamp: int) -> None:
        """The next block is mined at `timestamp` (the next transaction's block)."""
        self.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]

    def jump_to(self, timestamp: int) -> None:
        self.at(timestamp)
        self.mine()

    def mine_blocks(self, count: int) -> None:
        self.w3.provider.make_request("hardhat_mine", [hex(count)])  # type: ignore[arg-type]

    @contextmanager
    def one_block(self) -> Iterator[None]:
        """Transactions sent inside go into one block, in the order sent."""
        self.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        try:
            yield
        finally:
            self.mine()
            self.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]

    def send_unmined(self, account: LocalAccount, call: Any, gas: int = 1_500_000) -> bytes:
        tx = call.build_transaction(
            {
                "from": account.address,
                "gas": gas,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
            }
        )
        tx_hash: bytes = self.w3.eth.send_raw_transaction(
            account.sign_transaction(tx).raw_transaction
        )
        return tx_hash


class Books:
    """CTK balances of everyone and every contract a test touches: whatever moved between
    them, their sum must not change, and the contracts must hold exactly what their own
    books (`held`) say, which is zero once everything is paid out."""

    def __init__(self, token: Any, *accounts: Any) -> None:
        self.token = token
        self.addresses: list[str] = []
        self.start: dict[str, int] = {}
        self.add(*accounts)

    def add(self, *accounts: Any) -> None:
        for account in accounts:
            address = account if isinstance(account, str) else account.address
            if address not in self.start:
                self.addresses.append(address)
                self.start[address] = self.balance(address)

    def add_new(self, *contracts: Any) -> None:
        """Clones made after the books opened: they held nothing before they existed."""
        for contract in contracts:
            address = contract if isinstance(contract, str) else contract.address
            if address not in self.start:
                self.addresses.append(address)
                self.start[address] = 0

    def balance(self, who: Any) -> int:
        address = who if isinstance(who, str) else who.address
        value: int = self.token.functions.balanceOf(address).call()
        return value

    def change(self, who: Any) -> int:
        address = who if isinstance(who, str) else who.address
        return self.balance(address) - self.start[address]

    def assert_conserved(self, *contracts: Any, empty: Iterable[Any] = ()) -> None:
        """The sum over everyone is unchanged; each contract's balance is its `held`; the
        `empty` ones hold nothing any more."""
        total = sum(self.change(address) for address in self.addresses)
        assert total == 0, f"{total} CTK base units appeared or vanished"
        for contract in contracts:
            held = contract.functions.held().call()
            assert self.balance(contract.address) == held, f"{contract.address} holds off its books"
        for contract in empty:
            assert self.balance(contract.address) == 0, f"{contract.address} still holds CTK"
            assert contract.functions.held().call() == 0


def rules(
    side: Side,
    mechanism: Mechanism,
    *,
    now: int,
    slots: int = 2,
    reserve: int,
    start_price: int = 0,
    increment: int = 0,
    bid_deposit: int = 0,
    bidding: int = 600,
    revealing: int = 600,
) -> AuctionRules:
    sealed = mechanism in (Mechanism.FIRST_PRICE_SEALED, Mechanism.SECOND_PRICE_SEALED)
    return AuctionRules(
        side=side,
        mechanism=mechanism,
        slots=slots,
        bidding_ends=now + bidding,
        reveal_ends=now + bidding + revealing if sealed else 0,
        reserve=reserve,
        start_price=start_price,
        increment=increment,
        bid_deposit=bid_deposit,
    )


def terms(
    *,
    witnesses: int = 3,
    quorum: int = 2,
    deposit: int = 40 * CTK,
    witness_fee: int = 9 * CTK,
    service: int = DAY,
    compensation_bps: int = 3000,
) -> AgreementTerms:
    return AgreementTerms(
        terms_hash=Web3.keccak(text="99.9 % monthly uptime of one t3.micro, measured by ping"),
        service_seconds=service,
        confirm_seconds=3600,
        report_seconds=3600,
        reveal_seconds=3600,
        compensation_bps=compensation_bps,
        witnesses=witnesses,
        quorum=quorum,
        provider_deposit=deposit,
        witness_fee=witness_fee,
    )
