"""Read views of the ledger for the CLI, the API and tests. Reads take no write lock."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, get_args, get_type_hints

from sqlalchemy import case, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watcher.adapters.ledger import accounts
from watcher.adapters.ledger.accounts import Totals
from watcher.adapters.ledger.schema import (
    ChainCursor,
    ChainRecord,
    CreditRecord,
    JobRecord,
    OrderRecord,
    PaymentRecord,
)
from watcher.domain.addresses import to_checksum_address
from watcher.domain.job import PENDING_JOB_STATES, JobKind, JobState
from watcher.domain.order import OrderState
from watcher.domain.payment import Payment
from watcher.domain.provisioning import public_reason

# What the public (the API, MQTT) sees of an order's resource specification: not the
# operator's image, subnet, security groups or key pair.
PUBLIC_RESOURCE_KEYS = ("kind", "instance_type")


class Wire(Enum):
    """How a view's field is written as JSON (`as_json`), and so its type in the API schema."""

    VALUE = "value"  #: str, int, bool or None, as it is
    TIME = "time"  #: a datetime, as ISO 8601 text (any field typed datetime)
    #: CTK base units, as decimal text: 10 CTK is 10**19, past the 2**53 up to which
    #: JavaScript's numbers (a wallet's page) are exact.
    AMOUNT = "amount"
    JSON_TEXT = "json_text"  #: JSON text kept in the ledger, as the object it encodes


# The JSON value's type per wire form (the API's schema says "string" for a time or an
# amount); Wire.VALUE keeps the field's own type.
_WIRE_TYPES: dict[Wire, Any] = {Wire.TIME: str, Wire.AMOUNT: str, Wire.JSON_TEXT: dict[str, Any]}


