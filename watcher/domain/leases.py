"""Leases: paid time that runs out safely, can be extended, and never ends by surprise.

Every order is a lease on its resource. Paid time starts when the resource first runs (the
buyer is not charged for the launch) and lasts the periods bought. Before it ends, warnings
go out at the plan's lead times; at the end the resource is stopped (its disk kept) and
the lease is in grace; after the grace it is terminated. Extending adds periods (in grace
it starts the resource again); the owner may cancel, getting back the whole periods not
begun; a resource ended outside the watcher ends its lease with the same refund.

    paid -> provisioning -> active <-> expiring -> stopping -> stopped -> terminating -> terminated
      \\           \\            \\          \\          \\          \\
       cancelled    failed      (extend)   (extend)  starting <-(extend)      cancelled (owner)

This module is pure: each transition is a function from a lease (and the time, and the
plan's lease terms) to the next lease and the effects to carry out (a warning, a stop, a
start, a termination, a refund). A transition the state does not allow raises
`IllegalTransition`, so a stale job or a racing request cannot move a lease backwards.
The ledger stores the fields and runs each transition in one transaction; the jobs carry
out the effects with the provisioner's guarantees (look at the cloud first, recorded
phases, idempotent).

Lessons taken from others (../shared/ANCHORS.md): a lease never stops on an unknown answer
(the caller confirms a stop or a termination before calling `stopped`/`terminated`); a
renewal and the expiry are decided by one function on one stored lease, so a renewal
racing the expiry can neither charge twice nor stop a paid lease (LNVPS once charged a
plan twice because its "expiring soon" window overlapped the renewal); warnings are capped
at half the period, so a short plan is not permanently "expiring".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class LeaseState(StrEnum):
    PAID = "paid"  #: paid for, its resource not asked for yet
    PROVISIONING = "provisioning"  #: its resource is being launched
    ACTIVE = "active"  #: running, paid until `paid_until`
    EXPIRING = "expiring"  #: running, and warned that its paid time ends soon
    STOPPING = "stopping"  #: paid time over: the stop job runs
    STOPPED = "stopped"  #: stopped, its disk kept, in grace until `grace_until`
    STARTING = "starting"  #: extended after its paid time ended: the start job runs
    TERMINATING = "terminating"  #: grace over, or cancelled: the terminate job runs
    TERMINATED = "terminated"  #: ended for good (expired, or ended outside the watcher)
    CANCELLED = "cancelled"  #: ended early by its owner
    FAILED = "failed"  #: could not be provisioned; refunded whole

    @property
    def ended(self) -> bool:
        return self in _ENDED

    @property
    def running(self) -> bool:
        """Paid time runs and the resource is meant to run."""
        return self in (LeaseState.ACTIVE, LeaseState.EXPIRING)


_ENDED = frozenset({LeaseState.TERMINATED, LeaseState.CANCELLED, LeaseState.FAILED})


class Refund(StrEnum):
    """What a lease that ends early gives back (a plan's `refund` key)."""

    UNUSED_PERIODS = "unused-periods"  #: every whole period not begun
    NONE = "none"


class IllegalTransition(ValueError):
    """The lease's state does not allow this; the text says why in the owner's words."""


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    """A plan's lease terms (catalog keys `period`, `grace`, `warn`, `refund`,
    `max_prepaid`): durations, so tests can set them in seconds."""

    period: timedelta = timedelta(hours=1)
    grace: timedelta = timedelta(hours=24)
    # Lead times before the end at which a warning goes out, longest first.
    warnings: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=1))
    refund: Refund = Refund.UNUSED_PERIODS
    # Auto-renew never prepays more than this many periods ahead of now.
    max_prepaid: int = 24

    def __post_init__(self) -> None:
        if self.period <= timedelta(0):
            raise ValueError("a lease period must be longer than zero")
        if self.grace < timedelta(0):
            raise ValueError("a grace period cannot be negative")
        if self.max_prepaid < 1:
            raise ValueError("max_prepaid must be at least 1 period")
        if any(lead <= timedelta(0) for lead in self.warnings):
            raise ValueError("warning lead times must be longer than zero")

    def to_json(self) -> str:
        """As an order keeps them (what the catalog said when it was paid for)."""
        return json.dumps(
            {
                "period_s": int(self.period.total_seconds()),
                "grace_s": int(self.grace.total_seconds()),
                "warn_s": [int(lead.total_seconds()) for lead in self.warnings],
                "refund": self.refund.value,
                "max_prepaid": self.max_prepaid,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> LeaseTerms:
        data = json.loads(text)
        return cls(
            period=timedelta(seconds=data["period_s"]),
            grace=timedelta(seconds=data["grace_s"]),
            warnings=tuple(timedelta(seconds=s) for s in data["warn_s"]),
            refund=Refund(data["refund"]),
            max_prepaid=int(data["max_prepaid"]),
        )

    @property
    def leads(self) -> tuple[timedelta, ...]:
        """The warning lead times that apply: at most half the period (a one-hour plan
        is not "expiring" from the start), longest first, each once."""
        cap = self.period / 2
        return tuple(sorted({min(lead, cap) for lead in self.warnings}, reverse=True))


# --- effects: what a transition asks the world to do ---


@dataclass(frozen=True, slots=True)
class Warn:
    lead: timedelta  #: how long before the end this warning is
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class Terminate:
    pass


@dataclass(frozen=True, slots=True)
class Credit:
    """Base units back to the owner's credit (a refund), or, negative, taken from it (an
    auto-renewal)."""

    amount: int
    why: str


Effect = Warn | Stop | Start | Terminate | Credit


@dataclass(frozen=True, slots=True)
class Lease:
    state: LeaseState
    #: The price of one period, in base units (the order's price divided by its periods).
    period_price: int
    #: Periods paid for in all (bought, extended, renewed), less those refunded.
    periods: int
    started_at: datetime | None = None
    paid_until: datetime | None = None
    grace_until: datetime | None = None
    #: How many of the terms' warning leads have gone out for this `paid_until`.
    warned: int = 0
    auto_renew: bool = False
    #: Ended by its owner (terminating, then cancelled rather than terminated).
    cancelled: bool = False

    @property
    def spent(self) -> int:
        """What the lease holds of its owner's money now."""
        return self.period_price * self.periods


def new_lease(period_price: int, periods: int, auto_renew: bool = False) -> Lease:
    if period_price <= 0 or periods <= 0:
        raise ValueError("a lease is at least one period at a price above zero")
    return Lease(LeaseState.PAID, period_price, periods, auto_renew=auto_renew)


def _require(lease: Lease, allowed: frozenset[LeaseState] | set[LeaseState], what: str) -> None:
    if lease.state not in allowed:
        raise IllegalTransition(f"cannot {what}: the lease is {lease.state.value}")


def provisioning(lease: Lease) -> Lease:
    _require(lease, {LeaseState.PAID}, "provision")
    return replace(lease, state=LeaseState.PROVISIONING)


def running(lease: Lease, now: datetime, terms: LeaseTerms) -> Lease:
    """The resource runs: the first time, paid time starts now; after a start (an
    extension in grace), paid time is as the extension set it."""
    if lease.state is LeaseState.STARTING:
        return replace(lease, state=LeaseState.ACTIVE, grace_until=None, warned=0)
    _require(lease, {LeaseState.PROVISIONING}, "mark it running")
    return replace(
        lease,
        state=LeaseState.ACTIVE,
        started_at=now,
        paid_until=now + terms.period * lease.periods,
        warned=0,
    )


def failed(lease: Lease) -> tuple[Lease, list[Effect]]:
    """Its resource could not be provisioned: everything paid comes back."""
    _require(lease, {LeaseState.PAID, LeaseState.PROVISIONING}, "fail it")
    return replace(lease, state=LeaseState.FAILED, periods=0), [
        Credit(lease.spent, "not provisioned")
    ]


def due(
    lease: Lease, now: datetime, terms: LeaseTerms, credit: int = 0
) -> tuple[Lease, list[Effect]]:
    """What time alone does to the lease at `now`: a warning, an auto-renewal from
    `credit` (the owner's), a stop at the end of paid time, a termination at the end of
    grace. The same lease and time always give the same answer, and the answer moves the
    lease on, so applying it twice is impossible: the second call sees the new state."""
    if lease.state in (LeaseState.ACTIVE, LeaseState.EXPIRING):
        assert lease.paid_until is not None
        until: datetime = lease.paid_until
        effects: list[Effect] = []
        leads = terms.leads
        if lease.auto_renew:
            # Renew one period at a time, when the last warning would be due, as long as
            # credit pays for it and it stays within the cap ahead of now.
            last_lead = leads[-1] if leads else terms.period / 2
            while (
                now >= until - last_lead
                and credit >= lease.period_price
                and until + terms.period <= now + terms.period * terms.max_prepaid
            ):
                credit -= lease.period_price
                until += terms.period
                effects.append(Credit(-lease.period_price, "auto-renewed one period"))
                lease = replace(
                    lease,
                    periods=lease.periods + 1,
                    paid_until=until,
                    state=LeaseState.ACTIVE,
                    warned=0,
                )
        if now >= until and leads and lease.warned < len(leads):
            # Its end has come and its last warning never went out (the watcher was down,
            # or enforcement was just turned on): warn now and stop after that lead, paid
            # time added free of charge. A lease never stops without its warning.
            lead = leads[-1]
            lease = replace(
                lease, state=LeaseState.EXPIRING, paid_until=now + lead, warned=len(leads)
            )
            return lease, [*effects, Warn(lead, now + lead)]
        if now >= until:
            return replace(lease, state=LeaseState.STOPPING), [*effects, Stop()]
        # Warnings not sent yet whose time has come; only the latest goes out (one
        # message, not a burst after a pause), the earlier ones count as sent.
        reached = [i for i, lead in enumerate(leads) if now >= until - lead]
        if reached and reached[-1] >= lease.warned:
            lead = leads[reached[-1]]
            lease = replace(lease, state=LeaseState.EXPIRING, warned=reached[-1] + 1)
            effects.append(Warn(lead, until))
        return lease, effects
    if lease.state is LeaseState.STOPPED:
        assert lease.grace_until is not None
        if now >= lease.grace_until:
            return replace(lease, state=LeaseState.TERMINATING), [Terminate()]
    return lease, []


def stopped(
    lease: Lease, terms: LeaseTerms, now: datetime | None = None
) -> tuple[Lease, list[Effect]]:
    """The stop is confirmed (the cloud says stopped) at `now`. In grace for the plan's
    grace from the stop (or from the end of paid time, if the stop came before it): a
    watcher that was down, or a stop that took long, never shortens the grace the disk
    is kept for. Extended meanwhile (starting): the resource starts again."""
    if lease.state is LeaseState.STARTING:
        return lease, [Start()]
    _require(lease, {LeaseState.STOPPING}, "mark it stopped")
    assert lease.paid_until is not None
    since = max(lease.paid_until, now) if now is not None else lease.paid_until
    return replace(lease, state=LeaseState.STOPPED, grace_until=since + terms.grace), []


def extend(
    lease: Lease, periods: int, now: datetime, terms: LeaseTerms
) -> tuple[Lease, list[Effect]]:
    """More periods of the same lease (paid by the caller: a payment or credit). Running:
    added to the end. Ended or ending (stopping, stopped): paid time starts again now (the
    time it was stopped is not charged) and the resource starts."""
    if periods <= 0:
        raise IllegalTransition("extend by at least one period")
    if lease.state.ended or lease.state is LeaseState.TERMINATING:
        raise IllegalTransition(f"cannot extend: the lease is {lease.state.value}")
    more = terms.period * periods
    if lease.state in (LeaseState.PAID, LeaseState.PROVISIONING):
        return replace(lease, periods=lease.periods + periods), []
    assert lease.paid_until is not None
    if lease.state in (LeaseState.ACTIVE, LeaseState.EXPIRING):
        return replace(
            lease,
            state=LeaseState.ACTIVE,
            periods=lease.periods + periods,
            paid_until=lease.paid_until + more,
            warned=0,
        ), []
    if lease.state is LeaseState.STARTING:
        return replace(
            lease, periods=lease.periods + periods, paid_until=lease.paid_until + more
        ), []
    # Stopping or stopped: start again, paid from now. A stop still in flight finishes
    # first (`stopped` then asks for the start).
    effects: list[Effect] = [Start()] if lease.state is LeaseState.STOPPED else []
    return replace(
        lease,
        state=LeaseState.STARTING,
        periods=lease.periods + periods,
        paid_until=max(lease.paid_until, now) + more,
        warned=0,
    ), effects


def next_due(lease: Lease, terms: LeaseTerms) -> datetime | None:
    """The earliest moment `due` may do something to the lease (a warning, a renewal, a
    stop, a termination); None while only an event (a confirmation, a payment) moves it.
    The scheduler reads only leases whose moment has come, so its work per tick follows
    the leases that are due, not all of them."""
    if lease.state.running and lease.paid_until is not None:
        moments = [lease.paid_until]
        leads = terms.leads
        if lease.warned < len(leads):
            moments.append(lease.paid_until - leads[lease.warned])
        if lease.auto_renew:
            moments.append(lease.paid_until - (leads[-1] if leads else terms.period / 2))
        return min(moments)
    if lease.state is LeaseState.STOPPED:
        return lease.grace_until
    return None


def started(lease: Lease) -> Lease:
    """The start is confirmed: running again."""
    _require(lease, {LeaseState.STARTING}, "mark it started")
    return replace(lease, state=LeaseState.ACTIVE, grace_until=None, warned=0)


def unused_periods(lease: Lease, now: datetime, terms: LeaseTerms) -> int:
    """Whole periods of paid time not begun at `now` (what a refund gives back)."""
    if terms.refund is Refund.NONE:
        return 0
    if lease.state in (LeaseState.PAID,):
        return lease.periods
    if lease.paid_until is None or now >= lease.paid_until:
        return 0
    return min(lease.periods, (lease.paid_until - now) // terms.period)


def cancel(lease: Lease, now: datetime, terms: LeaseTerms) -> tuple[Lease, list[Effect]]:
    """The owner ends the lease. Not provisioned yet: everything comes back. Otherwise the
    resource is terminated and the whole periods not begun come back (the plan's rule)."""
    if lease.state is LeaseState.PAID:
        return replace(lease, state=LeaseState.CANCELLED, periods=0), [
            Credit(lease.spent, "cancelled before it was provisioned")
        ]
    if lease.state is LeaseState.PROVISIONING:
        raise IllegalTransition("cannot cancel while it is being launched: try again when it runs")
    if lease.state.ended or lease.state is LeaseState.TERMINATING:
        raise IllegalTransition(f"cannot cancel: the lease is {lease.state.value}")
    back = unused_periods(lease, now, terms)
    effects: list[Effect] = [Terminate()]
    if back:
        effects.append(Credit(back * lease.period_price, f"{back} unused period(s)"))
    assert lease.paid_until is not None
    return replace(
        lease,
        state=LeaseState.TERMINATING,
        periods=lease.periods - back,
        paid_until=min(lease.paid_until - terms.period * back, max(now, lease.paid_until)),
        cancelled=True,
    ), effects


def terminated(lease: Lease) -> Lease:
    """The termination is confirmed."""
    _require(lease, {LeaseState.TERMINATING}, "mark it terminated")
    state = LeaseState.CANCELLED if lease.cancelled else LeaseState.TERMINATED
    return replace(lease, state=state)


def ended_outside(lease: Lease, now: datetime, terms: LeaseTerms) -> tuple[Lease, list[Effect]]:
    """Its resource was terminated outside the watcher (confirmed by repeated looks): the
    lease ends, and the whole periods not begun come back."""
    if lease.state.ended:
        return lease, []
    if lease.state in (LeaseState.PAID, LeaseState.PROVISIONING):
        raise IllegalTransition("a lease not yet running has no resource to lose")
    back = unused_periods(lease, now, terms)
    effects: list[Effect] = (
        [Credit(back * lease.period_price, f"{back} unused period(s)")] if back else []
    )
    return replace(lease, state=LeaseState.TERMINATED, periods=lease.periods - back), effects


def period_words(period: timedelta) -> tuple[str, str]:
    """How a buyer reads one period and several: ("hour", "hours"), ("day", "days"),
    ("15-minute period", "15-minute periods")."""
    seconds = int(period.total_seconds())
    for size, word in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            count = seconds // size
            if count == 1:
                return word, word + "s"
            return f"{count}-{word} period", f"{count}-{word} periods"
    raise AssertionError("a period is whole seconds")  # pragma: no cover - LeaseTerms


_DURATION = re.compile(r"([0-9]+)\s*(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, what: str) -> timedelta:
    """ "90s", "15m", "1h", "7d" (whole numbers, one unit): ValueError names `what`."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f'{what} must be a whole number and a unit, like "30s", "15m", "1h" or "7d"'
        )
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])
