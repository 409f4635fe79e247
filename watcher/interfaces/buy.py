"""`watcher buy`: what the checkout page does, from the command line. Sign in with the
signer's key (EIP-4361), draft the order, pay its quote through the Checkout with a permit
(one transaction), wait until the watcher places and runs it, and print how to reach it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from watcher.adapters.chain.signer import Signer
from watcher.domain.errors import UserError
from watcher.domain.siwe import SignInMessage


@dataclass(frozen=True)
class Bought:
    draft: dict[str, Any]
    tx_hash: str
    access: dict[str, Any]


class Api:
    """The watcher's web API, signed in as one wallet (a bearer token)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base.rstrip("/")
        self.token: str | None = None

    async def call(self, method: str, path: str, body: object = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with self.session.request(
                method, self.base + path, json=body, headers=headers
            ) as answer:
                data = await answer.json(content_type=None)
                if answer.status >= 400:
                    detail = data.get("detail") if isinstance(data, dict) else data
                    raise UserError(
                        f"the watcher at {self.base} answered {answer.status}: {detail}"
                    )
                return data
        except aiohttp.ClientError as exc:
            raise UserError(f"cannot reach the watcher's API at {self.base}: {exc}") from None

    async def sign_in(self, signer: Signer) -> None:
        terms = await self.call("POST", "/api/auth/nonce")
        now = datetime.now(UTC)
        message = SignInMessage(
            domain=terms["domain"],
            address=signer.address,
            statement="Sign in to watcher to order and reach cloud resources.",
            uri=terms["uri"],
            chain_id=terms["chain_id"],
            nonce=terms["nonce"],
            issued_at=now,
            expiration_time=now + timedelta(minutes=5),
        ).text()
        answer = await self.call(
            "POST",
            "/api/auth/sign-in",
            {"message": message, "signature": signer.sign_text(message), "bearer": True},
        )
        self.token = answer["token"]


async def wait_for(
    api: Api, reference: str, wait: float, poll: float = 1.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The placed draft and its order's access details once it runs (or UserError with
    what is known when `wait` runs out, or when the payment became credit)."""
    deadline = time.monotonic() + wait
    draft: dict[str, Any] = {}
    while time.monotonic() < deadline:
        draft = await api.call("GET", f"/api/drafts/{reference}")
        if draft["state"] == "placed" and draft["order_id"]:
            access: dict[str, Any] = await api.call(
                "GET", f"/api/orders/{draft['order_id']}/access"
            )
            if access["state"] == "running" and access["ssh_command"]:
                return draft, access
            if access["state"] in ("failed", "terminated"):
                raise UserError(
                    f"order {draft['order_id']} {access['state']}: {access['next_step']}"
                )
        elif draft.get("note"):
            raise UserError(f"the payment did not place the order: {draft['note']}")
        await asyncio.sleep(poll)
    raise UserError(
        f"paid, but order {reference} was not running after {wait:.0f} s "
        f"(state: {draft.get('state', 'unknown')}); see `watcher orders` or the dashboard"
    )
