"""Leases in the ledger (issue 11, first part), on both databases: an order keeps its
plan's lease terms from when it was paid for (a drafted one, from its draft); its lease
starts when it first runs, paid for the periods bought, and the scheduler's next moment is
indexed; a catalog change later does not touch it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.keyhelpers import new_ssh_key
from watcher.adapters.cloud.fake import FakeProvider
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.drafts import Drafts
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.ledger import Ledger
from watcher.adapters.ledger.schema import OrderRecord
from watcher.domain.catalog import Catalog
from watcher.domain.drafts import draft_terms, quote
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.leases import LeaseTerms
from watcher.domain.payment import Payment
from watcher.ports.cloud import Cloud
from watcher.services.provisioner import Provisioner, ProvisionerConfig

CTK = 10**18
IMAGE = "ami-0123456789abcdef0"
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
QUICK = LeaseTerms(
    period=timedelta(seconds=10),
    grace=timedelta(seconds=5),
    warnings=(timedelta(seconds=8), timedelta(seconds=2)),
)
CATALOG = Catalog(
    {
        "small": replace(ec2_plan("small", 10 * CTK, "t3.micro", IMAGE), lease=QUICK),
        "large": replace(ec2_plan("large", 25 * CTK, "t3.large", IMAGE), lease=QUICK),
    },
    "small",
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine: AsyncEngine = create_engine(database_url)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


async def provision(engine: AsyncEngine, catalog: Catalog) -> None:
    worker = Provisioner(
        JobQueue(engine, "w", 30),
        Cloud(FakeProvider(images=[IMAGE])),
        catalog,
        ProvisionerConfig(idle_poll=0.01),
    )
    assert await worker.drain(max_wait=10) == 0


async def test_a_lease_starts_when_its_order_first_runs(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    terms = draft_terms(CATALOG, "large", 3, new_ssh_key(), None)
    draft = await Drafts(engine, 1337).create(ALICE, terms, quote(terms, now), now)
    named = Payment(1337, "0x" + "ab" * 32, 0, 5, "0x" + "cd" * 32, ALICE, 75 * CTK)  # type: ignore[arg-type]
    plain = Payment(1337, "0x" + "ef" * 32, 0, 5, "0x" + "cd" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, CATALOG).record(
        [named, plain], block_times={5: now}, named={(named.tx_hash, 0): draft.reference}
    )
    before = {o.reference: o for o in await queries.orders(engine)}
    assert all(o.lease_state is None and o.paid_until is None for o in before.values())
    # The catalog changes before the orders run: what was sold stays as sold.
    longer = Catalog(
        {name: replace(plan, lease=LeaseTerms()) for name, plan in CATALOG.plans.items()},
        "small",
    )
    started = datetime.now(UTC)
    await provision(engine, longer)
    done = datetime.now(UTC)
    after = {o.reference: o for o in await queries.orders(engine)}
    drafted, vended = after[draft.reference], after[None]
    for order, periods in ((drafted, 3), (vended, 1)):
        assert order.state == "running" and order.lease_state == "active"
        assert order.paid_until is not None
        assert started + periods * QUICK.period <= order.paid_until <= done + periods * QUICK.period
        assert order.auto_renew is False and order.grace_until is None
    assert drafted.amount == 75 * CTK and vended.amount == 10 * CTK
    async with engine.connect() as conn:
        rows = {r.order_id: r for r in (await conn.execute(select(OrderRecord))).all()}
    # The scheduler's next moment: the first warning, 5 s before the end (8 s is capped
    # at half the period).
    for order in (drafted, vended):
        row = rows[order.order_id]
        assert row.due_at == order.paid_until - timedelta(seconds=5)
        assert LeaseTerms.from_json(row.lease_terms) == QUICK and row.warned == 0


SECONDS = LeaseTerms(
    period=timedelta(seconds=2),
    grace=timedelta(seconds=1),
    warnings=(timedelta(seconds=1),),
)


async def test_a_lease_is_warned_stopped_and_terminated_after_grace_once(
    engine: AsyncEngine,
) -> None:
    """With second-long periods on the fake cloud: active, expiring (warned), stopping,
    stopped (in grace, the instance stopped), terminating, terminated; one stop and one
    terminate call, however often the scheduler ticks and the worker looks."""
    import asyncio

    from watcher.adapters.ledger.lease_book import LeaseBook
    from watcher.services.leases import LeaseScheduler, LeaseWorker

    quick = Catalog(
        {"small": replace(ec2_plan("small", 10 * CTK, "t3.micro", IMAGE), lease=SECONDS)}, "small"
    )
    paid = Payment(1337, "0x" + "ab" * 32, 0, 5, "0x" + "cd" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, quick).record([paid])
    fake = FakeProvider(images=[IMAGE])
    worker = Provisioner(
        JobQueue(engine, "w", 30), Cloud(fake), quick, ProvisionerConfig(idle_poll=0.01)
    )
    assert await worker.drain(max_wait=10) == 0
    book = LeaseBook(engine, "lw", 30)
    scheduler = LeaseScheduler(book)
    leases = LeaseWorker(book, Cloud(fake), settle=2, look_every=0.05)
    seen: list[str] = []
    for _ in range(200):
        await scheduler.tick()
        await scheduler.tick()  # twice: nothing is done twice
        while await leases.work_one():
            pass
        (order,) = await queries.orders(engine)
        if not seen or seen[-1] != order.lease_state:
            seen.append(str(order.lease_state))
        if order.lease_state == "terminated":
            break
        await asyncio.sleep(0.05)
    assert seen[0] == "active" and seen[-1] == "terminated", seen
    for state in ("expiring", "stopped"):
        assert state in seen, seen
    assert (fake.calls["stop"], fake.calls["terminate"]) == (1, 1)
    (instance,) = fake.instances()
    assert instance.state == "terminated"
    # The money stays where it was: the lease used what it was paid; nothing refunded.
    totals = await queries.totals(engine, 1337)
    assert totals.paid == totals.credit + totals.spent == 10 * CTK
    from watcher.services.monitoring import refresh_ledger_gauges
    from watcher.shared import metrics

    await refresh_ledger_gauges(engine)
    assert metrics.LEASES.labels(state="terminated")._value.get() == 1
    assert metrics.LEASES.labels(state="active")._value.get() == 0
    assert metrics.LEASE_JOBS_OVERDUE._value.get() == 0


async def test_the_owner_extends_turns_auto_renew_on_and_cancels_over_the_api(
    engine: AsyncEngine,
) -> None:
    """One signed-in request each, for the wallet that paid only; extending takes credit,
    cancelling gives back whole periods not begun (shown first); money balanced after each."""
    import httpx

    from tests.signinhelpers import sign_in
    from watcher.adapters.chain.dev_accounts import dev_account
    from watcher.adapters.ledger.lease_book import LeaseBook
    from watcher.interfaces.web.api import create_api

    owner, other = dev_account(1), dev_account(2)
    hour = replace(ec2_plan("hourly", 10 * CTK, "t3.micro", IMAGE), lease=LeaseTerms())
    catalog = Catalog({"hourly": hour}, "hourly")
    ledger = Ledger(engine, 1337, catalog)
    first = Payment(1337, "0x" + "ab" * 32, 0, 5, "0x" + "cd" * 32, owner.address, 10 * CTK)  # type: ignore[arg-type]
    await ledger.record([first])
    await provision(engine, catalog)
    # 35 CTK more, as credit (no vending: the Checkout is there).
    more = Payment(1337, "0x" + "ef" * 32, 0, 6, "0x" + "ce" * 32, owner.address, 35 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, catalog, vending=False).record([more])
    (order,) = await queries.orders(engine)
    url = f"/api/orders/{order.order_id}"

    def client(book: LeaseBook | None) -> httpx.AsyncClient:
        app = create_api(
            engine, 1337, "0x" + "11" * 20, catalog, public_url="http://t.test", lease_book=book
        )
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t.test")

    async def balanced() -> None:
        totals = await queries.totals(engine, 1337)
        assert totals.paid == totals.credit + totals.spent == 45 * CTK

    book = LeaseBook(engine, "api", 30)
    async with client(book) as mine, client(book) as theirs, client(None) as off:
        await sign_in(mine, owner)
        await sign_in(theirs, other)
        await sign_in(off, owner)
        assert (await off.post(f"{url}/extend", json={"periods": 1})).status_code == 503
        assert (await theirs.post(f"{url}/extend", json={"periods": 1})).status_code == 403
        too_many = await mine.post(f"{url}/extend", json={"periods": 4})
        assert too_many.status_code == 402 and "your credit is 35 CTK" in too_many.json()["detail"]
        assert (await mine.post(f"{url}/extend", json={"periods": 2.5})).status_code == 422
        extended = await mine.post(f"{url}/extend", json={"periods": 3})
        assert extended.status_code == 200, extended.text
        body = extended.json()
        assert (body["periods"], body["charged"], body["lease_state"]) == (
            4,
            str(30 * CTK),
            "active",
        )
        assert datetime.fromisoformat(body["paid_until"]) - order.paid_until == timedelta(hours=3)  # type: ignore[operator]
        await balanced()
        renew = await mine.post(f"{url}/auto-renew", json={"on": True})
        assert renew.status_code == 200 and renew.json()["auto_renew"] is True
        quote_now = (await mine.get(f"{url}/cancel")).json()
        # 4 hours paid from about now: 3 whole hours not begun (the first has begun).
        assert (quote_now["unused_periods"], quote_now["refund_ctk"], quote_now["rule"]) == (
            3,
            "30",
            "unused-periods",
        )
        assert (await theirs.post(f"{url}/cancel")).status_code == 403
        stale = await mine.post(f"{url}/cancel", json={"expected_refund": str(40 * CTK)})
        assert stale.status_code == 409 and "not the 40 CTK shown" in stale.json()["detail"]
        cancelled = (
            await mine.post(f"{url}/cancel", json={"expected_refund": quote_now["refund"]})
        ).json()
        assert (cancelled["lease_state"], cancelled["refunded_ctk"]) == ("terminating", "30")
        await balanced()
        again = await mine.post(f"{url}/cancel")
        assert again.status_code == 409 and "terminating" in again.json()["detail"]
    (after,) = await queries.orders(engine)
    assert after.amount == 10 * CTK  # what it used: the hour begun
    credits = await queries.credits(engine, 1337, owner.address)
    assert credits[0].balance == 35 * CTK
    # The termination is a job for the lease worker.
    job = await book.claim()
    assert job is not None and (job.order_id, job.kind.value) == (order.order_id, "terminate")


@pytest.mark.parametrize("first", ["expiry", "renewal"])
async def test_a_renewal_racing_the_expiry_charges_once_and_never_stops_a_paid_lease(
    engine: AsyncEngine, first: str
) -> None:
    """The lease's paid time has just run out as its owner extends it. Whichever the
    database serialises first, one period is charged once; the lease ends up paid and
    running (extended) or starting again (the stop came first and is undone by a start)."""
    import asyncio

    from sqlalchemy import update

    from watcher.adapters.ledger.lease_book import LeaseBook

    catalog = Catalog(
        {"small": replace(ec2_plan("small", 10 * CTK, "t3.micro", IMAGE), lease=SECONDS)}, "small"
    )
    paid = Payment(1337, "0x" + "ab" * 32, 0, 5, "0x" + "cd" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, catalog).record([paid])
    await provision(engine, catalog)
    extra = Payment(1337, "0x" + "ef" * 32, 0, 6, "0x" + "ce" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, catalog, vending=False).record([extra])
    (order,) = await queries.orders(engine)
    ended = datetime.now(UTC) - timedelta(milliseconds=10)
    async with engine.begin() as conn:  # its paid time ran out just now
        await conn.execute(
            update(OrderRecord)
            .where(OrderRecord.order_id == order.order_id)
            .values(paid_until=ended, due_at=ended, warned=1, lease_state="expiring")
        )
    book = LeaseBook(engine, "race", 30)
    if first == "expiry":
        await book.advance(order.order_id)
        await book.extend(order.order_id, ALICE, 1)
    else:
        await asyncio.gather(book.extend(order.order_id, ALICE, 1), book.advance(order.order_id))
    (after,) = await queries.orders(engine)
    assert after.amount == 20 * CTK and after.lease_state in ("active", "starting"), after
    assert after.paid_until is not None and after.paid_until > datetime.now(UTC)
    assert await queries.credits(engine, 1337, ALICE) == [] or (
        (await queries.credits(engine, 1337, ALICE))[0].balance == 0
    )
    totals = await queries.totals(engine, 1337)
    assert totals.paid == totals.credit + totals.spent == 20 * CTK
    if after.lease_state == "starting":
        # The stop was queued first: its confirmation brings the start.
        job = await book.claim()
        assert job is not None and job.kind.value == "stop"
        effects = await book.confirm(job)
        assert [type(e).__name__ for e in effects] == ["Start"]
        start = await book.claim()
        assert start is not None and start.kind.value == "start"


async def test_a_resource_ended_outside_ends_its_lease_after_two_sweeps_and_refunds(
    engine: AsyncEngine,
) -> None:
    """Terminated behind the watcher's back: the first sweep only notes it, the second
    (agreeing) ends the lease and gives back the whole periods not begun; a sweep whose
    cloud answers errors concludes nothing and changes nothing."""
    from watcher.adapters.cloud.fake import Fault
    from watcher.adapters.ledger.lease_book import LeaseBook
    from watcher.runtime.audit import CloudSweep

    hourly = replace(ec2_plan("hourly", 10 * CTK, "t3.micro", IMAGE), lease=LeaseTerms())
    catalog = Catalog({"hourly": hourly}, "hourly")
    now = datetime.now(UTC)
    terms = draft_terms(catalog, "hourly", 3, new_ssh_key(), None)
    draft = await Drafts(engine, 1337).create(ALICE, terms, quote(terms, now), now)
    named = Payment(1337, "0x" + "ab" * 32, 0, 5, "0x" + "cd" * 32, ALICE, 30 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, catalog).record(
        [named], block_times={5: now}, named={(named.tx_hash, 0): draft.reference}
    )
    fake = FakeProvider(images=[IMAGE])
    worker = Provisioner(
        JobQueue(engine, "w", 30), Cloud(fake), catalog, ProvisionerConfig(idle_poll=0.01)
    )
    assert await worker.drain(max_wait=10) == 0
    (instance,) = fake.instances()
    sweep = CloudSweep(engine, Cloud(fake), 60, LeaseBook(engine, "sweep", 30))
    fake.fail("tagged_instances", Fault.PERMANENT, times=1)
    await fake.terminate(instance.instance_id)  # outside the watcher
    assert await sweep.sweep_once() is None  # an error: no conclusion
    assert await sweep.sweep_once() == []  # seen once: noted, not acted on
    (order,) = await queries.orders(engine)
    assert order.lease_state == "active"
    found = await sweep.sweep_once()  # seen again: the lease ends
    assert found is not None and [d.kind.value for d in found] == ["resource_ended"]
    (order,) = await queries.orders(engine)
    assert (order.lease_state, order.state) == ("terminated", "terminated")
    # 3 hours paid from its start, the first begun: 2 come back.
    assert order.amount == 10 * CTK
    (credit,) = await queries.credits(engine, 1337, ALICE)
    assert credit.balance == 20 * CTK
    totals = await queries.totals(engine, 1337)
    assert totals.paid == totals.credit + totals.spent == 30 * CTK
    assert await sweep.sweep_once() == []  # settled: nothing more to say


async def test_review_cases_unfunded_leases_stuck_renewals_and_moot_jobs(
    engine: AsyncEngine,
) -> None:
    """An order a reorg left unfunded renews nothing and gets nothing back when its
    resource ends outside; an auto-renewal credit cannot pay is looked at again in a
    minute, not at every tick; a stop job its lease no longer needs is dropped without a
    stop."""
    from sqlalchemy import update

    from watcher.adapters.ledger.lease_book import LeaseBook
    from watcher.services.leases import LeaseWorker

    hourly = replace(ec2_plan("hourly", 10 * CTK, "t3.micro", IMAGE), lease=LeaseTerms())
    catalog = Catalog({"hourly": hourly}, "hourly")
    payments = [
        Payment(1337, "0x" + f"{n:064x}", 0, 5, "0x" + "cd" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
        for n in (1, 2)
    ]
    await Ledger(engine, 1337, catalog).record(payments)
    fake = FakeProvider(images=[IMAGE])
    worker = Provisioner(
        JobQueue(engine, "w", 30), Cloud(fake), catalog, ProvisionerConfig(idle_poll=0.01)
    )
    assert await worker.drain(max_wait=10) == 0
    first, second = (o.order_id for o in await queries.orders(engine))
    extra = Payment(1337, "0x" + "ee" * 32, 0, 6, "0x" + "ce" * 32, ALICE, 5 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, catalog, vending=False).record([extra])  # 5 CTK of credit
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        # The first: unfunded by a reorg, auto-renewing, at its end. The second:
        # auto-renewing in its renewal window, its credit (5) short of a period (10).
        await conn.execute(
            update(OrderRecord)
            .where(OrderRecord.order_id == first)
            .values(reorged=True, auto_renew=True, warned=2, paid_until=now, due_at=now)
        )
        await conn.execute(
            update(OrderRecord)
            .where(OrderRecord.order_id == second)
            .values(auto_renew=True, warned=1, paid_until=now + timedelta(minutes=30), due_at=now)
        )
    book = LeaseBook(engine, "review", 30)
    assert await book.advance(first) != []  # its stop, no renewal
    assert await book.advance(second) == []  # nothing: credit cannot pay the renewal
    rows = {o.order_id: o for o in await queries.orders(engine)}
    assert (rows[first].lease_state, rows[first].amount) == ("stopping", 10 * CTK)
    (credit,) = await queries.credits(engine, 1337, ALICE)
    assert credit.balance == 5 * CTK
    async with engine.connect() as conn:
        due = (
            await conn.execute(select(OrderRecord.due_at).where(OrderRecord.order_id == second))
        ).scalar_one()
    assert due >= datetime.now(UTC) + timedelta(seconds=50)  # a minute on, not now
    # The unfunded one's instance is ended outside: its lease ends, nothing comes back.
    (instance,) = [i for i in fake.instances() if i.tag("OrderId") == first]
    await fake.terminate(instance.instance_id)
    assert await book.ended_outside(first, instance.instance_id, "terminated") == []
    rows = {o.order_id: o for o in await queries.orders(engine)}
    assert rows[first].lease_state == "terminated" and rows[first].amount == 10 * CTK
    assert (await queries.credits(engine, 1337, ALICE))[0].balance == 5 * CTK
    # Its queued stop job is moot now: dropped, no stop call.
    stops = fake.calls["stop"]
    leases = LeaseWorker(book, Cloud(fake), settle=1, look_every=0.05)
    assert await leases.work_one()
    assert fake.calls["stop"] == stops
    assert not await leases.work_one()


async def test_a_reorg_below_an_extension_charges_it_again_or_undoes_it(
    engine: AsyncEngine,
) -> None:
    """The reviewer's case: the 20 CTK that paid for a 2-period extension are in a block a
    reorg takes. The extension is undone (its paid time taken off), no debt is left, and
    the money adds up; an extension the credit left still covers stays."""
    from watcher.adapters.ledger.lease_book import LeaseBook
    from watcher.adapters.ledger.ledger import Cursor
    from watcher.domain.blocks import BlockRef

    hourly = replace(ec2_plan("hourly", 10 * CTK, "t3.micro", IMAGE), lease=LeaseTerms())
    catalog = Catalog({"hourly": hourly}, "hourly")
    ledger = Ledger(engine, 1337, catalog)
    first = Payment(1337, "0x" + "aa" * 32, 0, 5, "0x" + "05" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await ledger.record([first], advance_to=BlockRef(5, "0x" + "05" * 32, "0x" + "04" * 32))
    await provision(engine, catalog)
    (order,) = await queries.orders(engine)
    plain = Ledger(engine, 1337, catalog, vending=False)
    early = Payment(1337, "0x" + "bb" * 32, 0, 7, "0x" + "07" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await plain.record(
        [early],
        advance_from=Cursor(5, "0x" + "05" * 32),
        advance_to=BlockRef(7, "0x" + "07" * 32, "0x" + "06" * 32),
    )
    book = LeaseBook(engine, "ext", 30)
    await book.extend(order.order_id, ALICE, 1)  # from the 10 of block 7, anchored at 7
    late = Payment(1337, "0x" + "cc" * 32, 0, 9, "0x" + "09" * 32, ALICE, 20 * CTK)  # type: ignore[arg-type]
    await plain.record(
        [late],
        advance_from=Cursor(7, "0x" + "07" * 32),
        advance_to=BlockRef(9, "0x" + "09" * 32, "0x" + "08" * 32),
    )
    await book.extend(order.order_id, ALICE, 2)  # from the 20 of block 9, anchored at 9
    (extended,) = await queries.orders(engine)
    assert (extended.periods, extended.amount) == (4, 40 * CTK)
    await ledger.rewind(Cursor(8, "0x" + "08" * 32))  # block 9 is gone
    (after,) = await queries.orders(engine)
    assert (after.periods, after.amount) == (2, 20 * CTK)
    assert extended.paid_until is not None and after.paid_until == extended.paid_until - timedelta(
        hours=2
    )
    credits = await queries.credits(engine, 1337, ALICE)
    assert credits == [] or credits[0].balance == 0  # no debt
    totals = await queries.totals(engine, 1337)
    assert totals.paid == totals.credit + totals.spent == 20 * CTK


async def test_a_resource_the_cloud_forgot_ends_its_lease_after_two_sweeps(
    engine: AsyncEngine,
) -> None:
    """EC2 forgets a terminated instance after about an hour: a lease whose resource the
    cloud no longer lists at all, in two sweeps in a row, ends with its refund (and
    auto-renew stops charging for nothing)."""
    from watcher.adapters.ledger.lease_book import LeaseBook
    from watcher.runtime.audit import CloudSweep

    hourly = replace(ec2_plan("hourly", 10 * CTK, "t3.micro", IMAGE), lease=LeaseTerms())
    catalog = Catalog({"hourly": hourly}, "hourly")
    paid = Payment(1337, "0x" + "ab" * 32, 0, 5, "0x" + "cd" * 32, ALICE, 10 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, catalog).record([paid])
    fake = FakeProvider(images=[IMAGE])
    worker = Provisioner(
        JobQueue(engine, "w", 30), Cloud(fake), catalog, ProvisionerConfig(idle_poll=0.01)
    )
    assert await worker.drain(max_wait=10) == 0
    (instance,) = fake.instances()
    fake.forget(instance.instance_id)
    sweep = CloudSweep(engine, Cloud(fake), 60, LeaseBook(engine, "sweep", 30))
    assert await sweep.sweep_once() == []  # once: noted only
    (order,) = await queries.orders(engine)
    assert order.lease_state == "active"
    found = await sweep.sweep_once()
    assert found is not None and [d.kind.value for d in found] == ["resource_missing"]
    (order,) = await queries.orders(engine)
    assert (order.lease_state, order.state) == ("terminated", "terminated")
    totals = await queries.totals(engine, 1337)
    assert totals.paid == totals.credit + totals.spent == 10 * CTK
