"""Comparing the ledger with the world, with no I/O: with a fresh replay of the chain, and
with the cloud's tagged resources. `watcher audit` prints the differences; `watcher run`
sweeps the cloud side periodically and counts them. Each difference says what, which
order and which resource."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from watcher.domain.order import OrderState


class DifferenceKind(StrEnum):
    PAYMENT_MISSING = "payment_missing"  # on chain, not in the ledger
    PAYMENT_EXTRA = "payment_extra"  # in the ledger, not on chain
    PAYMENT_DIFFERS = "payment_differs"  # same key, other payer, amount or block
    MONEY_UNBALANCED = "money_unbalanced"  # a payer's paid != credit + spent
    ORDER_MISSING = "order_missing"  # a replay makes it, the ledger has not
    ORDER_EXTRA = "order_extra"  # the ledger has it, a replay does not make it
    ORDER_DIFFERS = "order_differs"  # same id, other payer, price, plan or resource
    CREDIT_DIFFERS = "credit_differs"  # a payer's credit differs from a replay's
    ORDER_UNPAID = "order_unpaid"  # funded, but its payment is not in the ledger there
    ORDER_FLAG_STALE = "order_flag_stale"  # flagged unfunded, yet its payment is recorded
    RESOURCE_MISSING = "resource_missing"  # the order holds a resource, the cloud has none
    RESOURCE_ENDED = "resource_ended"  # the order holds a resource, it was terminated
    RESOURCE_DUPLICATE = "resource_duplicate"  # more than one live resource for one order
    RESOURCE_MISMATCH = "resource_mismatch"  # the ledger names another resource
    RESOURCE_UNRECORDED = "resource_unrecorded"  # live resource, the ledger does not know it
    RESOURCE_WITHOUT_ORDER = "resource_without_order"  # tagged, no such order in the ledger


@dataclass(frozen=True, slots=True)
class Difference:
    kind: DifferenceKind
    detail: str
    order_id: str | None = None
    resource: str | None = None
    payer: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {
            "kind": self.kind.value,
            "order_id": self.order_id,
            "resource": self.resource,
            "payer": self.payer,
            "detail": self.detail,
        }

    def line(self) -> str:
        where = " ".join(
            f"{name}={value}"
            for name, value in (
                ("order", self.order_id),
                ("resource", self.resource),
                ("payer", self.payer),
            )
            if value
        )
        return f"{self.kind.value:<24} {where}  {self.detail}".rstrip()


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    tx_hash: str
    log_index: int
    block_number: int
    payer: str
    amount: int


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What the ledger says of an order that matters to money and to the cloud."""

    order_id: str
    payer: str
    amount: int
    plan: str
    resource: str | None
    state: OrderState
    resource_id: str | None
    unfunded: bool
    # The payment that bought it; None for an order its owner bought from credit.
    tx_hash: str | None = ""
    log_index: int | None = -1
    block_number: int = -1
    # Its lease, once it ran (None: not yet, or sold without an end): a lease that ended
    # holds no resource any more, one being terminated may or may not still.
    lease_state: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceFacts:
    """A resource the cloud holds with our tags."""

    resource_id: str
    order_id: str | None
    live: bool
    state: str


def compare_payments(
    ledger: Sequence[PaymentFacts], chain: Sequence[PaymentFacts]
) -> list[Difference]:
    mine = {(p.tx_hash, p.log_index): p for p in ledger}
    theirs = {(p.tx_hash, p.log_index): p for p in chain}
    found: list[Difference] = []
    for key in sorted(theirs.keys() - mine.keys(), key=lambda k: theirs[k].block_number):
        p = theirs[key]
        found.append(
            Difference(
                DifferenceKind.PAYMENT_MISSING,
                f"tx {p.tx_hash} log {p.log_index} in block {p.block_number}: {p.amount} paid",
                payer=p.payer,
            )
        )
    for key in sorted(mine.keys() - theirs.keys(), key=lambda k: mine[k].block_number):
        p = mine[key]
        found.append(
            Difference(
                DifferenceKind.PAYMENT_EXTRA,
                f"tx {p.tx_hash} log {p.log_index} in block {p.block_number} is not on chain",
                payer=p.payer,
            )
        )
    for key in sorted(mine.keys() & theirs.keys()):
        if mine[key] != theirs[key]:
            found.append(
                Difference(
                    DifferenceKind.PAYMENT_DIFFERS,
                    f"tx {key[0]} log {key[1]}: ledger {mine[key]}, chain {theirs[key]}",
                    payer=mine[key].payer,
                )
            )
    return found


