"""The lease state machine (issue 11), pure: every transition and every illegal one, the
timeline with second-long periods, extension in grace, auto-renew up to its cap, the
renewal/expiry race in both orders, cancel and refunds; and a property test that money is
conserved and nothing moves backwards whatever happens in whatever order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.domain.leases import (
    Credit,
    IllegalTransition,
    Lease,
    LeaseState,
    LeaseTerms,
    Refund,
    Start,
    Stop,
    Terminate,
    Warn,
    cancel,
    due,
    ended_outside,
    extend,
    failed,
    new_lease,
    parse_duration,
    provisioning,
    running,
    started,
    stopped,
    terminated,
    unused_periods,
)

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
# Second-long plans, as the tests of the running system use: a 10 s period, 5 s of
# grace, warnings 8 s (capped to 5 s: half the period) and 2 s before the end.
TERMS = LeaseTerms(period=10 * S, grace=5 * S, warnings=(8 * S, 2 * S), max_prepaid=3)
PRICE = 7


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def active(periods: int = 2, auto_renew: bool = False) -> Lease:
    """Running since T0, paid for `periods` periods."""
    return running(provisioning(new_lease(PRICE, periods, auto_renew)), T0, TERMS)


def warned(lease: Lease) -> Lease:
    """The lease as the scheduler leaves it when its last warning has gone out in time
    (a tick just before its end), so that its end stops it."""
    assert lease.paid_until is not None
    return due(lease, lease.paid_until - timedelta(milliseconds=1), TERMS)[0]


S_ALL = list(LeaseState)


def lease_in(state: LeaseState) -> Lease:
    """A lease in `state`, reached through the transitions themselves."""
    base = new_lease(PRICE, 2)
    if state is LeaseState.PAID:
        return base
    if state is LeaseState.PROVISIONING:
        return provisioning(base)
    if state is LeaseState.FAILED:
        return failed(provisioning(base))[0]
    lease = active()
    if state is LeaseState.ACTIVE:
        return lease
    if state is LeaseState.EXPIRING:
        return due(lease, at(16), TERMS)[0]
    if state is LeaseState.CANCELLED:
        return terminated(cancel(lease, at(1), TERMS)[0])
    lease = due(warned(lease), at(20), TERMS)[0]
    if state is LeaseState.STOPPING:
        return lease
    if state is LeaseState.STARTING:
        return extend(lease, 1, at(21), TERMS)[0]
    lease = stopped(lease, TERMS)[0]
    if state is LeaseState.STOPPED:
        return lease
    lease = due(lease, at(25), TERMS)[0]
    if state is LeaseState.TERMINATING:
        return lease
    assert state is LeaseState.TERMINATED
    return terminated(lease)


def test_every_state_is_reachable_as_itself() -> None:
    for state in S_ALL:
        assert lease_in(state).state is state


TRANSITIONS: dict[str, tuple[Callable[[Lease], Any], set[LeaseState]]] = {
    "provisioning": (provisioning, {LeaseState.PAID}),
    "running": (
        lambda lease: running(lease, at(30), TERMS),
        {LeaseState.PROVISIONING, LeaseState.STARTING},
    ),
    "failed": (failed, {LeaseState.PAID, LeaseState.PROVISIONING}),
    "stopped": (lambda lease: stopped(lease, TERMS), {LeaseState.STOPPING, LeaseState.STARTING}),
    "started": (started, {LeaseState.STARTING}),
    "terminated": (terminated, {LeaseState.TERMINATING}),
    "extend": (
        lambda lease: extend(lease, 1, at(30), TERMS),
        set(S_ALL)
        - {
            LeaseState.TERMINATING,
            LeaseState.TERMINATED,
            LeaseState.CANCELLED,
            LeaseState.FAILED,
        },
    ),
    "cancel": (
        lambda lease: cancel(lease, at(30), TERMS),
        {
            LeaseState.PAID,
            LeaseState.ACTIVE,
            LeaseState.EXPIRING,
            LeaseState.STOPPING,
            LeaseState.STOPPED,
            LeaseState.STARTING,
        },
    ),
    "ended_outside": (
        lambda lease: ended_outside(lease, at(30), TERMS),
        set(S_ALL) - {LeaseState.PAID, LeaseState.PROVISIONING},
    ),
}


@pytest.mark.parametrize("name", sorted(TRANSITIONS))
@pytest.mark.parametrize("state", S_ALL, ids=[s.value for s in S_ALL])
def test_each_transition_is_allowed_exactly_where_it_should_be(
    name: str, state: LeaseState
) -> None:
    transition, allowed = TRANSITIONS[name]
    lease = lease_in(state)
    if state in allowed:
        transition(lease)
    else:
        with pytest.raises(IllegalTransition, match=r"cannot|not yet running"):
            transition(lease)


def test_the_timeline_paid_running_warned_stopped_in_grace_terminated() -> None:
    lease = new_lease(PRICE, 2)
    lease = provisioning(lease)
    lease = running(lease, T0, TERMS)
    assert (lease.state, lease.paid_until) == (LeaseState.ACTIVE, at(20))
    assert due(lease, at(14), TERMS) == (lease, [])
    # The 8 s lead is capped at half the period (5 s): first warning at 15 s.
    lease, effects = due(lease, at(15), TERMS)
    assert (lease.state, effects) == (LeaseState.EXPIRING, [Warn(5 * S, at(20))])
    assert due(lease, at(16), TERMS) == (lease, [])  # sent once
    lease, effects = due(lease, at(18), TERMS)
    assert effects == [Warn(2 * S, at(20))]
    lease, effects = due(lease, at(20), TERMS)
    assert (lease.state, effects) == (LeaseState.STOPPING, [Stop()])
    assert due(lease, at(21), TERMS) == (lease, [])  # the stop job is on it
    lease, effects = stopped(lease, TERMS)
    assert (lease.state, lease.grace_until, effects) == (LeaseState.STOPPED, at(25), [])
    assert due(lease, at(24), TERMS) == (lease, [])
    lease, effects = due(lease, at(25), TERMS)
    assert (lease.state, effects) == (LeaseState.TERMINATING, [Terminate()])
    lease = terminated(lease)
    assert lease.state is LeaseState.TERMINATED and lease.spent == 2 * PRICE


def test_a_lease_never_stops_without_its_last_warning() -> None:
    """Its end came while nobody warned (the watcher was down, or enforcement was just
    turned on): the last warning goes out now and the stop waits for its lead, free; and
    the grace runs from the stop, not from the end of paid time."""
    lease, effects = due(active(), at(60), TERMS)
    assert (lease.state, effects, lease.paid_until) == (
        LeaseState.EXPIRING,
        [Warn(2 * S, at(62))],
        at(62),
    )
    assert lease.spent == 2 * PRICE  # nothing charged for the courtesy
    lease, effects = due(lease, at(62), TERMS)
    assert effects == [Stop()]
    lease, _ = stopped(lease, TERMS, at(70))  # the stop took 8 s to be confirmed
    assert lease.grace_until == at(75)


def test_warnings_missed_during_a_pause_go_out_once_the_latest() -> None:
    lease, effects = due(active(), at(19), TERMS)
    assert effects == [Warn(2 * S, at(20))] and lease.warned == 2
    assert due(lease, at(19.5), TERMS)[1] == []


def test_extending_in_grace_starts_it_again_paid_from_now() -> None:
    lease = stopped(due(warned(active()), at(20), TERMS)[0], TERMS)[0]
    lease, effects = extend(lease, 1, at(22), TERMS)
    assert (lease.state, effects, lease.paid_until) == (LeaseState.STARTING, [Start()], at(32))
    assert lease.periods == 3
    lease = started(lease)
    assert (lease.state, lease.grace_until, lease.warned) == (LeaseState.ACTIVE, None, 0)
    # Nothing due until its new end comes near; then the same timeline again.
    assert due(lease, at(26), TERMS)[1] == []
    assert due(warned(lease), at(32), TERMS)[1] == [Stop()]


def test_an_extension_while_the_stop_runs_starts_it_once_the_stop_is_confirmed() -> None:
    """The expiry won the race: the stop job was already on its way. The extension does
    not wait for it and is not lost: once the stop is confirmed, the start follows."""
    lease = due(warned(active()), at(20), TERMS)[0]
    lease, effects = extend(lease, 2, at(20.5), TERMS)
    assert (lease.state, effects, lease.paid_until) == (LeaseState.STARTING, [], at(40.5))
    lease, effects = stopped(lease, TERMS)
    assert (lease.state, effects) == (LeaseState.STARTING, [Start()])
    assert started(lease).state is LeaseState.ACTIVE


def test_an_extension_before_the_expiry_is_seen_means_no_stop() -> None:
    """The renewal won the race: the tick at the old end sees the new end."""
    lease = extend(active(), 1, at(19.9), TERMS)[0]
    lease, effects = due(lease, at(20), TERMS)
    assert (lease.state, effects) == (LeaseState.ACTIVE, [])
    assert lease.paid_until == at(30) and lease.warned == 0


def test_auto_renew_takes_one_period_at_a_time_while_credit_lasts_then_expires() -> None:
    lease = active(periods=1, auto_renew=True)  # paid until 10 s
    charged, credit, now = 0, 100, 0.0
    while lease.state is not LeaseState.STOPPING:
        now += 0.5
        lease, effects = due(lease, at(now), TERMS, credit)
        for effect in effects:
            if isinstance(effect, Credit):
                credit += effect.amount
                charged -= effect.amount
        assert lease.paid_until is not None
        # Just in time: never more than one period ahead, far inside the cap.
        assert lease.paid_until <= at(now) + TERMS.period * TERMS.max_prepaid
    # 100 // 7 = 14 renewals while credit lasted; then it ran out, and at the end: a stop.
    assert (charged, credit, lease.periods) == (14 * PRICE, 100 - 14 * PRICE, 15)
    assert (lease.paid_until, at(now)) == (at(150), at(150))


def test_after_a_pause_auto_renew_catches_up_but_never_past_its_cap() -> None:
    """The watcher was down from 9 s to 60 s: the instance ran on, so the renewal pays
    for that time, one period at a time; the cap bounds it ahead of now."""
    capped = LeaseTerms(period=10 * S, grace=5 * S, warnings=(2 * S,), max_prepaid=1)
    lease, effects = due(active(periods=1, auto_renew=True), at(60), capped, credit=1000)
    # 10 -> 70 s: the five periods it ran unpaid, and the one it starts now.
    assert [e.amount for e in effects if isinstance(e, Credit)] == [-PRICE] * 6
    assert (lease.state, lease.paid_until) == (LeaseState.ACTIVE, at(70))
    assert due(lease, at(60), capped, credit=1000) == (lease, [])  # charged once
    # One period ahead at most: at 69 s no renewal yet (it would reach 80 s)...
    assert [e for e in due(lease, at(69), capped, credit=1000)[1] if isinstance(e, Credit)] == []
    # ...and at the end, the renewal comes before the stop would: no gap, no stop.
    renewed, effects = due(lease, at(70), capped, credit=1000)
    assert (renewed.paid_until, [type(e) for e in effects]) == (at(80), [Credit])


def test_a_renewal_is_charged_once_however_often_the_tick_runs() -> None:
    lease = active(periods=1, auto_renew=True)
    lease, first = due(lease, at(8), TERMS, credit=50)
    assert [e for e in first if isinstance(e, Credit)] == [
        Credit(-PRICE, "auto-renewed one period")
    ]
    again, second = due(lease, at(8), TERMS, credit=50 - PRICE)
    assert [e for e in second if isinstance(e, Credit)] == [] and again == lease


def test_auto_renew_without_credit_expires_as_any_lease() -> None:
    lease = warned(active(periods=1, auto_renew=True))
    lease, effects = due(lease, at(10), TERMS, credit=PRICE - 1)
    assert (lease.state, effects) == (LeaseState.STOPPING, [Stop()])


def test_cancel_gives_back_the_whole_periods_not_begun() -> None:
    lease = active(periods=5)  # paid until 50 s
    lease, effects = cancel(lease, at(12), TERMS)  # in the second period: 3 not begun
    assert effects == [Terminate(), Credit(3 * PRICE, "3 unused period(s)")]
    assert (lease.state, lease.periods, lease.cancelled) == (LeaseState.TERMINATING, 2, True)
    assert terminated(lease).state is LeaseState.CANCELLED
    # Before it was provisioned: everything; with the plan's rule "none": nothing.
    back, effects = cancel(new_lease(PRICE, 4), at(0), TERMS)
    assert (back.state, effects) == (
        LeaseState.CANCELLED,
        [Credit(4 * PRICE, "cancelled before it was provisioned")],
    )
    strict = LeaseTerms(period=10 * S, refund=Refund.NONE)
    assert cancel(active(periods=5), at(12), strict)[1] == [Terminate()]
    # In grace, its paid time is over: nothing comes back.
    in_grace = stopped(due(warned(active()), at(20), TERMS)[0], TERMS)[0]
    assert cancel(in_grace, at(22), TERMS)[1] == [Terminate()]


def test_a_resource_ended_outside_ends_the_lease_and_refunds_unused_periods() -> None:
    lease, effects = ended_outside(active(periods=4), at(15), TERMS)
    assert (lease.state, effects) == (
        LeaseState.TERMINATED,
        [Credit(2 * PRICE, "2 unused period(s)")],
    )
    assert ended_outside(lease, at(16), TERMS) == (lease, [])  # once


def test_unused_periods_and_the_terms_checks() -> None:
    assert unused_periods(active(periods=3), at(9.9), TERMS) == 2
    assert unused_periods(active(periods=3), at(30), TERMS) == 0
    assert TERMS.leads == (5 * S, 2 * S)
    with pytest.raises(ValueError, match="longer than zero"):
        LeaseTerms(period=timedelta(0))
    with pytest.raises(ValueError, match="at least one period"):
        new_lease(PRICE, 0)
    with pytest.raises(IllegalTransition, match="at least one period"):
        extend(active(), 0, at(1), TERMS)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), ("7d", 604800), (" 2h ", 7200)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text, "period") == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1", "1.5h", "h", "1w", "-1h", "1h30m"])
def test_bad_durations_name_the_setting(text: str) -> None:
    with pytest.raises(
        ValueError, match=r'^plans\.x\.grace must be a whole number and a unit, like "30s"'
    ):
        parse_duration(text, "plans.x.grace")


# --- whatever happens, in whatever order ---

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(
            ["tick", "extend", "cancel", "stopped", "started", "terminated", "outside", "run"]
        ),
        st.integers(min_value=0, max_value=30),  # seconds that pass first
        st.integers(min_value=1, max_value=3),  # periods, for an extension
        st.integers(min_value=0, max_value=40),  # the owner's credit, for a tick
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(events=EVENTS, auto_renew=st.booleans(), periods=st.integers(min_value=1, max_value=4))
def test_money_is_conserved_and_nothing_moves_backwards(
    events: list[tuple[str, int, int, int]], auto_renew: bool, periods: int
) -> None:
    lease = provisioning(new_lease(PRICE, periods, auto_renew))
    paid_in = periods * PRICE  # bought, extended, renewed
    given_back = 0  # refunded
    now = 0.0
    ended = False
    for name, wait, more, credit in events:
        now += wait
        before = lease
        try:
            if name == "tick":
                lease, effects = due(lease, at(now), TERMS, credit)
            elif name == "extend":
                lease, effects = extend(lease, more, at(now), TERMS)
                paid_in += more * PRICE
            elif name == "cancel":
                lease, effects = cancel(lease, at(now), TERMS)
            elif name == "stopped":
                lease, effects = stopped(lease, TERMS)
            elif name == "started":
                lease, effects = started(lease), []
            elif name == "terminated":
                lease, effects = terminated(lease), []
            elif name == "outside":
                lease, effects = ended_outside(lease, at(now), TERMS)
            else:
                lease, effects = running(lease, at(now), TERMS), []
        except IllegalTransition:
            assert lease == before
            continue
        for effect in effects:
            if isinstance(effect, Credit):
                if effect.amount < 0:
                    paid_in -= effect.amount  # a renewal from credit
                    assert lease.auto_renew and -effect.amount == PRICE
                else:
                    given_back += effect.amount
        # Every base unit paid in is held by the lease or was given back.
        assert paid_in == lease.spent + given_back
        assert lease.periods >= 0
        if ended:
            assert lease == before  # an ended lease never changes again
        ended = lease.state.ended
        if before.paid_until and lease.paid_until and not lease.cancelled:
            assert lease.paid_until >= before.paid_until or lease.state is LeaseState.STARTING
        # A lease whose paid time runs is never stopped or terminated by time alone.
        if name == "tick" and lease.paid_until and at(now) < lease.paid_until:
            assert not any(isinstance(e, (Stop, Terminate)) for e in effects)


def test_next_due_is_the_first_moment_due_does_something() -> None:
    """Before it, `due` changes nothing; at it, something (the scheduler relies on both)."""
    from watcher.domain.leases import next_due

    for lease in (active(), active(auto_renew=True), lease_in(LeaseState.EXPIRING)):
        moment = next_due(lease, TERMS)
        assert moment is not None
        assert due(lease, moment - timedelta(milliseconds=1), TERMS, credit=100) == (lease, [])
        assert due(lease, moment, TERMS, credit=100)[1] != []
    stopped_lease = lease_in(LeaseState.STOPPED)
    assert next_due(stopped_lease, TERMS) == stopped_lease.grace_until
    for state in (LeaseState.PAID, LeaseState.STOPPING, LeaseState.TERMINATED):
        assert next_due(lease_in(state), TERMS) is None
    assert LeaseTerms.from_json(TERMS.to_json()) == TERMS


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (3600, ("hour", "hours")),
        (86400, ("day", "days")),
        (900, ("15-minute period", "15-minute periods")),
        (10, ("10-second period", "10-second periods")),
        (7200, ("2-hour period", "2-hour periods")),
    ],
)
def test_how_a_buyer_reads_a_period(seconds: int, words: tuple[str, str]) -> None:
    from watcher.domain.leases import period_words

    assert period_words(timedelta(seconds=seconds)) == words
