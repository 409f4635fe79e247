"""The marketplace's contracts (contracts/market/): deploy the Market factory, read what its
clones hold, and send every role's transactions, each checked for CTK and allowance first
so a short balance is a one-line refusal with nothing sent."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from web3.contract import AsyncContract

from watcher.adapters.chain.artifact import contract_artifact
from watcher.adapters.chain.connection import Chain, chain_errors, require_contract
from watcher.adapters.chain.signer import Signer
from watcher.adapters.chain.token import CloudToken
from watcher.adapters.chain.transactions import MinedTransaction, send_transaction
from watcher.domain.amounts import format_amount
from watcher.domain.errors import ChainError, InsufficientFunds
from watcher.domain.market import (
    AgreementTerms,
    AuctionRules,
    Kind,
    Mechanism,
    PoolRules,
    bid_escrow,
    initiator_escrow,
)

IMPLEMENTATIONS = ("Auction", "ServiceAgreement", "WitnessCommittee")
MARKET_CONTRACTS = (*IMPLEMENTATIONS, "WitnessPool", "Market")


@cache
def market_abi() -> list[dict[str, Any]]:
    """Every market contract's ABI in one list (for reverts and events), errors once each."""
    seen: set[str] = set()
    merged: list[dict[str, Any]] = []
    for name in (*MARKET_CONTRACTS, "CloudToken"):
        for item in contract_artifact(name).abi:
            key = f"{item.get('type')}:{item.get('name')}:{len(item.get('inputs', []))}"
            if item.get("type") in ("error", "event") and key in seen:
                continue
            seen.add(key)
            merged.append(item)
    return merged


@dataclass(frozen=True)
class Event:
    """One decoded log of a market contract."""

    name: str
    address: ChecksumAddress
    args: dict[str, Any]
    tx_hash: str
    log_index: int
    block_number: int


@dataclass(frozen=True)
class Sent:
    """A mined market transaction and the market events it emitted, in log order."""

    tx_hash: str
    block_number: int
    gas_used: int
    events: tuple[Event, ...]
    # The exact `approve` of the Market sent first, when the allowance was short.
    approval_gas: int = 0

    def event(self, name: str) -> Event:
        for event in self.events:
            if event.name == name:
                return event
        raise ChainError(f"transaction {self.tx_hash} emitted no {name} event")

    def all(self, name: str) -> list[Event]:
        return [event for event in self.events if event.name == name]


@dataclass(frozen=True)
class MarketDeployment:
    address: ChecksumAddress
    pool: ChecksumAddress
    implementations: dict[str, ChecksumAddress]
    chain_id: int
    block_number: int
    gas_used: int


@dataclass(frozen=True)
class Bid:
    bidder: ChecksumAddress
    seq: int
    price: int


@dataclass(frozen=True)
class AuctionView:
    address: ChecksumAddress
    initiator: ChecksumAddress
    rules: AuctionRules
    terms: AgreementTerms
    state: str
    opened_at: int
    bids: int
    reveals: int
    standing: tuple[Bid, ...]
    over: bool
    clock_price: int | None


@dataclass(frozen=True)
class AgreementView:
    address: ChecksumAddress
    auction: ChecksumAddress
    customer: ChecksumAddress
    provider: ChecksumAddress
    fee: int
    terms: AgreementTerms
    state: str
    confirm_by: int
    started_at: int
    ends_at: int
    committee: ChecksumAddress | None
    violated: bool
    held: int


@dataclass(frozen=True)
class CommitteeView:
    address: ChecksumAddress
    agreement: ChecksumAddress
    members: tuple[ChecksumAddress, ...]
    seed_block: int
    commit_ends: int
    reveal_ends: int
    finalized: bool
    violated: bool
    revealed: int
    violation_reports: int
    quorum: int
    size: int


@dataclass(frozen=True)
class WitnessView:
    address: ChecksumAddress
    stake: int
    locked: int
    reputation: int
    registered: bool
    duties: int
    since_block: int


AUCTION_STATES = ("open", "settled", "cancelled")
AGREEMENT_STATES = ("offered", "active", "closed", "cancelled")
NO_ADDRESS = "0x0000000000000000000000000000000000000000"


