"""Plans, prices and credit pooling: how paid amounts become orders.

A payer's credit is a running balance. Each payment adds its amount; every full price in
the balance becomes one order for the plan on offer when the payment is recorded (the
catalog's default plan, as the checkout shows it); the remainder stays as credit. So
25 CTK at 10 CTK buys two instances and leaves 5 CTK, and a later 5 CTK buys a third.
An order snapshots its plan's resource specification and price when it is created: what
the catalog says later never changes what was paid for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from eth_typing import ChecksumAddress

from watcher.domain.leases import LeaseTerms
from watcher.domain.payment import Payment
from watcher.domain.resources import ResourceSpec

# An hour per price, a day of grace, warnings a day and an hour ahead (LeaseTerms').
DEFAULT_LEASE = LeaseTerms()


@dataclass(frozen=True, slots=True)
class Plan:
    """What a price buys: a resource of some kind, with its parameters (see
    watcher/domain/resources.py and watcher/domain/kinds/)."""

    name: str
    price: int
    spec: ResourceSpec
    # How its time runs: the price buys one `lease.period` (watcher/domain/leases.py).
    lease: LeaseTerms = DEFAULT_LEASE

    def __post_init__(self) -> None:
        if self.price <= 0:
            raise ValueError(f"plan {self.name!r}: price must be greater than zero")

    def resource(self) -> str:
        """The resource specification an order keeps (JSON text): everything the
        provisioner needs, so the order does not depend on the catalog after it is paid."""
        return self.spec.to_json()

    @classmethod
    def from_order(
        cls, name: str, price: int, resource: str, lease_terms: str | None = None
    ) -> Plan:
        """The plan as an order (or a draft) recorded it (see `resource`; the lease terms
        as LeaseTerms.to_json wrote them, the default terms where none were kept)."""
        lease = LeaseTerms.from_json(lease_terms) if lease_terms else DEFAULT_LEASE
        return cls(name=name, price=price, spec=ResourceSpec.from_json(resource), lease=lease)


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """What a drafted order adds to its plan (watcher/domain/drafts.py): its reference,
    the periods bought, the buyer's SSH key and a name."""

    reference: str
    periods: int
    ssh_key: str
    name: str | None


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An order bought by `payment`; `unit` numbers the orders one payment completes.
    `terms` is set for an order the payment named (a drafted order, placed)."""

    order_id: str
    payment: Payment
    unit: int
    plan: Plan
    terms: OrderTerms | None = None

    @property
    def payer(self) -> ChecksumAddress:
        return self.payment.payer


def order_id(chain_id: int, tx_hash: str, log_index: int, unit: int) -> str:
    """Deterministic: replaying the chain into an empty ledger yields the same ids."""
    seed = f"{chain_id}:{tx_hash.lower()}:{log_index}:{unit}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


def credit_order_id(chain_id: int, reference: str) -> str:
    """The id of the order a draft's owner buys from credit: one per draft, whatever
    happens to the ledger (its instance is tagged with it; a draft reopened by a reorg and
    bought again finds that instance)."""
    seed = f"{chain_id}:credit:{reference.lower()}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


DEFAULT_MAX_ORDERS_PER_PAYMENT = 100


# The orders a payment already bought before a reorg orphaned it (unit -> order id, price):
# mined again, the payment pays for exactly these first, at their own prices.
Kept = Mapping[int, tuple[str, int]]


def credit_payment(
    balance: int,
    payment: Payment,
    plan: Plan,
    max_orders: int = DEFAULT_MAX_ORDERS_PER_PAYMENT,
    kept: Kept | None = None,
) -> tuple[int, list[NewOrder]]:
    """Add one payment to a balance; return the new balance and the orders it completes.

    A negative balance (a debt left by a ledger from before migration 0005) is paid off
    before anything is bought. One payment buys at most `max_orders` orders: a mistyped
    amount must not launch a fleet (or 10**57 orders); the rest stays as credit, and the
    next payment buys from it.

    `kept` names the orders this payment bought before a reorg orphaned it (they exist,
    with their instances, and keep their ids even if the payment came back at another log
    index): each costs its own price, not the plan's, so the payment pays exactly for what
    it bought the first time.
    """
    total = balance + payment.amount
    if kept:
        return _credit_with_kept(total, payment, plan, max_orders, kept)
    units = min(total // plan.price, max_orders) if total > 0 else 0
    orders = [
        NewOrder(
            order_id(payment.chain_id, payment.tx_hash, payment.log_index, unit),
            payment,
            unit,
            plan,
        )
        for unit in range(units)
    ]
    return total - units * plan.price, orders


def _credit_with_kept(
    total: int, payment: Payment, plan: Plan, max_orders: int, kept: Kept
) -> tuple[int, list[NewOrder]]:
    orders: list[NewOrder] = []
    for unit in range(max_orders):
        new_id, price = kept.get(
            unit, (order_id(payment.chain_id, payment.tx_hash, payment.log_index, unit), plan.price)
        )
        if total < price:
            break
        total -= price
        orders.append(NewOrder(new_id, payment, unit, plan))
    return total, orders


@dataclass(frozen=True, slots=True)
class UnfundedOrder:
    """An order whose payment a reorg orphaned after its provisioning had started."""

    order_id: str
    tx_hash: str
    log_index: int
    unit: int
    payer: str
    amount: int
    failed: bool


def match_unfunded(
    payments: Iterable[Payment], unfunded: Iterable[UnfundedOrder]
) -> tuple[dict[tuple[str, int], dict[int, tuple[str, int]]], list[str]]:
    """Pair payments mined again with the orders they bought before the reorg.

    A transaction mined again usually lands at another log index (Ethereum numbers logs
    across the whole block), so an order is matched by its transaction, its payer and the
    transfer's position among that transaction's transfers from that payer, not by log
    index. Returns `kept` per payment key (tx hash, log index): unit -> (order id, price)
    for orders that may hold a resource (they keep their ids: the instance is tagged with
    it); and the ids of failed ones, which hold nothing and are bought afresh.
    """
    old: dict[tuple[str, str], dict[int, list[UnfundedOrder]]] = {}
    for order in unfunded:
        key = (order.tx_hash.lower(), order.payer)
        old.setdefault(key, {}).setdefault(order.log_index, []).append(order)
    new: dict[tuple[str, str], list[Payment]] = {}
    for payment in payments:
        key = (payment.tx_hash.lower(), payment.payer)
        if key in old:
            new.setdefault(key, []).append(payment)
    kept: dict[tuple[str, int], dict[int, tuple[str, int]]] = {}
    replaced: list[str] = []
    for key, mined_again in new.items():
        logs = old[key]
        ordered = sorted(mined_again, key=lambda p: p.log_index)
        for old_log, payment in zip(sorted(logs), ordered, strict=False):
            for order in logs[old_log]:
                if order.failed:
                    replaced.append(order.order_id)
                else:
                    units = kept.setdefault((payment.tx_hash, payment.log_index), {})
                    units[order.unit] = (order.order_id, order.amount)
    return kept, replaced


@dataclass(frozen=True)
class Pricing:
    """The outcome of crediting a batch of payments in chain order."""

    balances: dict[ChecksumAddress, int]
    orders: list[NewOrder]


@dataclass(frozen=True, slots=True)
class Named:
    """What a payment that names a drafted order does (watcher/domain/checkout.py
    `decide`): places it (`plan` at the quoted price, `terms`), `change` back to credit
    (negative: credit its payer had covered the rest); or, with no plan, goes to credit
    whole."""

    plan: Plan | None
    terms: OrderTerms | None
    change: int


def credit_payments(
    balances: Mapping[ChecksumAddress, int],
    payments: Iterable[Payment],
    plan: Plan,
    max_orders: int = DEFAULT_MAX_ORDERS_PER_PAYMENT,
    kept: Mapping[tuple[str, int], Kept] | None = None,
    named: Callable[[Payment, int], Named | None] | None = None,
    vending: bool = True,
) -> Pricing:
    """Credit payments (already in chain order) on top of the payers' balances; every
    order is for `plan` (the one on offer), except kept orders (see `credit_payment`)
    and the order a payment names: `named(payment, balance)` says what a payment does
    when it names one (None for a plain payment), given its payer's balance just before
    it; such a payment buys that order or nothing, never the plan on offer, and what it
    does not spend stays credit (a negative change spends credit on the order)."""
    updated = dict(balances)
    orders: list[NewOrder] = []
    for payment in payments:
        key = (payment.tx_hash, payment.log_index)
        balance = updated.get(payment.payer, 0)
        decision = named(payment, balance) if named else None
        if decision is not None:
            units = kept.get(key) if kept else None
            if units:
                # Mined again after a reorg: it pays for the order it placed before, which
                # exists and keeps its id; the rest is credit. A payment that was short and
                # placed it with the payer's credit may find that credit spent since: the
                # order then stays unfunded (flagged for the operator), never a debt.
                total = balance + payment.amount
                for unit, (kept_id, price) in sorted(units.items()):
                    if total < price:
                        break
                    orders.append(NewOrder(kept_id, payment, unit, decision.plan or plan))
                    total -= price
                updated[payment.payer] = total
                continue
            if decision.plan is not None:
                new_id = order_id(payment.chain_id, payment.tx_hash, payment.log_index, 0)
                orders.append(NewOrder(new_id, payment, 0, decision.plan, decision.terms))
            updated[payment.payer] = balance + decision.change
            continue
        if not vending:
            # No vending: a plain payment is credit, spent on an order its payer chooses;
            # mined again after a reorg, it pays for the orders it bought before, no more.
            balance = updated.get(payment.payer, 0) + payment.amount
            for unit, (kept_id, price) in sorted((kept.get(key) or {}).items() if kept else []):
                orders.append(NewOrder(kept_id, payment, unit, plan))
                balance -= price
            updated[payment.payer] = balance
            continue
        balance, bought = credit_payment(
            updated.get(payment.payer, 0),
            payment,
            plan,
            max_orders,
            kept.get((payment.tx_hash, payment.log_index)) if kept else None,
        )
        updated[payment.payer] = balance
        orders.extend(bought)
    return Pricing(updated, orders)
