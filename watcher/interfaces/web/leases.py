"""The owner's hand on a lease, on the API: extend it from credit, turn auto-renew on or
off, see what cancelling gives back, cancel. Each is one signed-in request for the wallet
that paid for the order (403 for another, 401 signed out); all need leases enforced
(`WATCHER_LEASES`), since a stop, start or termination they ask for is carried out only
then."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger import queries
from watcher.adapters.ledger.lease_book import LeaseBook, LeaseChange, LeaseRefused
from watcher.adapters.ledger.leases import lease_of
from watcher.adapters.ledger.signin import Session
from watcher.domain.amounts import format_amount
from watcher.domain.drafts import MAX_PERIODS
from watcher.domain.leases import unused_periods
from watcher.interfaces.web.signin import SignedIn

ORDER_ID = Path(pattern=r"^[0-9a-f]{32}$")


class ExtendIn(BaseModel):
    periods: int = Field(ge=1, le=MAX_PERIODS, description="Whole periods to add.")


class AutoRenewIn(BaseModel):
    on: bool


class LeaseOut(BaseModel):
    order_id: str
    lease_state: str
    paid_until: datetime | None
    grace_until: datetime | None
    periods: int = Field(description="Periods paid for in all.")
    auto_renew: bool
    charged: str = Field(description="Taken from credit by this request (base units).")
    refunded: str = Field(description="Given back to credit by this request (base units).")
    refunded_ctk: str


class CancelIn(BaseModel):
    expected_refund: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,78}$",
        description="The refund the owner was shown (base units): refused (409) if cancelling "
        "now gives back another (a period began meanwhile).",
    )


class CancelQuote(BaseModel):
    refund: str = Field(description="What cancelling now gives back to credit (base units).")
    refund_ctk: str
    unused_periods: int
    rule: str = Field(description='The plan\'s rule: "unused-periods" or "none".')


def lease_routes(
    engine: AsyncEngine, chain_id: int, signed_in: SignedIn, book: LeaseBook | None
) -> APIRouter:
    router = APIRouter(prefix="/api/orders", tags=["leases"])
    session_of = Depends(signed_in)

    def enforced() -> LeaseBook:
        if book is None:
            raise HTTPException(
                status_code=503,
                detail="leases are not enforced here (WATCHER_LEASES): nothing to extend or cancel",
            )
        return book

    def answer(order_id: str, change: LeaseChange) -> LeaseOut:
        lease = change.lease
        return LeaseOut(
            order_id=order_id,
            lease_state=lease.state.value,
            paid_until=lease.paid_until,
            grace_until=lease.grace_until,
            periods=lease.periods,
            auto_renew=lease.auto_renew,
            charged=str(change.charged),
            refunded=str(change.refunded),
            refunded_ctk=format_amount(change.refunded),
        )

    refusals: dict[int | str, dict[str, Any]] = {
        code: {} for code in (401, 402, 403, 404, 409, 503)
    }

    @router.post("/{order_id}/extend", response_model=LeaseOut, responses=refusals)
    async def extend(
        body: ExtendIn, order_id: str = ORDER_ID, session: Session = session_of
    ) -> LeaseOut:
        """Add periods to the signed-in owner's lease, paid from their credit (402 when it
        does not cover them). In grace, the resource starts again."""
        try:
            change = await enforced().extend(order_id, session.address, body.periods)
        except LeaseRefused as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        return answer(order_id, change)

    @router.post("/{order_id}/auto-renew", response_model=LeaseOut, responses=refusals)
    async def auto_renew(
        body: AutoRenewIn, order_id: str = ORDER_ID, session: Session = session_of
    ) -> LeaseOut:
        """Renew from credit a period at a time near the end (within the plan's cap of
        periods ahead), or stop doing so."""
        try:
            change = await enforced().set_auto_renew(order_id, session.address, body.on)
        except LeaseRefused as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        return answer(order_id, change)

    @router.get("/{order_id}/cancel", response_model=CancelQuote, responses=refusals)
    async def cancel_quote(order_id: str = ORDER_ID, session: Session = session_of) -> CancelQuote:
        """What cancelling now would give back, by the plan's rule: shown before the owner
        confirms."""
        row = await queries.lease_row(engine, chain_id, order_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"no order {order_id}")
        if row.payer != session.address:
            raise HTTPException(status_code=403, detail="this order belongs to another wallet")
        if row.lease_state is None:
            raise HTTPException(status_code=409, detail="this order has no running lease")
        lease, terms = lease_of(row)
        back = unused_periods(lease, await queries.database_now(engine), terms)
        return CancelQuote(
            refund=str(back * lease.period_price),
            refund_ctk=format_amount(back * lease.period_price),
            unused_periods=back,
            rule=terms.refund.value,
        )

    @router.post("/{order_id}/cancel", response_model=LeaseOut, responses=refusals)
    async def cancel(
        body: CancelIn | None = None, order_id: str = ORDER_ID, session: Session = session_of
    ) -> LeaseOut:
        """End the signed-in owner's lease now: the resource is terminated and the whole
        periods not begun go back to credit (GET this path first to see how much, and send
        it as `expected_refund`)."""
        expected = int(body.expected_refund) if body and body.expected_refund else None
        try:
            change = await enforced().cancel(order_id, session.address, expected)
        except LeaseRefused as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        return answer(order_id, change)

    return router
