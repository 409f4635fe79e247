"""Drafted orders on the API: a signed-in owner asks for a plan, a number of periods and an
SSH key and gets a reference and a quote; only the owner reads a draft back (it holds
their SSH key and, once placed, leads to their order's access details)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from watcher.adapters.ledger import queries
from watcher.adapters.ledger.drafts import OPEN, Draft, Drafts
from watcher.adapters.ledger.ledger import BoughtFromCredit, NotPayable
from watcher.adapters.ledger.signin import Session
from watcher.domain.amounts import format_amount
from watcher.domain.catalog import Catalog
from watcher.domain.drafts import MAX_PERIODS, draft_terms, quote
from watcher.domain.errors import InvalidInput
from watcher.domain.kinds import summary
from watcher.domain.leases import LeaseTerms, period_words
from watcher.domain.resources import ResourceSpec
from watcher.interfaces.web.signin import SignedIn


class DraftIn(BaseModel):
    plan: str = Field(max_length=64, description="A plan of /api/plans.")
    periods: int | str = Field(
        description=f"Whole periods to buy, 1 to {MAX_PERIODS} (as a number or as typed)."
    )
    ssh_key: str = Field(
        max_length=16_384,
        description="One OpenSSH public key line: ed25519, ECDSA or RSA of 2048 bits or more.",
    )
    name: str | None = Field(default=None, max_length=200, description="A label, optional.")


class DraftOut(BaseModel):
    reference: str = Field(description="The order reference: Checkout.pay's `ref`.")
    plan: str
    summary: str = Field(description="What the plan is, e.g. t3.micro.")
    periods: int
    unit_price: str = Field(description="CTK base units per period, as a string.")
    price: str = Field(description="The quote: CTK base units for all periods, as a string.")
    price_ctk: str = Field(description="The quote in CTK, as exact decimal text.")
    expires_at: datetime = Field(description="The quote holds for a payment mined before this.")
    state: str = Field(description="open, expired (its quote ran out) or placed.")
    unit: str = Field(default="hour", description='What one period is ("hour").')
    units: str = Field(default="hours", description='Several periods ("hours").')
    order_id: str | None = Field(description="The order, once placed.")
    ssh_fingerprint: str
    name: str | None
    note: str | None = Field(
        default=None,
        description="Why the last payment naming it did not place it (it became credit).",
    )
    credit_applied: str = Field(
        default="0",
        description="Of the owner's credit now, what goes to this draft (base units): the "
        "checkout applies credit first.",
    )
    due: str = Field(
        default="0",
        description="What is left to pay through the Checkout now: the quote less the credit "
        "applied (base units; 0: buy it from credit, or it is placed).",
    )


class BoughtOut(BaseModel):
    order_id: str = Field(description="The order placed, queued for provisioning.")
    price: str = Field(description="What left the credit, in base units.")
    price_ctk: str
    credit_left: str = Field(description="The owner's credit after it, in base units.")
    credit_left_ctk: str


# Open drafts per wallet: each is a row, and a quote nobody pays is noise on the dashboard.
MAX_OPEN_DRAFTS = 20


def _now() -> datetime:
    return datetime.now(UTC)


def _out(draft: Draft, now: datetime, credit: int = 0) -> DraftOut:
    payable = draft.state == OPEN and not draft.expired(now)
    terms = LeaseTerms.from_json(draft.lease_terms) if draft.lease_terms else LeaseTerms()
    unit, units = period_words(terms.period)
    applied = min(max(credit, 0), draft.price) if payable else 0
    return DraftOut(
        reference=draft.reference,
        plan=draft.plan,
        summary=summary(ResourceSpec.from_json(draft.resource)),
        periods=draft.periods,
        unit_price=str(draft.unit_price),
        price=str(draft.price),
        price_ctk=format_amount(draft.price),
        expires_at=draft.expires_at,
        state="expired" if draft.expired(now) else draft.state,
        unit=unit,
        units=units,
        order_id=draft.order_id,
        ssh_fingerprint=draft.ssh_fingerprint,
        name=draft.name,
        note=draft.note,
        credit_applied=str(applied),
        due=str(draft.price - applied if payable else 0),
    )


BuyFromCredit = Callable[[str, str], Awaitable[BoughtFromCredit]]


def draft_routes(
    drafts: Drafts,
    catalog: Catalog,
    signed_in: SignedIn,
    checkout: str | None,
    buy_from_credit: BuyFromCredit,
) -> APIRouter:
    router = APIRouter(prefix="/api/drafts", tags=["ordering"])
    session_of = Depends(signed_in)

    async def credit_of(owner: str) -> int:
        found = await queries.credits(drafts.engine, drafts.chain_id, owner)
        return found[0].balance if found else 0

    @router.post(
        "", response_model=DraftOut, status_code=201, responses={400: {}, 401: {}, 503: {}}
    )
    async def create(body: DraftIn, session: Session = session_of) -> DraftOut:
        """Draft an order for the signed-in wallet: its reference and quote, to pay through
        the Checkout contract."""
        if checkout is None:
            # Without the Checkout followed, a payment cannot name its order: it would be
            # taken as a plain one. Refuse to draft what could not be paid for as asked.
            raise HTTPException(
                status_code=503,
                detail="ordering a chosen plan is not enabled here (no WATCHER_CHECKOUT_ADDRESS): "
                "pay by a plain transfer, which buys the plan on offer",
            )
        now = _now()
        try:
            terms = draft_terms(catalog, body.plan, body.periods, body.ssh_key, body.name)
        except InvalidInput as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        if await drafts.open_count(session.address, now) >= MAX_OPEN_DRAFTS:
            raise HTTPException(
                status_code=429,
                detail=f"{MAX_OPEN_DRAFTS} drafts are waiting for payment: pay one, or let "
                "their quotes run out (30 minutes), before drafting more",
            )
        draft = await drafts.create(session.address, terms, quote(terms, now), now)
        return _out(draft, now, await credit_of(session.address))

    @router.get("", response_model=list[DraftOut], responses={401: {}})
    async def mine(session: Session = session_of) -> list[DraftOut]:
        """The signed-in wallet's drafts, newest first."""
        now, credit = _now(), await credit_of(session.address)
        return [_out(draft, now, credit) for draft in await drafts.of_owner(session.address)]

    @router.get("/{reference}", response_model=DraftOut, responses={401: {}, 403: {}, 404: {}})
    async def one(
        reference: str = Path(pattern=r"^0x[0-9a-fA-F]{64}$"), session: Session = session_of
    ) -> DraftOut:
        """One draft, for its owner only."""
        draft = await drafts.get(reference)
        if draft is None:
            raise HTTPException(status_code=404, detail=f"no draft {reference}")
        if draft.owner != session.address:
            raise HTTPException(status_code=403, detail="this draft belongs to another wallet")
        return _out(draft, _now(), await credit_of(session.address))

    @router.post(
        "/{reference}/buy-from-credit",
        response_model=BoughtOut,
        status_code=201,
        responses={401: {}, 402: {}, 403: {}, 404: {}, 409: {}},
    )
    async def from_credit(
        reference: str = Path(pattern=r"^0x[0-9a-fA-F]{64}$"), session: Session = session_of
    ) -> BoughtOut:
        """Place the signed-in owner's open draft with their credit, no payment: its quote
        leaves the credit. 402 when the credit does not cover it (pay through the
        Checkout, which applies the credit first), 403 for another wallet's draft, 409 when
        the draft is already paid or its quote ran out. A second request for the same draft
        is refused, never charged: after an unanswered request, asking again is safe (409
        "already paid" then means the first one placed it)."""
        try:
            bought = await buy_from_credit(session.address, reference)
        except NotPayable as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        return BoughtOut(
            order_id=bought.order_id,
            price=str(bought.price),
            price_ctk=format_amount(bought.price),
            credit_left=str(bought.credit_left),
            credit_left_ctk=format_amount(bought.credit_left),
        )

    return router