def check_money(
    payments: Iterable[PaymentFacts], credit: Mapping[str, int], orders: Iterable[OrderFacts]
) -> list[Difference]:
    """Per payer: every paid base unit is in credit or in an order that is spent (funded
    and not failed; a failed order's price is back in credit)."""
    paid: dict[str, int] = defaultdict(int)
    spent: dict[str, int] = defaultdict(int)
    for p in payments:
        paid[p.payer] += p.amount
    for o in orders:
        if o.state is not OrderState.FAILED and not o.unfunded:
            spent[o.payer] += o.amount
    found: list[Difference] = []
    for payer in sorted(set(paid) | set(credit) | set(spent)):
        left, right = paid[payer], credit.get(payer, 0) + spent[payer]
        if left != right:
            found.append(
                Difference(
                    DifferenceKind.MONEY_UNBALANCED,
                    f"paid {left} != credit {credit.get(payer, 0)} + spent {spent[payer]} "
                    f"(off by {right - left})",
                    payer=payer,
                )
            )
    return found


def check_orders_paid(
    orders: Iterable[OrderFacts], payments: Iterable[PaymentFacts]
) -> list[Difference]:
    """Each funded order's payment is in the ledger, in the block the order names (a
    later reorg finds orders by block); no unfunded order's payment is."""
    by_key = {(p.tx_hash.lower(), p.log_index): p for p in payments}
    paid_txs = {(p.tx_hash.lower(), p.payer) for p in by_key.values()}
    found: list[Difference] = []
    for o in orders:
        if o.tx_hash is None or o.log_index is None:
            continue  # bought from credit: no payment of its own (check_money counts it)
        payment = by_key.get((o.tx_hash.lower(), o.log_index))
        if o.unfunded:
            if (o.tx_hash.lower(), o.payer) in paid_txs:
                found.append(
                    Difference(
                        DifferenceKind.ORDER_FLAG_STALE,
                        f"flagged unfunded, but tx {o.tx_hash} of its payer is recorded",
                        order_id=o.order_id,
                        payer=o.payer,
                    )
                )
        elif payment is None:
            found.append(
                Difference(
                    DifferenceKind.ORDER_UNPAID,
                    f"no payment tx {o.tx_hash} log {o.log_index} in the ledger",
                    order_id=o.order_id,
                    payer=o.payer,
                )
            )
        elif payment.block_number != o.block_number or payment.payer != o.payer:
            found.append(
                Difference(
                    DifferenceKind.ORDER_UNPAID,
                    f"its payment is in block {payment.block_number} from {payment.payer}, "
                    f"the order says block {o.block_number} from {o.payer}",
                    order_id=o.order_id,
                    payer=o.payer,
                )
            )
    return found


def compare_orders(
    ledger: Sequence[OrderFacts],
    replayed: Sequence[OrderFacts],
    ledger_credit: Mapping[str, int],
    replayed_credit: Mapping[str, int],
    vending: bool = False,
) -> tuple[list[Difference], list[str]]:
    """The ledger's orders and credit against a fresh replay's. A refund (a failed order)
    or a reorg (an unfunded order) changes how a payer's later payments pool, so for such a
    payer the order set and credit may differ from a replay's without anything being wrong:
    those are returned as notes, and the money check above still holds for them.

    Orders bought from credit are not on chain: a replay keeps their price as credit. So
    each one's price (while it is spent) is taken off the replay's credit of its payer,
    and the orders themselves are not looked for in the replay. With `vending` on, that
    credit would have bought the plan on offer in a replay: their payers' differences are
    notes too (without it, a difference for them is one)."""
    from_credit = [o for o in ledger if o.tx_hash is None]
    mine = {o.order_id: o for o in ledger if o.tx_hash is not None}
    theirs = {o.order_id: o for o in replayed}
    moved = {o.payer for o in ledger if o.state is OrderState.FAILED or o.unfunded}
    # A lease extended, renewed, cancelled or ended outside holds another amount than the
    # price a replay charges, and moved credit with it: its payer's differences are notes
    # (check_money still holds for them).
    replayed_price = {o.order_id: o.amount for o in replayed}
    moved |= {
        o.payer
        for o in ledger
        if o.lease_state is not None and o.amount != replayed_price.get(o.order_id, o.amount)
    }
    if vending:
        moved |= {o.payer for o in from_credit}
    spent_from_credit: dict[str, int] = defaultdict(int)
    for o in from_credit:
        if o.state is not OrderState.FAILED and not o.unfunded:
            spent_from_credit[o.payer] += o.amount
    found: list[Difference] = []
    notes: list[str] = []
    for order_id in sorted(mine.keys() & theirs.keys()):
        a, b = mine[order_id], theirs[order_id]
        for name in ("payer", "amount", "plan", "resource"):
            if name == "resource" and a.resource is None:
                continue  # recorded before orders kept their specification: unknown
            if name == "amount" and a.lease_state is not None:
                continue  # a lease's periods move its amount (see `moved` above)
            if getattr(a, name) != getattr(b, name):
                hint = "" if name == "payer" else " (the replay prices with today's catalog)"
                found.append(
                    Difference(
                        DifferenceKind.ORDER_DIFFERS,
                        f"{name}: ledger {getattr(a, name)!r}, replay {getattr(b, name)!r}" + hint,
                        order_id=order_id,
                        payer=a.payer,
                    )
                )
    for order_id in sorted(theirs.keys() - mine.keys()):
        o = theirs[order_id]
        if o.payer in moved:
            notes.append(
                f"order {order_id} of {o.payer}: not in the ledger "
                "(refunds or credit purchases re-pooled)"
            )
            continue
        found.append(
            Difference(
                DifferenceKind.ORDER_MISSING,
                f"a replay buys it ({o.plan}, {o.amount})",
                order_id=order_id,
                payer=o.payer,
            )
        )
    for order_id in sorted(mine.keys() - theirs.keys()):
        o = mine[order_id]
        if o.payer in moved:
            notes.append(
                f"order {order_id} of {o.payer}: not in a replay "
                "(refunds or credit purchases re-pooled)"
            )
            continue
        found.append(
            Difference(
                DifferenceKind.ORDER_EXTRA,
                f"a replay does not buy it ({o.plan}, {o.amount}, {o.state.value})",
                order_id=order_id,
                payer=o.payer,
            )
        )
    for payer in sorted(set(ledger_credit) | set(replayed_credit)):
        have = ledger_credit.get(payer, 0)
        want = replayed_credit.get(payer, 0) - spent_from_credit[payer]
        if have != want:
            if payer in moved:
                notes.append(
                    f"credit of {payer}: {have} in the ledger, {want} in a replay "
                    "(refunds or credit purchases)"
                )
                continue
            found.append(
                Difference(
                    DifferenceKind.CREDIT_DIFFERS, f"ledger {have}, replay {want}", payer=payer
                )
            )
    return found, notes


