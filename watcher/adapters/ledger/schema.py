"""Tables of the ledger. Alembic migrations in db/ must describe exactly this schema
(tests/integration/test_migrations.py checks it on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from watcher.adapters.ledger.types import TokenAmount, UtcDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Hash = String(66)
Address = String(42)
Timestamp = UtcDateTime()
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ChainRecord(Base):
    """Which chain and token a ledger follows: a node that serves another chain under the
    same id (a reset dev chain, a fork) or another token is refused, not taken for a reorg."""

    __tablename__ = "chains"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    genesis_hash: Mapped[str] = mapped_column(Hash)
    token_address: Mapped[str] = mapped_column(Address)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class ChainCursor(Base):
    """The last block whose payments are all in the ledger, per chain."""

    __tablename__ = "chain_cursors"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(Hash)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class BlockRecord(Base):
    """Hashes of processed blocks, to notice a reorg and find the last common block."""

    __tablename__ = "blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(Hash)
    parent_hash: Mapped[str] = mapped_column(Hash)


class PaymentRecord(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index"),
        Index(None, "chain_id", "block_number"),
        Index(None, "chain_id", "payer"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(Hash)
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(Hash)
    payer: Mapped[str] = mapped_column(Address)
    amount: Mapped[int] = mapped_column(TokenAmount)
    recorded_at: Mapped[datetime] = mapped_column(Timestamp)


class CreditRecord(Base):
    """A payer's running balance: payments in, full prices out to orders, refunds back in.
    Never negative: an order whose payment a reorg orphaned is flagged unfunded instead."""

    __tablename__ = "credits"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    payer: Mapped[str] = mapped_column(Address, primary_key=True)
    balance: Mapped[int] = mapped_column(TokenAmount)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


_QUEUED_ORDER = text("state = 'queued'")
_LEASE_DUE = text("due_at IS NOT NULL")


class OrderRecord(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index(None, "chain_id", "payer"),
        Index(None, "chain_id", "block_number"),
        # Every recorded batch looks for unfunded orders (almost always none).
        Index(None, "chain_id", "reorged"),
        # A queued order is its own launch job until a worker first claims it (see
        # ledger/jobs.py): the workers find them here, oldest first.
        Index(
            "ix_orders_queued",
            "created_at",
            postgresql_where=_QUEUED_ORDER,
            sqlite_where=_QUEUED_ORDER,
        ),
        # The lease scheduler reads the leases whose next moment has come, oldest first.
        Index("ix_orders_due", "due_at", postgresql_where=_LEASE_DUE, sqlite_where=_LEASE_DUE),
    )

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    # The payment that bought it; NULL for an order bought from credit (its owner spent
    # credit on a draft, ledger.Ledger.spend_credit), whose block_number is then the
    # cursor's when it was bought: a reorg below that block may have taken the payments
    # the credit came from, and undoes it like an order of that block.
    tx_hash: Mapped[str | None] = mapped_column(Hash)
    log_index: Mapped[int | None] = mapped_column(Integer)
    unit: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)
    payer: Mapped[str] = mapped_column(Address)
    amount: Mapped[int] = mapped_column(TokenAmount)
    plan: Mapped[str] = mapped_column(String(64))
    instance_type: Mapped[str] = mapped_column(String(64))
    # The plan's resource specification when the order was paid (JSON, see
    # Plan.resource); NULL only for orders recorded before migration 0005.
    resource: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    instance_id: Mapped[str | None] = mapped_column(String(32))
    launched_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The time of the block that carried the payment, when the follower saw it live.
    paid_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Set when a reorg orphaned the payment after provisioning had started: the order is
    # unfunded (its price is in no payment), the operator must look at it. Cleared when
    # the same payment is included again and pays for it.
    reorged: Mapped[bool] = mapped_column(Boolean, default=False)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    # Set for an order its payment named (a drafted order, placed through the Checkout):
    # the draft's reference, the periods bought, the buyer's SSH key, a name.
    reference: Mapped[str | None] = mapped_column(Hash)
    periods: Mapped[int | None] = mapped_column(Integer)
    ssh_key: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(64))
    # Where the buyer reaches the resource, recorded when it runs (owner-only).
    public_ip: Mapped[str | None] = mapped_column(String(45))
    public_dns: Mapped[str | None] = mapped_column(String(255))
    # Its SSH host key fingerprints (JSON, watcher/domain/host_keys.py), once read from the
    # instance's console (owner-only).
    host_keys: Mapped[str | None] = mapped_column(Text)
    # Its lease (watcher/domain/leases.py): the plan's lease terms when it was paid for
    # (JSON; NULL for orders from before migration 0014, sold without an end), and, from
    # when it first runs, the lease's state, paid time, grace, warnings sent, auto-renew,
    # and `due_at`: the next moment the scheduler must look at it (partial index).
    lease_terms: Mapped[str | None] = mapped_column(Text)
    lease_state: Mapped[str | None] = mapped_column(String(16))
    paid_until: Mapped[datetime | None] = mapped_column(Timestamp)
    grace_until: Mapped[datetime | None] = mapped_column(Timestamp)
    due_at: Mapped[datetime | None] = mapped_column(Timestamp)
    warned: Mapped[int | None] = mapped_column(Integer)
    auto_renew: Mapped[bool | None] = mapped_column(Boolean)
    cancelled: Mapped[bool | None] = mapped_column(Boolean)


# At most one pending job per order and kind, enforced by the database (procrastinate's
# queueing lock): two watchers, a retry and a crash recovery can never queue the same work
# twice.
PENDING_JOB = text("state IN ('queued', 'claimed')")


class JobRecord(Base):
    """Work to do on an order's resource, drained by the provisioner: its own id, a kind
    (`launch` today; stop, start, terminate for leases), and a worker's claim."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index(None, "state", "available_at"),
        Index(None, "order_id"),
        Index(
            "uq_jobs_pending_order_kind",
            "order_id",
            "kind",
            unique=True,
            postgresql_where=PENDING_JOB,
            sqlite_where=PENDING_JOB,
        ),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("orders.order_id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))
    # queued -> claimed (a worker holds the claim) -> done | failed; a claim that expired
    # (its worker died) is claimable again.
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    available_at: Mapped[datetime] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)


