"""Sign-In with Ethereum on the API: a nonce, a signed EIP-4361 message in exchange for a
session, the session itself, and signing out.

The session travels as an HttpOnly, SameSite=Strict cookie for the pages (no script can
read it, no other site's page can send it) and, when asked for, as a bearer token for the
CLI and scripts (`Authorization: Bearer <token>`). No token moves: a session shows the
wallet's own orders and access details, and spends the wallet's own credit on its own
drafts (POST /api/drafts/{ref}/buy-from-credit), nothing else.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from watcher.adapters.ledger.signin import NONCE_LIFETIME, Session, SignIns
from watcher.domain.siwe import Expected, SignInRefused, verify
from watcher.shared.net import LOOPBACK_NAMES

COOKIE = "watcher_session"
NONCES_PER_MINUTE = 30


class NonceOut(BaseModel):
    nonce: str = Field(description="Put it in the message's `Nonce:` line; good once.")
    expires_at: datetime
    domain: str = Field(description="The message's domain (this site, as the wallet sees it).")
    uri: str = Field(description="The message's URI.")
    chain_id: int = Field(description="The message's `Chain ID:`: the chain this watcher follows.")


class SignInIn(BaseModel):
    message: str = Field(max_length=4096, description="The EIP-4361 message, as signed.")
    signature: str = Field(max_length=200, description="personal_sign's signature (0x + 130).")
    bearer: bool = Field(
        default=False,
        description="Also return the session token, for `Authorization: Bearer` (the CLI).",
    )


class SessionOut(BaseModel):
    address: str
    chain_id: int
    expires_at: datetime
    token: str | None = Field(default=None, description="Only when `bearer` was asked for.")


def _now() -> datetime:
    return datetime.now(UTC)


SignedIn = Callable[[Request], Awaitable[Session]]


def sign_in_routes(
    sign_ins: SignIns, chain_id: int, public_url: str | None = None
) -> tuple[APIRouter, SignedIn]:
    """The routes, and `signed_in`: the dependency that gives a handler the caller's
    session (401 when there is none)."""
    router = APIRouter(prefix="/api/auth", tags=["sign-in"])
    # Nonces handed out per client address in the last minute: each is a row until it
    # expires, so a client asking in a loop must not fill the database.
    recent: dict[str, deque[float]] = {}

    def expected(request: Request) -> Expected:
        # The site's public address as the operator pinned it. Without it, only a
        # loopback address is trusted: a Host header is the client's to choose, and a
        # message signed on a phishing site would match its own forged Host.
        if public_url is None and request.url.hostname not in LOOPBACK_NAMES:
            raise HTTPException(
                status_code=403,
                detail="sign-in needs WATCHER_PUBLIC_URL (the site's address as buyers reach "
                "it) unless the API is reached on 127.0.0.1 or localhost",
            )
        base = public_url or str(request.base_url)
        scheme, _, rest = base.partition("://")
        host = rest.split("/", 1)[0]
        return Expected(domain=host, origin=f"{scheme}://{host}", chain_id=chain_id)

    @router.post("/nonce", response_model=NonceOut, responses={429: {}})
    async def nonce(request: Request) -> NonceOut:
        """A nonce for a new sign-in message, with the terms the message must carry."""
        terms = expected(request)
        client = request.client.host if request.client else "unknown"
        now = time.monotonic()
        asked = recent.setdefault(client, deque())
        while asked and asked[0] < now - 60:
            asked.popleft()
        if len(asked) >= NONCES_PER_MINUTE:
            raise HTTPException(
                status_code=429,
                detail="too many sign-in attempts from this address: wait a minute",
                headers={"Retry-After": "60"},
            )
        asked.append(now)
        if len(recent) > 10_000:  # forget quiet clients
            for quiet in [c for c, times in recent.items() if not times or times[-1] < now - 60]:
                del recent[quiet]
        issued, expires = await sign_ins.issue_nonce(_now())
        return NonceOut(
            nonce=issued,
            expires_at=expires,
            domain=terms.domain,
            uri=terms.origin + "/",
            chain_id=chain_id,
        )

    @router.post("/sign-in", response_model=SessionOut, responses={401: {}})
    async def sign_in(body: SignInIn, request: Request, response: Response) -> SessionOut:
        """Exchange a signed EIP-4361 message for a session."""
        now = _now()
        try:
            message = verify(body.message, body.signature, expected(request), now)
        except SignInRefused as exc:
            raise HTTPException(status_code=401, detail=f"sign-in refused: {exc}") from None
        if not await sign_ins.take_nonce(message.nonce, now):
            raise HTTPException(
                status_code=401,
                detail="sign-in refused: the nonce is unknown, expired or already used "
                f"(nonces last {NONCE_LIFETIME.seconds // 60} minutes): sign in again",
            )
        token, session = await sign_ins.open_session(message.address, chain_id, now)
        response.set_cookie(
            COOKIE,
            token,
            max_age=int((session.expires_at - now).total_seconds()),
            httponly=True,
            samesite="strict",
            # Behind a TLS proxy the request itself arrives over plain http.
            secure=request.url.scheme == "https" or (public_url or "").startswith("https://"),
            path="/",
        )
        return SessionOut(
            address=session.address,
            chain_id=session.chain_id,
            expires_at=session.expires_at,
            token=token if body.bearer else None,
        )

    def token_of(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip() or None
        return request.cookies.get(COOKIE)

    async def signed_in(request: Request) -> Session:
        token = token_of(request)
        session = await sign_ins.session(token, _now()) if token else None
        if session is None or session.chain_id != chain_id:
            raise HTTPException(
                status_code=401,
                detail="sign in with your wallet first (the session is missing or has expired)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return session

    @router.get("/session", response_model=SessionOut, responses={401: {}})
    # The dependency as a default, not in Annotated: with postponed annotations FastAPI
    # cannot see a local name inside a string annotation.
    async def current(session: Session = Depends(signed_in)) -> SessionOut:  # noqa: B008
        """Who is signed in, until when."""
        return SessionOut(
            address=session.address, chain_id=session.chain_id, expires_at=session.expires_at
        )

    @router.post("/sign-out", status_code=204)
    async def sign_out(request: Request, response: Response) -> None:
        """End the session (the cookie's, or the bearer token's)."""
        token = token_of(request)
        if token:
            await sign_ins.end_session(token, _now())
        response.delete_cookie(COOKIE, path="/")

    return router, signed_in