def shown(
    doc: str, wire: Wire | None = None, public: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """A view field's metadata (`dataclasses.field(metadata=shown(...))`): what it means,
    in the words the API's schema shows; its JSON form (None: from its type); and what
    anyone who names the payer (the API, MQTT) sees instead of the operator's value
    (None: the same)."""
    return {"doc": doc, "wire": wire, "public": public}


@dataclass(frozen=True)
class ShownField:
    """One field of a view as its JSON renderings and the API schema see it."""

    name: str
    doc: str
    wire: Wire
    public: Callable[[Any], Any] | None
    json_type: Any  # the JSON value's Python type: `str | None` for `datetime | None`

    def to_json(self, value: Any) -> Any:
        if value is None:
            return None
        if self.wire is Wire.TIME:
            return value.isoformat()
        if self.wire is Wire.AMOUNT:
            return str(value)
        if self.wire is Wire.JSON_TEXT:
            return json.loads(value) if value else None
        return value


def shown_fields(view: type) -> tuple[ShownField, ...]:
    """The fields of a view dataclass, in declaration order. Each must be declared with
    `shown` (KeyError otherwise): a field nobody documented would reach the API."""
    hints = get_type_hints(view)
    found = []
    for f in fields(view):
        hint = hints[f.name]
        nullable = type(None) in get_args(hint)
        wire = f.metadata.get("wire") or (
            Wire.TIME if datetime in (hint, *get_args(hint)) else Wire.VALUE
        )
        json_type = _WIRE_TYPES.get(wire, hint)
        if wire is not Wire.VALUE and nullable:
            json_type = json_type | None
        found.append(ShownField(f.name, f.metadata["doc"], wire, f.metadata["public"], json_type))
    return tuple(found)


def _public_resource(resource: Any) -> Any:
    if isinstance(resource, dict):
        return {key: resource.get(key) for key in PUBLIC_RESOURCE_KEYS}
    return resource


@dataclass(frozen=True)
class OrderView:
    """An order as everyone reads it: the one declaration of its shape. `as_json` (the
    operator's `watcher orders --json`), `as_public_json` (the API and MQTT payloads) and
    the API's schema (watcher/interfaces/web/api.py) are derived from these fields, and `order_view`
    reads them from an `orders` row by name. A new order column is a field here, with its
    `shown` documentation; columns left out on purpose are in INTERNAL_ORDER_COLUMNS."""

    order_id: str = field(
        metadata=shown(
            "The order's id: derived from the chain, the payment and the unit, so a replay "
            "of the chain into an empty ledger gives the same ids (bought from credit: "
            "from the chain and the draft's reference)."
        )
    )
    chain_id: int = field(metadata=shown("The chain the payment was made on."))
    tx_hash: str | None = field(
        metadata=shown("The payment's transaction (null: its owner bought it from credit).")
    )
    log_index: int | None = field(
        metadata=shown("The payment's log index in its block (null: bought from credit).")
    )
    unit: int = field(metadata=shown("Which of the orders its payment bought this is, from 0 up."))
    block_number: int = field(
        metadata=shown(
            "The block that carried the payment; for an order bought from credit, the "
            "ledger's last block when it was bought (a reorg below it undoes the order)."
        )
    )
    payer: str = field(metadata=shown("The paying wallet's address (checksummed)."))
    amount: int = field(
        metadata=shown("What the order cost, in CTK base units, as a string.", Wire.AMOUNT)
    )
    plan: str = field(metadata=shown("The plan the order bought."))
    instance_type: str = field(metadata=shown("The plan's instance type when it was paid."))
    state: str = field(
        metadata=shown(
            "queued, launching, launched, running, failed (refunded) or terminated (its "
            "instance was ended outside the watcher after delivery)."
        )
    )
    instance_id: str | None = field(
        metadata=shown("The cloud's id of the order's instance, once launched.")
    )
    launched_at: datetime | None = field(metadata=shown("When the order's instance was launched."))
    paid_at: datetime | None = field(
        metadata=shown("Time of the payment's block, when followed live.")
    )
    reorged: bool = field(
        metadata=shown(
            "A reorg orphaned the payment after provisioning had started: the order is "
            "unfunded until the payment is mined again; the operator has been alerted."
        )
    )
    failure_reason: str | None = field(
        metadata=shown(
            "Why the order failed or its instance ended, in plain words: an error code and "
            'its class ("InsufficientInstanceCapacity: no capacity for this instance type '
            'right now"), or "provisioning error (the operator sees the details)". The '
            "cloud's own message stays with the operator (`watcher orders`).",
            public=public_reason,
        )
    )
    created_at: datetime = field(metadata=shown("When the ledger recorded the order."))
    updated_at: datetime = field(metadata=shown("When the order last changed state."))
    reference: str | None = field(
        default=None,
        metadata=shown(
            "The drafted order's reference (null: an order the thesis's vending bought with "
            "credit that reached a plan's price)."
        ),
    )
    periods: int | None = field(
        default=None, metadata=shown("Periods bought (drafted orders; null: the plan's one).")
    )
    name: str | None = field(default=None, metadata=shown("The buyer's label for the order."))
    lease_state: str | None = field(
        default=None,
        metadata=shown(
            "Its lease, once it runs: active, expiring (warned), stopping, stopped (paid "
            "time over, in grace, disk kept), starting, terminating, terminated, cancelled; "
            "null before it runs, and for orders sold before leases (they have no end)."
        ),
    )
    paid_until: datetime | None = field(
        default=None, metadata=shown("When its paid time ends (from when it first ran).")
    )
    grace_until: datetime | None = field(
        default=None,
        metadata=shown("Stopped after its paid time: when it is terminated unless extended."),
    )
    auto_renew: bool | None = field(
        default=None, metadata=shown("Renewed from its owner's credit, a period at a time.")
    )
    # How provisioning goes, from the order's job (the defaults where the view was read
    # without it, as in the MQTT snapshots; see `orders` and _with_job).
    attempts: int | None = field(default=None, metadata=shown("Provisioning attempts so far."))
    last_error: str | None = field(
        default=None,
        metadata=shown(
            "Why the last provisioning attempt failed (null once it succeeded), classified "
            'like failure_reason: "RequestLimitExceeded: the cloud is throttling requests", '
            '"the cloud did not answer", "database unavailable".',
            public=public_reason,
        ),
    )
    next_attempt_at: datetime | None = field(
        default=None,
        metadata=shown("When the next provisioning attempt is due, while the order waits for one."),
    )
    overdue: bool = field(
        default=False,
        metadata=shown("The order has waited longer than it should for its instance (stuck)."),
    )
    # JSON text; None only for orders recorded before migration 0005.
    resource: str | None = field(
        default=None,
        metadata=shown(
            "What the order paid for: its kind and instance type, kept from the moment it "
            "was paid (a later catalog change does not alter it). The image, network and "
            "key pair it launches with are the operator's.",
            Wire.JSON_TEXT,
            public=_public_resource,
        ),
    )

    def as_json(self) -> dict[str, Any]:
        """Everything, for the operator (`watcher orders --json`)."""
        return {f.name: f.to_json(getattr(self, f.name)) for f in ORDER_SHAPE}

    def as_public_json(self) -> dict[str, Any]:
        """`as_json` for anyone who names the payer (the web API, MQTT): why provisioning
        failed as a code and a class in plain words instead of the cloud's or the
        database's own text (account ids, ARNs, internal hosts), and of the resource only
        PUBLIC_RESOURCE_KEYS. The operator's views (`watcher orders`) keep everything."""
        shown_json = self.as_json()
        for f in ORDER_SHAPE:
            if f.public is not None:
                shown_json[f.name] = f.public(shown_json[f.name])
        return shown_json


# OrderView's fields as the JSON renderings and the API schema see them.
ORDER_SHAPE = shown_fields(OrderView)
# Columns of `orders` that no view shows, on purpose (tests/unit/test_order_shape.py
# holds every other column to be an OrderView field).
# The buyer's SSH key and where their resource is reached are theirs: the owner's access
# details (`order_access`) show them, never the public views.
INTERNAL_ORDER_COLUMNS: frozenset[str] = frozenset(
    {"ssh_key", "public_ip", "public_dns", "host_keys"}
    # The lease's bookkeeping: its terms (the plan's, as sold), the scheduler's next
    # moment, the warnings sent, and whether its owner ended it.
    | {"lease_terms", "due_at", "warned", "cancelled"}
)
# The fields `order_view` reads from an `orders` row; the others come from the order's job.
ORDER_ROW_FIELDS = tuple(
    f.name for f in fields(OrderView) if f.name in OrderRecord.__table__.columns
)


# A paid order whose job is still pending after this long is overdue ("stuck"): the pages
# say so, /api/health degrades, and deploy/alerts.yml's PaymentsNotFulfilled pages at the
# same 10 minutes.
OVERDUE_AFTER = timedelta(minutes=10)
# A pending job whose last attempt failed and that has been tried this often keeps failing:
# one throttled call is routine, three in a row (with backoff between them) are not.
FAILING_AFTER_ATTEMPTS = 3
# The job queue's states (watcher/adapters/ledger/jobs.py, which imports this module).
_QUEUED = JobState.QUEUED.value
_PENDING = PENDING_JOB_STATES


@dataclass(frozen=True)
class JobHealth:
    """The provisioning queue at a glance, for /api/health and the metrics."""

    pending: int  # queued (maybe in backoff) or claimed
    # The next three leave out orders flagged `reorged` (held on purpose; see job_health).
    overdue: int  # pending for longer than OVERDUE_AFTER
    retrying: int  # pending, and its last attempt failed
    failing: int  # retrying, tried at least FAILING_AFTER_ATTEMPTS times
    oldest_created_at: datetime | None  # of the pending jobs


@dataclass(frozen=True)
class CreditView:
    chain_id: int
    payer: str
    balance: int
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "payer": self.payer,
            "balance": str(self.balance),
            "updated_at": self.updated_at.isoformat(),
        }