class Market:
    """A deployed Market with its pool, on one chain, paying in one CTK token."""

    def __init__(self, chain: Chain, address: ChecksumAddress, token: CloudToken) -> None:
        self.chain = chain
        self.address = address
        self.token = token
        self.abi = market_abi()
        self._contracts = {
            name: chain.w3.eth.contract(abi=contract_artifact(name).abi)
            for name in MARKET_CONTRACTS
        }
        self._market = self._at("Market", address)
        self.pool: ChecksumAddress | None = None
        # topic0 -> (contract name, event name): decoding a receipt's logs.
        self._topics: dict[bytes, tuple[str, str]] = {}
        for name in MARKET_CONTRACTS:
            for item in contract_artifact(name).abi:
                if item.get("type") == "event":
                    topic = bytes(event_abi_to_log_topic(item))  # type: ignore[arg-type]
                    self._topics[topic] = (name, item["name"])

    def _at(self, name: str, address: str) -> AsyncContract:
        return self.chain.w3.eth.contract(
            address=self.chain.w3.to_checksum_address(address), abi=contract_artifact(name).abi
        )

    @classmethod
    async def at(cls, chain: Chain, address: ChecksumAddress, token: CloudToken) -> Market:
        """The Market at `address`, checked to be one and to pay in `token`."""
        await require_contract(chain, address, "WATCHER_MARKET_ADDRESS", "watcher market deploy")
        market = cls(chain, address, token)
        try:
            with chain_errors(chain.url):
                pays_with = await market._market.functions.token().call()
                market.pool = chain.w3.to_checksum_address(
                    await market._market.functions.pool().call()
                )
        except ChainError:
            raise
        except Exception:
            raise ChainError(f"the contract at {address} is not a watcher Market") from None
        if pays_with != token.address:
            raise ChainError(f"the Market at {address} pays with {pays_with}, not {token.address}")
        return market

    @staticmethod
    async def deploy(
        chain: Chain, signer: Signer, token: ChecksumAddress, pool: PoolRules, timeout: float
    ) -> MarketDeployment:
        """The three clone implementations, then the Market (which makes the pool)."""
        implementations: dict[str, ChecksumAddress] = {}
        gas = 0
        for name in IMPLEMENTATIONS:
            mined = await _deploy(chain, signer, name, (), timeout)
            assert mined.contract_address is not None
            implementations[name] = chain.w3.to_checksum_address(mined.contract_address)
            gas += mined.gas_used
        args = (token, *implementations.values(), pool.as_tuple())
        mined = await _deploy(chain, signer, "Market", args, timeout)
        assert mined.contract_address is not None
        address = chain.w3.to_checksum_address(mined.contract_address)
        contract = chain.w3.eth.contract(address=address, abi=contract_artifact("Market").abi)
        with chain_errors(chain.url):
            pool_address = chain.w3.to_checksum_address(await contract.functions.pool().call())
        return MarketDeployment(
            address=address,
            pool=pool_address,
            implementations=implementations,
            chain_id=chain.chain_id,
            block_number=mined.block_number,
            gas_used=gas + mined.gas_used,
        )

    # --- reading ---

    async def kind_of(self, address: ChecksumAddress) -> Kind:
        with chain_errors(self.chain.url):
            return Kind(await self._market.functions.kindOf(address).call())

    async def require(self, address: ChecksumAddress, kind: Kind) -> None:
        found = await self.kind_of(address)
        if found is not kind:
            what = "not made by this market" if found is Kind.NONE else found.with_article
            raise ChainError(f"{address} is {what}, not {kind.with_article}")

    async def auction(self, address: ChecksumAddress) -> AuctionView:
        await self.require(address, Kind.AUCTION)
        functions = self._at("Auction", address).functions
        with chain_errors(self.chain.url):
            rules = AuctionRules.from_tuple(tuple(await functions.rules().call()))
            dutch = rules.mechanism is Mechanism.DUTCH
            clock = await functions.clockPrice().call() if dutch else None
            return AuctionView(
                address=address,
                initiator=await functions.initiator().call(),
                rules=rules,
                terms=AgreementTerms.from_tuple(tuple(await functions.terms().call())),
                state=AUCTION_STATES[await functions.state().call()],
                opened_at=await functions.openedAt().call(),
                bids=await functions.bidCount().call(),
                reveals=await functions.revealCount().call(),
                standing=tuple(Bid(*entry) for entry in await functions.standing().call()),
                over=await functions.isOver().call(),
                clock_price=clock,
            )

    async def commitment_of(self, auction: ChecksumAddress, bidder: ChecksumAddress) -> bytes:
        with chain_errors(self.chain.url):
            sealed = await self._at("Auction", auction).functions.sealedBids(bidder).call()
        value: bytes = sealed[0]
        return value

    async def agreement(self, address: ChecksumAddress) -> AgreementView:
        await self.require(address, Kind.AGREEMENT)
        functions = self._at("ServiceAgreement", address).functions
        with chain_errors(self.chain.url):
            committee = await functions.committee().call()
            return AgreementView(
                address=address,
                auction=await functions.auction().call(),
                customer=await functions.customer().call(),
                provider=await functions.provider().call(),
                fee=await functions.fee().call(),
                terms=AgreementTerms.from_tuple(tuple(await functions.terms().call())),
                state=AGREEMENT_STATES[await functions.state().call()],
                confirm_by=await functions.confirmBy().call(),
                started_at=await functions.startedAt().call(),
                ends_at=await functions.endsAt().call(),
                committee=None if committee == NO_ADDRESS else committee,
                violated=await functions.violated().call(),
                held=await functions.held().call(),
            )

    async def committee(self, address: ChecksumAddress) -> CommitteeView:
        await self.require(address, Kind.COMMITTEE)
        functions = self._at("WitnessCommittee", address).functions
        with chain_errors(self.chain.url):
            return CommitteeView(
                address=address,
                agreement=await functions.agreement().call(),
                members=tuple(await functions.members().call()),
                seed_block=await functions.seedBlock().call(),
                commit_ends=await functions.commitEnds().call(),
                reveal_ends=await functions.revealEnds().call(),
                finalized=await functions.finalized().call(),
                violated=await functions.outcome().call(),
                revealed=await functions.revealedCount().call(),
                violation_reports=await functions.violationReports().call(),
                quorum=await functions.quorum().call(),
                size=await functions.size().call(),
            )

    async def report_of(self, committee: ChecksumAddress, witness: ChecksumAddress) -> bytes:
        with chain_errors(self.chain.url):
            duty = await self._at("WitnessCommittee", committee).functions.duties(witness).call()
        report: bytes = duty[3]
        return report

    async def owed(self, committee: ChecksumAddress, witness: ChecksumAddress) -> int:
        with chain_errors(self.chain.url):
            value: int = (
                await self._at("WitnessCommittee", committee).functions.owed(witness).call()
            )
        return value

    async def witness(self, address: ChecksumAddress) -> WitnessView:
        with chain_errors(self.chain.url):
            stake, locked, reputation, _, duties, since = (
                await self._pool().functions.witnesses(address).call()
            )
        return WitnessView(address, stake, locked, reputation, stake != 0, duties, since)

    async def pool_rules(self) -> PoolRules:
        functions = self._pool().functions
        with chain_errors(self.chain.url):
            return PoolRules(
                min_stake=await functions.minStake().call(),
                duty_stake=await functions.dutyStake().call(),
                silence_penalty=await functions.silencePenalty().call(),
                dissent_penalty=await functions.dissentPenalty().call(),
                min_reputation=await functions.minReputation().call(),
                min_witness_pay=await functions.minWitnessPay().call(),
            )

    async def head(self) -> tuple[int, int]:
        """The latest block's number and timestamp."""
        with chain_errors(self.chain.url):
            block = await self.chain.w3.eth.get_block("latest")
        return int(block["number"]), int(block["timestamp"])

    # --- the initiator ---

    async def open_auction(
        self, signer: Signer, rules: AuctionRules, terms: AgreementTerms, timeout: float
    ) -> Sent:
        escrow = initiator_escrow(rules, terms)
        approval = await self.ensure_allowance(signer, escrow, "opening the auction", timeout)
        call = self._market.functions.openAuction(rules.as_tuple(), terms.as_tuple())
        return await self._send(signer, call, timeout, approval)

    async def settle(self, signer: Signer, auction: ChecksumAddress, timeout: float) -> Sent:
        return await self._send(signer, self._at("Auction", auction).functions.settle(), timeout)

    async def cancel_auction(
        self, signer: Signer, auction: ChecksumAddress, timeout: float
    ) -> Sent:
        return await self._send(signer, self._at("Auction", auction).functions.cancel(), timeout)

    # --- bidders ---

    async def bid(self, signer: Signer, auction: AuctionView, price: int, timeout: float) -> Sent:
        approval = await self.ensure_allowance(
            signer, bid_escrow(auction.rules, auction.terms, price), "this bid", timeout
        )
        call = self._at("Auction", auction.address).functions.bid(price)
        return await self._send(signer, call, timeout, approval)

    async def accept(
        self, signer: Signer, auction: AuctionView, limit: int, timeout: float
    ) -> Sent:
        approval = await self.ensure_allowance(
            signer, bid_escrow(auction.rules, auction.terms, limit), "taking a slot", timeout
        )
        call = self._at("Auction", auction.address).functions.accept(limit)
        return await self._send(signer, call, timeout, approval)

    async def commit_bid(
        self, signer: Signer, auction: AuctionView, sealed: bytes, timeout: float
    ) -> Sent:
        approval = await self.ensure_allowance(
            signer, auction.rules.bid_deposit, "the bid deposit", timeout
        )
        call = self._at("Auction", auction.address).functions.commit(sealed)
        return await self._send(signer, call, timeout, approval)

    async def reveal_bid(
        self, signer: Signer, auction: AuctionView, price: int, salt: bytes, timeout: float
    ) -> Sent:
        approval = await self.ensure_allowance(
            signer, bid_escrow(auction.rules, auction.terms, price), "revealing this bid", timeout
        )
        call = self._at("Auction", auction.address).functions.reveal(price, salt)
        return await self._send(signer, call, timeout, approval)

    # --- agreements ---

    async def confirm(self, signer: Signer, agreement: ChecksumAddress, timeout: float) -> Sent:
        call = self._at("ServiceAgreement", agreement).functions.confirm()
        return await self._send(signer, call, timeout)

    async def cancel_agreement(
        self, signer: Signer, agreement: ChecksumAddress, timeout: float
    ) -> Sent:
        call = self._at("ServiceAgreement", agreement).functions.cancel()
        return await self._send(signer, call, timeout)

    # --- witnesses ---

    async def register(self, signer: Signer, stake: int, timeout: float) -> Sent:
        approval = await self.ensure_allowance(signer, stake, "the stake", timeout)
        return await self._send(signer, self._pool().functions.register(stake), timeout, approval)

    async def add_stake(self, signer: Signer, amount: int, timeout: float) -> Sent:
        approval = await self.ensure_allowance(signer, amount, "the stake", timeout)
        return await self._send(signer, self._pool().functions.addStake(amount), timeout, approval)

    async def withdraw(self, signer: Signer, amount: int, timeout: float) -> Sent:
        return await self._send(signer, self._pool().functions.withdraw(amount), timeout)

    async def draw(self, signer: Signer, committee: ChecksumAddress, timeout: float) -> Sent:
        call = self._at("WitnessCommittee", committee).functions.draw()
        return await self._send(signer, call, timeout)

    async def commit_report(
        self, signer: Signer, committee: ChecksumAddress, sealed: bytes, timeout: float
    ) -> Sent:
        call = self._at("WitnessCommittee", committee).functions.commit(sealed)
        return await self._send(signer, call, timeout)

    async def reveal_report(
        self,
        signer: Signer,
        committee: ChecksumAddress,
        violated: bool,
        salt: bytes,
        timeout: float,
    ) -> Sent:
        call = self._at("WitnessCommittee", committee).functions.reveal(violated, salt)
        return await self._send(signer, call, timeout)

    async def finalize(self, signer: Signer, committee: ChecksumAddress, timeout: float) -> Sent:
        call = self._at("WitnessCommittee", committee).functions.finalize()
        return await self._send(signer, call, timeout)

    async def claim(self, signer: Signer, committee: ChecksumAddress, timeout: float) -> Sent:
        call = self._at("WitnessCommittee", committee).functions.claim()
        return await self._send(signer, call, timeout)

    # --- plumbing ---

    async def ensure_allowance(self, signer: Signer, amount: int, what: str, timeout: float) -> int:
        """Refuse a short CTK balance up front; approve the Market for `amount` when the
        allowance is less (an exact approval, never an unlimited one). Returns the
        approval's gas (0: none was needed)."""
        if amount == 0:
            return 0
        balance = await self.token.balance_of(signer.address)
        if balance < amount:
            raise InsufficientFunds(
                f"not enough CTK: {signer.address} holds {format_amount(balance)} CTK and "
                f"{what} needs {format_amount(amount)} CTK; nothing was sent"
            )
        with chain_errors(self.chain.url):
            allowance = await self.token.allowance(signer.address, self.address)
        if allowance >= amount:
            return 0
        return (await self.token.approve(signer, self.address, amount, timeout)).gas_used

    def _pool(self) -> AsyncContract:
        assert self.pool is not None, "Market.at reads the pool"
        return self._at("WitnessPool", self.pool)

    async def _send(self, signer: Signer, call: Any, timeout: float, approval: int = 0) -> Sent:
        mined = await send_transaction(self.chain, signer, call, timeout, self.abi)
        return Sent(mined.tx_hash, mined.block_number, mined.gas_used, self.decode(mined), approval)

    def decode(self, mined: MinedTransaction) -> tuple[Event, ...]:
        events: list[Event] = []
        for log in mined.logs:
            topics = log.get("topics") or []
            if not topics:
                continue
            known = self._topics.get(bytes(HexBytes(topics[0])))
            if known is None:
                continue
            contract, name = known
            decoded = self._contracts[contract].events[name]().process_log(log)
            events.append(
                Event(
                    name=name,
                    address=self.chain.w3.to_checksum_address(log["address"]),
                    args=dict(decoded["args"]),
                    tx_hash=mined.tx_hash,
                    log_index=int(log["logIndex"]),
                    block_number=int(log["blockNumber"]),
                )
            )
        return tuple(events)


async def _deploy(
    chain: Chain, signer: Signer, name: str, args: tuple[Any, ...], timeout: float
) -> MinedTransaction:
    artifact = contract_artifact(name)
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    return await send_transaction(chain, signer, factory.constructor(*args), timeout, market_abi())
