"""Payments that name their order: the Checkout contract's `OrderPaid(ref, payer, amount)`
event, and which Transfer into the burn address it belongs to.

The Transfer stays the payment (counted exactly once, like any other); the event, emitted
by the same `pay` call right after the token's Transfer, says which drafted order it is
for. A payment names an order only when the event is the next log of its transaction, from
the same payer, for the same amount: anything else is an ordinary payment.

Whether the named draft is placed is decided against the draft as the ledger holds it
(`Placement`), by `decide`: paid in full by a block mined before the quote's deadline, and
the draft still open. Otherwise the whole amount becomes the payer's credit, with the
reason kept on the draft for its owner to read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_typing import ChecksumAddress

from watcher.domain.addresses import to_checksum_address
from watcher.domain.amounts import format_amount
from watcher.domain.payment import MalformedChainData, Payment, hash32, quantity
from watcher.domain.pricing import Named, OrderTerms, Plan

# keccak("OrderPaid(bytes32,address,uint256)")
ORDER_PAID_TOPIC = "0x8a4c6c1c0fc6776e4182db7906d4c424f7ad756048b3c2f88cc9bd6fcb4c778a"
_WORD = re.compile(r"0x[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class OrderPaid:
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    reference: str
    payer: ChecksumAddress
    amount: int


def decode_order_paid(log: Any, checkout: str) -> OrderPaid | None:
    """The event a raw `eth_getLogs` entry carries, None if it is not the Checkout's
    OrderPaid; MalformedChainData when it does not have the shape it must."""
    if not isinstance(log, dict):
        raise MalformedChainData(f"log is not an object: {log!r}")
    address, topics = log.get("address"), log.get("topics")
    if not isinstance(address, str) or not isinstance(topics, list):
        raise MalformedChainData(f"log lacks address or topics: {log!r}")
    if address.lower() != checkout.lower() or log.get("removed") is True:
        return None
    if len(topics) != 3 or not isinstance(topics[0], str) or topics[0].lower() != ORDER_PAID_TOPIC:
        return None
    reference = hash32(topics[1], "OrderPaid ref")
    payer_topic = hash32(topics[2], "OrderPaid payer")
    data = log.get("data")
    if not isinstance(data, str) or not _WORD.fullmatch(data):
        raise MalformedChainData(f"OrderPaid data is not one 32-byte word: {data!r}")
    return OrderPaid(
        tx_hash=hash32(log.get("transactionHash"), "transactionHash"),
        log_index=quantity(log.get("logIndex"), "logIndex"),
        block_number=quantity(log.get("blockNumber"), "blockNumber"),
        block_hash=hash32(log.get("blockHash"), "blockHash"),
        reference=reference,
        payer=to_checksum_address("0x" + payer_topic[-40:]),
        amount=int(data, 16),
    )


def named_orders(
    payments: Iterable[Payment], events: Iterable[OrderPaid]
) -> dict[tuple[str, int], str]:
    """(tx hash, log index) of each payment that names an order -> the order reference.

    Every OrderPaid must sit right after its Transfer, from the same payer, for the same
    amount, in the same block: the Checkout emits them together. An event without its
    Transfer, or with another payer, amount or block, means the node answered the two reads
    from different views of the chain: MalformedChainData, and the range is read again
    (never a payment taken for a plain one because its event went missing)."""
    by_log = {(p.tx_hash, p.log_index): p for p in payments}
    named: dict[tuple[str, int], str] = {}
    for event in events:
        payment = by_log.get((event.tx_hash, event.log_index - 1))
        if (
            payment is None
            or event.payer != payment.payer
            or event.amount != payment.amount
            or event.block_hash != payment.block_hash
        ):
            raise MalformedChainData(
                f"OrderPaid at log {event.log_index} of {event.tx_hash} does not follow its "
                "Transfer into the burn address"
            )
        named[(payment.tx_hash, payment.log_index)] = event.reference
    return named


@dataclass(frozen=True)
class Placement:
    """A drafted order as the ledger holds it, for deciding what a payment naming it does.
    `plan` carries the quoted price (the draft's, not today's catalog)."""

    plan: Plan
    terms: OrderTerms
    expires_at: datetime
    open: bool
    owner: str


@dataclass(frozen=True)
class Decision:
    """What a payment naming an order does: places it (`placement` set, `change` back to
    credit), or goes to credit whole for `reason`."""

    placement: Placement | None
    change: int
    reason: str | None

    def named(self) -> Named:
        """The decision as pricing takes it."""
        if self.placement is None:
            return Named(None, None, self.change)
        return Named(self.placement.plan, self.placement.terms, self.change)


def decide(
    payment: Payment,
    reference: str,
    drafts: Mapping[str, Placement],
    paid_at: datetime,
    credit: int = 0,
) -> Decision:
    """Paid in full, mined before the quote's deadline, for an open draft: placed, the
    excess to credit. Otherwise the whole amount is credit, and the reason says why.

    `credit` is the owner's credit just before this payment: a payment short of the quote
    places the order when that credit covers the rest (the checkout applies credit first
    and asks only for the difference); the rest is taken from it (a negative change)."""
    draft = drafts.get(reference)
    paid = f"{format_amount(payment.amount)} CTK"
    if draft is None:
        return Decision(None, payment.amount, f"{paid} named no order of this watcher")
    if not draft.open:
        return Decision(None, payment.amount, f"{paid} came after the order was already paid")
    if payment.payer != draft.owner:
        # The order, its SSH key and its access details are the owner's: another wallet's
        # payment does not buy it for them (it stays that wallet's credit).
        return Decision(None, payment.amount, f"{paid} came from {payment.payer}, not the owner")
    if paid_at >= draft.expires_at:
        return Decision(
            None,
            payment.amount,
            f"{paid} was mined at {paid_at:%Y-%m-%d %H:%M:%S} UTC, after the quote ran out "
            f"at {draft.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        )
    if payment.amount + max(credit, 0) < draft.plan.price:
        covered = f" and {format_amount(credit)} CTK of credit" if credit > 0 else ""
        return Decision(
            None,
            payment.amount,
            f"{paid}{covered} is short of the quoted {format_amount(draft.plan.price)} CTK",
        )
    return Decision(draft, payment.amount - draft.plan.price, None)