async def lock_chain(conn: AsyncConnection, chain_id: int) -> None:
    """Serialize the writers of one chain's payments and credit for this transaction
    (PostgreSQL; SQLite's BEGIN IMMEDIATE already lets one writer in at a time)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 0x57A7C4 ^ chain_id})


def _reader(engine: AsyncEngine) -> AsyncConnection:
    return read_only(engine).connect()


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """An engine whose transactions read one consistent snapshot and take no write lock:
    REPEATABLE READ on PostgreSQL (READ COMMITTED would let a total mix two commits);
    a deferred transaction on SQLite, which in WAL mode reads one snapshot."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(read_only=True, isolation_level="REPEATABLE READ")
    return engine.execution_options(read_only=True)


async def orders(
    engine: AsyncEngine, chain_id: int | None = None, payer: str | None = None
) -> list[OrderView]:
    """Orders with how their provisioning goes (attempts, last error, next try, overdue)."""
    job = JobRecord
    query = select(
        OrderRecord,
        job.state.label("job_state"),
        job.attempts,
        job.available_at,
        job.last_error,
        job.created_at.label("job_created_at"),
    ).outerjoin(
        # The order's launch job (one per order; later kinds have their own views).
        job,
        (job.order_id == OrderRecord.order_id) & (job.kind == JobKind.LAUNCH.value),
    )
    if chain_id is not None:
        query = query.where(OrderRecord.chain_id == chain_id)
    if payer is not None:
        query = query.where(OrderRecord.payer == payer)
    query = query.order_by(
        OrderRecord.chain_id, OrderRecord.block_number, OrderRecord.log_index, OrderRecord.unit
    )
    async with _reader(engine) as conn:
        rows = (await conn.execute(query)).all()
    now = datetime.now(UTC)
    return [_with_job(order_view(r), r, now) for r in rows]


