"""Leases as the ledger keeps them: on the order's row (watcher/domain/leases.py is the
state machine). The one place that turns a lease into its columns and back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watcher.domain.leases import Lease, LeaseState, LeaseTerms, next_due, running


def first_run(terms_json: str, periods: int | None, amount: int, now: datetime) -> dict[str, Any]:
    """The columns of a lease whose resource runs for the first time at `now`: paid time
    starts then, for the periods bought (one, for an order the thesis's vending bought)."""
    terms = LeaseTerms.from_json(terms_json)
    count = periods or 1
    lease = running(Lease(LeaseState.PROVISIONING, amount // count, count), now, terms)
    return columns(lease, terms)


def columns(lease: Lease, terms: LeaseTerms) -> dict[str, Any]:
    """The order columns that hold `lease` (amount and periods included: what it holds of
    its owner's money is period_price x periods)."""
    return {
        "lease_state": lease.state.value,
        "paid_until": lease.paid_until,
        "grace_until": lease.grace_until,
        "warned": lease.warned,
        "auto_renew": lease.auto_renew,
        "cancelled": lease.cancelled,
        "periods": lease.periods,
        "amount": lease.spent,
        "due_at": next_due(lease, terms),
    }


def lease_of(row: Any) -> tuple[Lease, LeaseTerms]:
    """The lease on an order row that has one (lease_state set) and its terms."""
    periods = row.periods or 1
    lease = Lease(
        state=LeaseState(row.lease_state),
        period_price=row.amount // periods,
        periods=periods,
        paid_until=row.paid_until,
        grace_until=row.grace_until,
        warned=row.warned or 0,
        auto_renew=bool(row.auto_renew),
        cancelled=bool(row.cancelled),
    )
    return lease, LeaseTerms.from_json(row.lease_terms)
