"""Plans, prices and credit pooling: how paid amounts become orders.

A payer's credit is a running balance. Each payment adds its amount; every full price in
the balance becomes one order for the payer's plan; the remainder stays as credit. So
25 CTK at 10 CTK buys two instances and leaves 5 CTK, and a later 5 CTK buys a third.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from eth_typing import ChecksumAddress

from watcher.core.payment import Payment


@dataclass(frozen=True, slots=True)
class Plan:
    """What a price buys: an EC2 instance of this type, launched from this AMI with this key
    pair, security groups and subnet (AWS defaults where unset)."""

    name: str
    price: int
    instance_type: str
    ami: str = ""
    key_name: str | None = None
    security_group_ids: tuple[str, ...] = ()
    subnet_id: str | None = None

    def __post_init__(self) -> None:
        if self.price <= 0:
            raise ValueError(f"plan {self.name!r}: price must be greater than zero")


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An order bought by `payment`; `unit` numbers the orders one payment completes."""

    order_id: str
    payment: Payment
    unit: int
    plan: Plan

    @property
    def payer(self) -> ChecksumAddress:
        return self.payment.payer


def order_id(chain_id: int, tx_hash: str, log_index: int, unit: int) -> str:
    """Deterministic: replaying the chain into an empty ledger yields the same ids."""
    seed = f"{chain_id}:{tx_hash.lower()}:{log_index}:{unit}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


DEFAULT_MAX_ORDERS_PER_PAYMENT = 100


def credit_payment(
    balance: int, payment: Payment, plan: Plan, max_orders: int = DEFAULT_MAX_ORDERS_PER_PAYMENT
) -> tuple[int, list[NewOrder]]:
    """Add one payment to a balance; return the new balance and the orders it completes.

    A negative balance (a debt left by a deep reorg) is paid off before anything is bought.
    One payment buys at most `max_orders` orders: a mistyped amount must not launch a fleet
    (or 10**57 orders); the rest stays as credit, and the next payment buys from it.
    """
    total = balance + payment.amount
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


@dataclass(frozen=True)
class Pricing:
    """The outcome of crediting a batch of payments in chain order."""

    balances: dict[ChecksumAddress, int]
    orders: list[NewOrder]


def credit_payments(
    balances: Mapping[ChecksumAddress, int],
    payments: Iterable[Payment],
    plan_of: Mapping[ChecksumAddress, Plan],
    max_orders: int = DEFAULT_MAX_ORDERS_PER_PAYMENT,
) -> Pricing:
    """Credit payments (already in chain order) on top of the payers' balances."""
    updated = dict(balances)
    orders: list[NewOrder] = []
    for payment in payments:
        balance, bought = credit_payment(
            updated.get(payment.payer, 0), payment, plan_of[payment.payer], max_orders
        )
        updated[payment.payer] = balance
        orders.extend(bought)
    return Pricing(updated, orders)
