"""The JSON API: plans, orders, credit, health. Read-only; nothing here touches a key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Path, Query
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher import __version__
from watcher.addresses import BURN_ADDRESS, parse_address
from watcher.amounts import CTK_DECIMALS, format_amount
from watcher.catalog import Catalog
from watcher.errors import InvalidInput
from watcher.ledger import queries
from watcher.ledger.jobs import CLAIMED, QUEUED
from watcher.ledger.schema import ChainCursor, ProvisionJobRecord


class PlanOut(BaseModel):
    name: str
    price: str = Field(description="Price in CTK base units (18 decimals), as a string.")
    price_ctk: str = Field(description="The price in CTK, as exact decimal text.")
    instance_type: str
    default: bool


class OrderOut(BaseModel):
    order_id: str
    chain_id: int
    tx_hash: str
    log_index: int
    unit: int
    block_number: int
    payer: str
    amount: str = Field(description="What the order cost, in CTK base units, as a string.")
    plan: str
    instance_type: str
    state: str = Field(description="queued, launching, launched, running or failed.")
    instance_id: str | None
    launched_at: str | None
    paid_at: str | None = Field(description="Time of the payment's block, when followed live.")
    reorged: bool
    failure_reason: str | None
    created_at: str
    updated_at: str


class CreditOut(BaseModel):
    chain_id: int
    payer: str
    balance: str = Field(description="Paid CTK not yet spent on an order, in base units.")
    balance_ctk: str
    plan: str


class PaymentInfo(BaseModel):
    chain_id: int
    token_address: str
    token_symbol: str = "CTK"  # noqa: S105 - a ticker, not a secret
    token_decimals: int = CTK_DECIMALS
    burn_address: str = BURN_ADDRESS
    default_plan: str


class BalanceOut(BaseModel):
    address: str
    balance: str = Field(description="CTK held by the address on chain, in base units.")
    balance_ctk: str


class HealthOut(BaseModel):
    status: str
    version: str
    chain_id: int
    cursor_block: int | None
    pending_jobs: int


BalanceReader = Callable[[str], Awaitable[int]]
_PAGES = resources.files("watcher.web").joinpath("static")


def create_api(
    engine: AsyncEngine,
    chain_id: int,
    token_address: str,
    catalog: Catalog,
    balance_of: BalanceReader | None = None,
) -> FastAPI:
    app = FastAPI(
        title="watcher",
        version=__version__,
        description=(
            "Token-gated, prepaid cloud provisioning. Pay by sending CTK to the burn address "
            "from your own wallet; follow your orders here (or on MQTT)."
        ),
    )

    def address(value: str, what: str = "address") -> str:
        try:
            return parse_address(value, what)
        except InvalidInput as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def checkout() -> str:
        return _PAGES.joinpath("checkout.html").read_text("utf-8")

    @app.get("/wallet/{payer}", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard(payer: str) -> str:
        address(payer)
        return _PAGES.joinpath("wallet.html").read_text("utf-8")

    app.mount("/static", StaticFiles(directory=str(_PAGES)), name="static")

    @app.get("/api/balance/{owner}", response_model=BalanceOut, tags=["paying"])
    async def balance(owner: str = Path(description="Any address.")) -> dict[str, Any]:
        """The address's CTK balance, read from the chain."""
        holder = address(owner)
        if balance_of is None:
            raise HTTPException(status_code=503, detail="no chain connection")
        units = await balance_of(holder)
        return {"address": holder, "balance": str(units), "balance_ctk": format_amount(units)}

    @app.get("/api/health", response_model=HealthOut, tags=["operations"])
    async def health() -> dict[str, Any]:
        async with queries.read_only(engine).connect() as conn:
            cursor = (
                await conn.execute(
                    select(ChainCursor.block_number).where(ChainCursor.chain_id == chain_id)
                )
            ).scalar_one_or_none()
            pending = (
                await conn.execute(
                    select(func.count()).where(ProvisionJobRecord.state.in_([QUEUED, CLAIMED]))
                )
            ).scalar_one()
        return {
            "status": "ok",
            "version": __version__,
            "chain_id": chain_id,
            "cursor_block": cursor,
            "pending_jobs": pending,
        }

    @app.get("/api/payment-info", response_model=PaymentInfo, tags=["paying"])
    async def payment_info() -> dict[str, Any]:
        """Where and how to pay: the token, the burn address, the chain."""
        return {
            "chain_id": chain_id,
            "token_address": token_address,
            "default_plan": catalog.default,
        }

    @app.get("/api/plans", response_model=list[PlanOut], tags=["paying"])
    async def plans() -> list[dict[str, Any]]:
        return [
            {
                "name": plan.name,
                "price": str(plan.price),
                "price_ctk": format_amount(plan.price),
                "instance_type": plan.instance_type,
                "default": plan.name == catalog.default,
            }
            for plan in catalog.plans.values()
        ]

    @app.get("/api/orders", response_model=list[OrderOut], tags=["orders"])
    async def orders(
        payer: str = Query(description="The paying wallet's address."),
    ) -> list[dict[str, Any]]:
        rows = await queries.orders(engine, chain_id, address(payer, "payer"))
        return [order.as_json() for order in rows]

    @app.get("/api/credit/{payer}", response_model=CreditOut, tags=["orders"])
    async def credit(
        payer: str = Path(description="The paying wallet's address."),
    ) -> dict[str, Any]:
        owner = address(payer, "payer")
        found = await queries.credits(engine, chain_id, owner)
        balance, plan = (found[0].balance, found[0].plan) if found else (0, catalog.default)
        return {
            "chain_id": chain_id,
            "payer": owner,
            "balance": str(balance),
            "balance_ctk": format_amount(balance),
            "plan": plan,
        }

    return app