def compare_cloud(
    orders: Sequence[OrderFacts], resources: Sequence[ResourceFacts]
) -> list[Difference]:
    """Each order that holds a resource has exactly one live tagged resource, the one the
    ledger names; no live tagged resource lacks an order that holds it."""
    by_order: dict[str, list[ResourceFacts]] = defaultdict(list)
    for r in resources:
        by_order[r.order_id or ""].append(r)
    known = {o.order_id for o in orders}
    found: list[Difference] = []
    for o in orders:
        mine = by_order.get(o.order_id, [])
        live = [r for r in mine if r.live]
        ending = o.lease_state == "terminating"
        holds = o.state.holds_resource and o.lease_state not in ("terminated", "cancelled")
        if len(live) > 1:
            found.append(
                Difference(
                    DifferenceKind.RESOURCE_DUPLICATE,
                    f"{len(live)} live resources: " + ", ".join(r.resource_id for r in live),
                    order_id=o.order_id,
                    resource=",".join(r.resource_id for r in live),
                    payer=o.payer,
                )
            )
        if holds and not ending and o.state is not OrderState.LAUNCHING and not live:
            ended = [r for r in mine if not r.live]
            if ended:
                found.append(
                    Difference(
                        DifferenceKind.RESOURCE_ENDED,
                        f"the order is {o.state.value}, its resource is {ended[0].state}",
                        order_id=o.order_id,
                        resource=ended[0].resource_id,
                        payer=o.payer,
                    )
                )
            else:
                found.append(
                    Difference(
                        DifferenceKind.RESOURCE_MISSING,
                        f"the order is {o.state.value}, the cloud has no resource tagged with it",
                        order_id=o.order_id,
                        resource=o.resource_id,
                        payer=o.payer,
                    )
                )
        elif (
            live
            and o.resource_id is not None
            and o.resource_id not in {r.resource_id for r in live}
        ):
            found.append(
                Difference(
                    DifferenceKind.RESOURCE_MISMATCH,
                    f"the ledger names {o.resource_id}, the cloud has "
                    + ", ".join(r.resource_id for r in live),
                    order_id=o.order_id,
                    resource=live[0].resource_id,
                    payer=o.payer,
                )
            )
        elif live and not holds and not ending:
            found.append(
                Difference(
                    DifferenceKind.RESOURCE_UNRECORDED,
                    f"the order is {o.state.value}, yet its resource is {live[0].state}",
                    order_id=o.order_id,
                    resource=live[0].resource_id,
                    payer=o.payer,
                )
            )
    for order_id, mine in sorted(by_order.items()):
        if order_id in known:
            continue
        for r in mine:
            if r.live:
                found.append(
                    Difference(
                        DifferenceKind.RESOURCE_WITHOUT_ORDER,
                        f"tagged OrderId={order_id or '(none)'}, {r.state}; no such order",
                        order_id=order_id or None,
                        resource=r.resource_id,
                    )
                )
    return found