def _with_job(order: OrderView, r: Any, now: datetime) -> OrderView:
    """Add the order's job (an outer-joined launch `jobs` row in `r`) to its view."""
    if r.job_state is None:
        if order.state != OrderState.QUEUED.value:
            return order
        # A queued order whose launch job no worker has claimed yet (no row): due since
        # it was paid for.
        return replace(
            order,
            attempts=0,
            next_attempt_at=order.created_at,
            overdue=not order.reorged and _as_utc(order.created_at) < now - OVERDUE_AFTER,
        )
    pending = r.job_state in _PENDING
    return replace(
        order,
        attempts=r.attempts,
        last_error=r.last_error,
        # A claimed job is being worked on now; a finished one has no next attempt.
        next_attempt_at=r.available_at if r.job_state == _QUEUED else None,
        # Held for a reorg, an order is not stuck: see job_health.
        overdue=pending and not order.reorged and _as_utc(r.job_created_at) < now - OVERDUE_AFTER,
    )


def _as_utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def order_view(r: Any) -> OrderView:
    """An OrderView from a row with the `orders` columns (its job's fields left out)."""
    return OrderView(**{name: getattr(r, name) for name in ORDER_ROW_FIELDS})


async def job_health(engine: AsyncEngine, chain_id: int | None = None) -> JobHealth:
    """Pending, overdue, retrying and failing provisioning jobs (of one chain, or all).

    An order whose payment a reorg orphaned (`reorged`) is pending but counts as none of
    the other three: its job is held on purpose until the payment is mined again, and is
    released with a reason every few seconds meanwhile. Counted, it would keep /api/health
    degraded for ever; it has its own alert (ProvisionedOrderReorged) instead."""
    job = JobRecord
    overdue_before = datetime.now(UTC) - OVERDUE_AFTER
    funded = OrderRecord.reorged.is_(False)
    retrying = funded & job.last_error.is_not(None)

    def count(condition: Any) -> Any:
        # SUM(CASE) rather than COUNT(*) FILTER: one spelling for both databases.
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    query = (
        select(
            func.count(),
            count(funded & (job.created_at < overdue_before)),
            count(retrying),
            count(retrying & (job.attempts >= FAILING_AFTER_ATTEMPTS)),
            # The oldest job of a paid order (not one held for a reorg, see above).
            func.min(case((funded, job.created_at))),
        )
        .join(OrderRecord, OrderRecord.order_id == job.order_id)
        # Provisioning: launch jobs. Leases' stop, start and terminate jobs are counted
        # apart (lease_health), so that an expiry never reads as a paid order stuck.
        .where(job.state.in_(_PENDING), job.kind == JobKind.LAUNCH.value)
    )
    # Queued orders whose launch job has no row yet (see ledger/jobs.py): pending since
    # they were paid for, never tried.
    order = OrderRecord
    unwritten = select(
        func.count(),
        count(funded & (order.created_at < overdue_before)),
        func.min(case((funded, order.created_at))),
    ).where(
        order.state == OrderState.QUEUED.value,
        ~select(job.id)
        .where(job.order_id == order.order_id, job.kind == JobKind.LAUNCH.value)
        .exists(),
    )
    if chain_id is not None:
        query = query.where(OrderRecord.chain_id == chain_id)
        unwritten = unwritten.where(order.chain_id == chain_id)
    async with _reader(engine) as conn:
        pending, overdue, retrying_count, failing, oldest = (await conn.execute(query)).one()
        fresh, fresh_overdue, fresh_oldest = (await conn.execute(unwritten)).one()
    oldests = [_as_utc(at) for at in (oldest, fresh_oldest) if at is not None]
    return JobHealth(
        pending=int(pending) + int(fresh),
        overdue=int(overdue) + int(fresh_overdue),
        retrying=int(retrying_count),
        failing=int(failing),
        oldest_created_at=min(oldests) if oldests else None,
    )