class OrderEventRecord(Base):
    """The outbox: one row per order state change, written in the transaction that makes
    the change, published to MQTT in id order afterwards (written only when MQTT is on)."""

    __tablename__ = "order_events"
    __table_args__ = (Index(None, "published_at", "id"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[str] = mapped_column(String(32))
    payer: Mapped[str] = mapped_column(Address)
    state: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    published_at: Mapped[datetime | None] = mapped_column(Timestamp)


class SignInNonceRecord(Base):
    """A nonce this watcher handed out for a Sign-In with Ethereum message: good once,
    until it expires (adapters/ledger/signin.py)."""

    __tablename__ = "sign_in_nonces"
    __table_args__ = (Index(None, "expires_at"),)

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    used_at: Mapped[datetime | None] = mapped_column(Timestamp)


class SessionRecord(Base):
    """A signed-in wallet's session. Only the token's SHA-256 is kept: a copy of the
    database opens no session."""

    __tablename__ = "sessions"
    __table_args__ = (Index(None, "address"), Index(None, "expires_at"))

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(Address)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)


class DraftRecord(Base):
    """A drafted order: what a signed-in owner asked for, with its reference and quote
    (watcher/domain/drafts.py), until it is paid for and placed, or its quote runs out."""

    __tablename__ = "drafts"
    __table_args__ = (Index(None, "chain_id", "owner"),)

    reference: Mapped[str] = mapped_column(Hash, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str] = mapped_column(Address)
    plan: Mapped[str] = mapped_column(String(64))
    # The plan's resource specification and price when drafted: what the quote is for.
    resource: Mapped[str] = mapped_column(Text)
    periods: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(TokenAmount)
    price: Mapped[int] = mapped_column(TokenAmount)
    ssh_key: Mapped[str] = mapped_column(Text)
    ssh_fingerprint: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(64))
    # open -> placed (its order_id set), or the quote expires (open past expires_at).
    state: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    # What the last payment naming it did, when it did not place it (short, late...).
    note: Mapped[str | None] = mapped_column(Text)
    # The plan's lease terms when drafted (JSON, domain/leases.py): what the quote buys.
    lease_terms: Mapped[str | None] = mapped_column(Text)


class WebhookCursorRecord(Base):
    """Per webhook endpoint, the last order event (outbox id) it has received."""

    __tablename__ = "webhook_cursors"

    endpoint: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class WebhookAttemptRecord(Base):
    """Every delivery attempt of an event to an endpoint, with its answer: the delivery
    log (`watcher webhooks log`)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index(None, "endpoint", "event_id"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    redelivery: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(Timestamp)


class LeaseChargeRecord(Base):
    """An extension or renewal of a lease paid from credit, with the ledger's block when
    it was taken: a reorg below that block charges it again to the credit left, or undoes
    it (ledger.Ledger.rewind), as for an order bought from credit."""

    __tablename__ = "lease_charges"
    __table_args__ = (Index(None, "chain_id", "block_number"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("orders.order_id", ondelete="CASCADE")
    )
    chain_id: Mapped[int] = mapped_column(BigInteger)
    payer: Mapped[str] = mapped_column(Address)
    periods: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(TokenAmount)
    block_number: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
