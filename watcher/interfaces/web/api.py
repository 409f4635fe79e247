"""The JSON API: plans, orders, credit, health. Read-only; nothing here touches a key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Path, Query, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, create_model
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher import __version__
from watcher.adapters.chain.rpc import RpcError, RpcUnavailable
from watcher.adapters.ledger import queries
from watcher.adapters.ledger.drafts import Drafts
from watcher.adapters.ledger.lease_book import LeaseBook
from watcher.adapters.ledger.ledger import Ledger
from watcher.adapters.ledger.signin import SignIns
from watcher.domain.addresses import BURN_ADDRESS, parse_address
from watcher.domain.amounts import CTK_DECIMALS, format_amount
from watcher.domain.catalog import Catalog
from watcher.domain.errors import InvalidInput
from watcher.domain.kinds import describe, size, summary
from watcher.domain.leases import period_words
from watcher.domain.payment import MalformedChainData
from watcher.interfaces.web.access import access_routes
from watcher.interfaces.web.drafts import BuyFromCredit, draft_routes
from watcher.interfaces.web.leases import lease_routes
from watcher.interfaces.web.signin import sign_in_routes
from watcher.services.host_keys import HostKeys
from watcher.services.resource_views import ResourceViews


class PlanOut(BaseModel):
    name: str
    price: str = Field(description="Price in CTK base units (18 decimals), as a string.")
    price_ctk: str = Field(description="The price in CTK, as exact decimal text.")
    instance_type: str = Field(description="What it is in short: t3.micro, pool of 1-5 t3.micro...")
    kind: str = Field(description="ec2_instance, scaling_pool or s3_bucket.")
    what: str = Field(description="What the buyer gets and how they use it, in a sentence.")
    vcpus: int | None = Field(description="vCPUs, where the plan's type is known here.")
    memory_gib: float | None = Field(description="Memory in GiB, where known.")
    unit: str = Field(description='What one period is ("hour"): the plan\'s price buys one.')
    units: str = Field(description='Several periods ("hours").')
    default: bool


# Derived from the one declaration of an order's shape (queries.OrderView): its fields,
# their JSON types (amounts and times as strings) and their documentation.
_ORDER_FIELDS: dict[str, Any] = {
    f.name: (f.json_type, Field(description=f.doc)) for f in queries.ORDER_SHAPE
}
OrderOut: type[BaseModel] = create_model("OrderOut", **_ORDER_FIELDS)


class CreditOut(BaseModel):
    chain_id: int
    payer: str
    balance: str = Field(description="Paid CTK not yet spent on an order, in base units.")
    balance_ctk: str
    plan: str | None = Field(
        description="The plan the next payment buys with this credit (vending); null "
        "beside a Checkout, where credit is spent on an order its owner drafts."
    )


class PaymentInfo(BaseModel):
    chain_id: int
    token_address: str
    token_symbol: str = "CTK"  # noqa: S105 - a ticker, not a secret
    token_decimals: int = CTK_DECIMALS
    burn_address: str = BURN_ADDRESS
    default_plan: str
    checkout_address: str | None = Field(
        description="The Checkout contract through which a payment names its order; null: "
        "only plain transfers, which buy the default plan."
    )
    explorer_url: str | None = Field(
        description="A block explorer: a transaction is at <explorer_url>/tx/<hash>."
    )
    period: str = Field(
        description="What one period of the default plan is (each plan says its own)."
    )
    leases_enforced: bool = Field(
        description="Whether resources are stopped when their paid time ends (and "
        "terminated after the plan's grace)."
    )


class BalanceOut(BaseModel):
    address: str
    balance: str = Field(description="CTK held by the address on chain, in base units.")
    balance_ctk: str


class HealthOut(BaseModel):
    status: str = Field(description='"ok", or "degraded" (HTTP 503) with the reasons.')
    reasons: list[str] = Field(description="Why the service is degraded; empty when ok.")
    version: str
    chain_id: int
    cursor_block: int | None
    pending_jobs: int
    overdue_jobs: int = Field(description="Paid orders waiting longer than they should.")
    retrying_jobs: int = Field(description="Orders whose last provisioning attempt failed.")
    failing_jobs: int = Field(description="Retrying orders that failed several times in a row.")


BalanceReader = Callable[[str], Awaitable[int]]
_PAGES = resources.files("watcher.interfaces.web").joinpath("static")
# Swagger UI as the fastapi-offline package ships it (swagger-ui 5),
# instead of FastAPI's default CDN: /docs must work on a machine without internet and tell
# no third party who reads it. The package is maintained and pinned, where vendoring
# npm's swagger-ui-dist would put 1.7 MB of minified JS into this repository to update
# by hand; tests/integration/test_api.py checks the files are there.
_DOCS_ASSETS = resources.files("fastapi_offline").joinpath("static")
_DOCS_ASSETS_URL = "/docs-assets"


def problem_page(title: str, detail: str) -> str:
    """A page in the site's style saying what is wrong and where to go from here."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)} · watcher</title><link rel="stylesheet" href="/static/style.css">'
        '</head><body><header><div class="logo">watcher <span>· CloudToken cloud</span></div>'
        '<nav><a href="/">Checkout</a><a href="/docs">API</a></nav></header><main>'
        f'<h1>{escape(title)}</h1><div class="banner show error" role="alert">{escape(detail)}'
        "</div><p>A wallet address is 0x followed by 40 hexadecimal digits, as your wallet "
        'shows it. <a href="/">Go to the checkout</a>, connect your wallet and follow '
        '"My orders" from there.</p></main></body></html>'
    )