async def cursor_block(engine: AsyncEngine, chain_id: int) -> int | None:
    """The last block whose payments are all in the ledger (None before the first step)."""
    query = select(ChainCursor.block_number).where(ChainCursor.chain_id == chain_id)
    async with _reader(engine) as conn:
        block: int | None = (await conn.execute(query)).scalar_one_or_none()
    return block


async def credits(
    engine: AsyncEngine, chain_id: int | None = None, payer: str | None = None
) -> list[CreditView]:
    query = select(CreditRecord)
    if chain_id is not None:
        query = query.where(CreditRecord.chain_id == chain_id)
    if payer is not None:
        query = query.where(CreditRecord.payer == payer)
    async with _reader(engine) as conn:
        rows = (await conn.execute(query.order_by(CreditRecord.chain_id, CreditRecord.payer))).all()
    return [CreditView(r.chain_id, r.payer, r.balance, r.updated_at) for r in rows]


async def payments(engine: AsyncEngine, chain_id: int) -> list[Payment]:
    query = (
        select(PaymentRecord)
        .where(PaymentRecord.chain_id == chain_id)
        .order_by(PaymentRecord.block_number, PaymentRecord.log_index)
    )
    async with _reader(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [payment_of(r) for r in rows]


def payment_of(r: Any) -> Payment:
    """A Payment from a `payments` row."""
    return Payment(
        r.chain_id,
        r.tx_hash,
        r.log_index,
        r.block_number,
        r.block_hash,
        to_checksum_address(r.payer),
        r.amount,
    )


async def totals(engine: AsyncEngine, chain_id: int) -> Totals:
    """The money invariant's figures, read in one snapshot (see accounts.Totals)."""
    async with _reader(engine) as conn:
        return await accounts.totals(conn, chain_id)


@dataclass(frozen=True)
class LedgerSnapshot:
    """What `watcher audit` compares, read in one consistent snapshot (a busy `watcher run`
    beside it must not make a payment and its orders look apart)."""

    cursor: int | None
    payments: list[Payment]
    orders: list[OrderView]
    credit: dict[str, int]
    genesis_hash: str | None


async def ledger_snapshot(engine: AsyncEngine, chain_id: int) -> LedgerSnapshot:
    async with _reader(engine) as conn:
        cursor = (
            await conn.execute(
                select(ChainCursor.block_number).where(ChainCursor.chain_id == chain_id)
            )
        ).scalar_one_or_none()
        payment_rows = (
            await conn.execute(
                select(PaymentRecord)
                .where(PaymentRecord.chain_id == chain_id)
                .order_by(PaymentRecord.block_number, PaymentRecord.log_index)
            )
        ).all()
        order_rows = (
            await conn.execute(select(OrderRecord).where(OrderRecord.chain_id == chain_id))
        ).all()
        credit = dict(
            (
                await conn.execute(
                    select(CreditRecord.payer, CreditRecord.balance).where(
                        CreditRecord.chain_id == chain_id
                    )
                )
            ).all()
        )
        genesis = (
            await conn.execute(
                select(ChainRecord.genesis_hash).where(ChainRecord.chain_id == chain_id)
            )
        ).scalar_one_or_none()
    payments = [payment_of(r) for r in payment_rows]
    return LedgerSnapshot(cursor, payments, [order_view(r) for r in order_rows], credit, genesis)


@dataclass(frozen=True)
class OrderAccess:
    """What the order's owner needs to reach what they bought (only theirs to read)."""

    order_id: str
    payer: str
    state: str
    plan: str
    resource: str | None
    periods: int | None
    name: str | None
    instance_id: str | None
    public_ip: str | None
    public_dns: str | None
    ssh_key: str | None
    host_keys: str | None  # JSON, once read from the console
    lease_state: str | None = None
    paid_until: datetime | None = None
    grace_until: datetime | None = None
    lease_terms: str | None = None


async def order_access(engine: AsyncEngine, chain_id: int, order_id: str) -> OrderAccess | None:
    """One order's access details, for its owner (the caller checks who asks)."""
    query = select(
        OrderRecord.order_id,
        OrderRecord.payer,
        OrderRecord.state,
        OrderRecord.plan,
        OrderRecord.resource,
        OrderRecord.periods,
        OrderRecord.name,
        OrderRecord.instance_id,
        OrderRecord.public_ip,
        OrderRecord.public_dns,
        OrderRecord.ssh_key,
        OrderRecord.host_keys,
        OrderRecord.lease_state,
        OrderRecord.paid_until,
        OrderRecord.grace_until,
        OrderRecord.lease_terms,
    ).where(OrderRecord.chain_id == chain_id, OrderRecord.order_id == order_id)
    async with _reader(engine) as conn:
        row = (await conn.execute(query)).first()
    return OrderAccess(**row._asdict()) if row is not None else None


async def clock(conn: AsyncConnection) -> datetime:
    """Now, by the database's clock where several watchers share one (PostgreSQL: a host
    with a skewed clock cannot expire a lease early); the host's on SQLite (one process)."""
    if conn.dialect.name == "postgresql":
        found = (await conn.execute(text("SELECT now()"))).scalar_one()
        assert isinstance(found, datetime)
        return found.astimezone(UTC)
    return datetime.now(UTC)


async def database_now(engine: AsyncEngine) -> datetime:
    async with _reader(engine) as conn:
        return await clock(conn)


async def lease_row(engine: AsyncEngine, chain_id: int, order_id: str) -> Any:
    """The order's row as a lease reads it (adapters/ledger/leases.py lease_of), None if
    there is no such order."""
    query = select(OrderRecord).where(
        OrderRecord.chain_id == chain_id, OrderRecord.order_id == order_id
    )
    async with _reader(engine) as conn:
        return (await conn.execute(query)).first()


@dataclass(frozen=True)
class LeaseHealth:
    """Leases at a glance, for the metrics."""

    by_state: dict[str, int]
    ending_soon: int  # running, paid time ends within the hour
    overdue_jobs: int  # stop/start/terminate jobs pending longer than OVERDUE_AFTER


async def lease_health(engine: AsyncEngine) -> LeaseHealth:
    lease_kinds = (JobKind.STOP.value, JobKind.START.value, JobKind.TERMINATE.value)
    async with _reader(engine) as conn:
        now = await clock(conn)
        by_state = dict(
            (
                await conn.execute(
                    select(OrderRecord.lease_state, func.count())
                    .where(OrderRecord.lease_state.is_not(None))
                    .group_by(OrderRecord.lease_state)
                )
            ).all()
        )
        ending = (
            await conn.execute(
                select(func.count()).where(
                    OrderRecord.lease_state.in_(["active", "expiring"]),
                    OrderRecord.paid_until <= now + timedelta(hours=1),
                )
            )
        ).scalar_one()
        overdue = (
            await conn.execute(
                select(func.count()).where(
                    JobRecord.kind.in_(lease_kinds),
                    JobRecord.state.in_(_PENDING),
                    JobRecord.created_at <= now - OVERDUE_AFTER,
                )
            )
        ).scalar_one()
    return LeaseHealth({str(k): int(v) for k, v in by_state.items()}, int(ending), int(overdue))
