"""A drafted order: what a signed-in buyer asks for before paying (plan, number of periods,
SSH key, an optional name), with a reference and a quote, like an invoice.

The quote is the plan's price per period times the periods, valid until a deadline
(BTCPay's invoices last 15 minutes; a wallet confirmation can take longer, so 30 here). The
reference is 32 random bytes: the Checkout contract's `ref`, which its `OrderPaid` event
names. Every check says what to change in one line, and nothing is clamped silently: "150"
periods or "2.5" get a message, not 100 or 2.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.domain.catalog import Catalog
from watcher.domain.errors import InvalidInput
from watcher.domain.pricing import Plan
from watcher.domain.ssh_keys import SshPublicKey, parse_ssh_public_key

QUOTE_VALIDITY = timedelta(minutes=30)
# More than this in one order is more likely a typo than a wish; leases are extended later.
MAX_PERIODS = 100
MAX_NAME = 64


@dataclass(frozen=True)
class DraftTerms:
    """What the buyer asked for, checked."""

    plan: Plan
    periods: int
    ssh_key: SshPublicKey
    name: str | None


@dataclass(frozen=True)
class Quote:
    unit_price: int  # base units per period
    price: int  # unit_price * periods
    expires_at: datetime


def new_reference() -> str:
    """A fresh order reference: 32 random bytes as 0x-hex (the contract's bytes32)."""
    return "0x" + secrets.token_hex(32)


def parse_periods(value: object) -> int:
    """A whole number of periods, 1 to MAX_PERIODS, as typed ("3") or sent (3)."""
    text = (
        str(value).strip()
        if isinstance(value, (str, int)) and not isinstance(value, bool)
        else None
    )
    # isdigit() alone lets "²" and other digit-like characters through.
    if text is None or len(text) > 6 or not (text.isascii() and text.isdigit()):
        raise InvalidInput(f"periods must be a whole number from 1 to {MAX_PERIODS}, got {value!r}")
    periods = int(text)
    if not 1 <= periods <= MAX_PERIODS:
        raise InvalidInput(f"periods must be from 1 to {MAX_PERIODS}, got {periods}")
    return periods


def parse_name(value: str | None) -> str | None:
    """An optional label for the order, shown on the dashboard and tagged on the resource."""
    if value is None or not value.strip():
        return None
    name = value.strip()
    if len(name) > MAX_NAME:
        raise InvalidInput(f"the name is longer than {MAX_NAME} characters")
    if not all(c.isprintable() for c in name):
        raise InvalidInput("the name must be printable text on one line")
    return name


def draft_terms(
    catalog: Catalog, plan: str, periods: object, ssh_key: str, name: str | None
) -> DraftTerms:
    """The buyer's request checked against the catalog; InvalidInput names the field."""
    chosen = catalog.plans.get(plan)
    if chosen is None:
        known = ", ".join(sorted(catalog.plans))
        raise InvalidInput(f"no plan {plan!r} here (plans: {known})")
    return DraftTerms(
        chosen, parse_periods(periods), parse_ssh_public_key(ssh_key), parse_name(name)
    )


def quote(terms: DraftTerms, now: datetime) -> Quote:
    return Quote(terms.plan.price, terms.plan.price * terms.periods, now + QUOTE_VALIDITY)