def create_api(
    engine: AsyncEngine,
    chain_id: int,
    token_address: str,
    catalog: Catalog,
    balance_of: BalanceReader | None = None,
    public_url: str | None = None,
    checkout_address: str | None = None,
    buy_from_credit: BuyFromCredit | None = None,
    region: str | None = None,
    explorer_url: str | None = None,
    host_keys: HostKeys | None = None,
    vending: bool | None = None,
    leases: bool = False,
    lease_book: LeaseBook | None = None,
) -> FastAPI:
    """The API and pages. `buy_from_credit` places a draft with its owner's credit
    (`watcher run` passes its ledger's, which also wakes the provisioner); by default a
    ledger of its own on `engine`."""
    if vending is None:  # as the settings decide it: on unless a Checkout is followed
        vending = checkout_address is None
    app = FastAPI(
        title="watcher",
        version=__version__,
        description=(
            "Token-gated, prepaid cloud provisioning. Pay by sending CTK to the burn address "
            "from your own wallet; follow your orders here (or on MQTT)."
        ),
        # /docs is served below with local assets instead of FastAPI's CDN ones. No ReDoc:
        # even with its script local, it loads its logo from its own CDN.
        docs_url=None,
        redoc_url=None,
    )

    sign_in, signed_in = sign_in_routes(SignIns(engine), chain_id, public_url)
    app.include_router(sign_in)
    if buy_from_credit is None:
        buy_from_credit = Ledger(engine, chain_id, catalog).spend_credit
    app.include_router(
        draft_routes(
            Drafts(engine, chain_id), catalog, signed_in, checkout_address, buy_from_credit
        )
    )
    views = ResourceViews(host_keys.cloud) if host_keys is not None else None
    app.include_router(access_routes(engine, chain_id, signed_in, region, host_keys, views))
    app.include_router(lease_routes(engine, chain_id, signed_in, lease_book))

    def address(value: str, what: str = "address") -> str:
        try:
            return parse_address(value, what)
        except InvalidInput as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def checkout() -> str:
        # With the Checkout followed, a payment names its order: the buyer chooses plan,
        # hours and SSH key. Without it, a plain transfer buys the plan on offer.
        page = "buy.html" if checkout_address is not None else "checkout.html"
        return _PAGES.joinpath(page).read_text("utf-8")

    @app.get("/wallet/{payer}", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard(payer: str) -> HTMLResponse:
        try:
            parse_address(payer, "wallet address")
        except InvalidInput as exc:
            # A person followed a link or typed the address: a page, not JSON.
            return HTMLResponse(problem_page("Not a wallet address", str(exc)), status_code=400)
        return HTMLResponse(_PAGES.joinpath("wallet.html").read_text("utf-8"))

    app.mount("/static", StaticFiles(directory=str(_PAGES)), name="static")
    app.mount(_DOCS_ASSETS_URL, StaticFiles(directory=str(_DOCS_ASSETS)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{_DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{_DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{_DOCS_ASSETS_URL}/favicon.png",
        )

    @app.get(
        "/api/balance/{owner}",
        response_model=BalanceOut,
        tags=["paying"],
        responses={503: {"description": "The chain node is down, slow or refused the call."}},
    )
    async def balance(owner: str = Path(description="Any address.")) -> dict[str, Any]:
        """The address's CTK balance, read from the chain."""
        holder = address(owner)
        if balance_of is None:
            raise HTTPException(status_code=503, detail="no chain connection")
        try:
            units = await balance_of(holder)
        except RpcUnavailable as exc:
            # The page retries; the node's URL (and any key in it) stays on the server.
            raise HTTPException(
                status_code=503, detail=f"the chain node is not answering ({exc.kind})"
            ) from None
        except (RpcError, MalformedChainData):
            raise HTTPException(
                status_code=503, detail="the chain node could not read the balance"
            ) from None
        return {"address": holder, "balance": str(units), "balance_ctk": format_amount(units)}

    @app.get(
        "/api/health",
        response_model=HealthOut,
        tags=["operations"],
        responses={503: {"model": HealthOut, "description": "Degraded: see `reasons`."}},
    )
    async def health(response: Response) -> dict[str, Any]:
        """`ok`, or `degraded` with HTTP 503 while paid orders wait too long or keep failing
        to provision (a load balancer or uptime check sees it without parsing the body)."""
        cursor = await queries.cursor_block(engine, chain_id)
        jobs = await queries.job_health(engine, chain_id)
        reasons = []
        if jobs.overdue:
            minutes = int(queries.OVERDUE_AFTER.total_seconds() // 60)
            reasons.append(
                f"{jobs.overdue} paid order(s) waited more than {minutes} minutes for provisioning"
            )
        if jobs.failing:
            reasons.append(
                f"{jobs.failing} order(s) failed to provision {queries.FAILING_AFTER_ATTEMPTS} "
                "or more times and are being retried (see `watcher orders` for the errors)"
            )
        if reasons:
            response.status_code = 503
        return {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "version": __version__,
            "chain_id": chain_id,
            "cursor_block": cursor,
            "pending_jobs": jobs.pending,
            "overdue_jobs": jobs.overdue,
            "retrying_jobs": jobs.retrying,
            "failing_jobs": jobs.failing,
        }

    @app.get("/api/payment-info", response_model=PaymentInfo, tags=["paying"])
    async def payment_info() -> dict[str, Any]:
        """Where and how to pay: the token, the burn address, the chain."""
        return {
            "chain_id": chain_id,
            "token_address": token_address,
            "default_plan": catalog.default,
            "checkout_address": checkout_address,
            "explorer_url": explorer_url.rstrip("/") if explorer_url else None,
            "period": period_words(catalog.default_plan.lease.period)[0],
            "leases_enforced": leases,
        }

    @app.get("/api/plans", response_model=list[PlanOut], tags=["paying"])
    async def plans() -> list[dict[str, Any]]:
        return [
            {
                "name": plan.name,
                "price": str(plan.price),
                "price_ctk": format_amount(plan.price),
                "instance_type": summary(plan.spec),
                "kind": plan.spec.kind,
                "what": describe(plan.spec),
                "vcpus": known[0] if (known := size(plan.spec)) else None,
                "memory_gib": known[1] if known else None,
                "unit": period_words(plan.lease.period)[0],
                "units": period_words(plan.lease.period)[1],
                "default": plan.name == catalog.default,
            }
            for plan in catalog.plans.values()
        ]

    # OrderOut is a class built at run time: mypy cannot take it as a type, FastAPI reads
    # it as a value.
    @app.get("/api/orders", response_model=list[OrderOut], tags=["orders"])  # type: ignore[valid-type]
    async def orders(
        payer: str = Query(description="The paying wallet's address."),
    ) -> list[dict[str, Any]]:
        rows = await queries.orders(engine, chain_id, address(payer, "payer"))
        return [order.as_public_json() for order in rows]

    @app.get("/api/credit/{payer}", response_model=CreditOut, tags=["orders"])
    async def credit(
        payer: str = Path(description="The paying wallet's address."),
    ) -> dict[str, Any]:
        owner = address(payer, "payer")
        found = await queries.credits(engine, chain_id, owner)
        balance = found[0].balance if found else 0
        plan = catalog.default if vending else None
        return {
            "chain_id": chain_id,
            "payer": owner,
            "balance": str(balance),
            "balance_ctk": format_amount(balance),
            "plan": plan,
        }

    return app
