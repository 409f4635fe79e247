"""`watcher buy`: what the checkout page does, from the command line. Sign in with the
signer's key (EIP-4361), draft the order, pay its quote through the Checkout with a permit
(one transaction), wait until the watcher places and runs it, and print how to reach it.

Once the payment is sent, nothing this command meets ends it as if nothing was paid: an
API that does not answer is asked again, and every error after that point names the
transaction and the draft, so that nobody buys twice by running it again."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from watcher.adapters.chain.signer import Signer
from watcher.domain.errors import UserError
from watcher.domain.siwe import SignInMessage
from watcher.shared.net import LOOPBACK_NAMES


class Unreachable(UserError):
    """The API did not answer (down, slow, a proxy's error page): worth asking again."""


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
                try:
                    data = await answer.json(content_type=None)
                except ValueError:
                    raise Unreachable(
                        f"the watcher's API at {self.base} answered {answer.status} without JSON"
                    ) from None
                if answer.status >= 500:
                    raise Unreachable(f"the watcher at {self.base} answered {answer.status}")
                if answer.status >= 400:
                    detail = data.get("detail") if isinstance(data, dict) else data
                    raise UserError(
                        f"the watcher at {self.base} answered {answer.status}: {detail}"
                    )
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unreachable(f"cannot reach the watcher's API at {self.base}: {exc}") from None

    async def sign_in(self, signer: Signer, chain_id: int) -> None:
        """Sign in, checking the terms the API asks to sign: its chain must be the one this
        command pays on, and off loopback its domain must be the --api-url's own (else a
        stranger's API could relay another site's nonce and have this key sign in there)."""
        terms = await self.call("POST", "/api/auth/nonce")
        if terms.get("chain_id") != chain_id:
            raise UserError(
                f"the watcher at {self.base} follows chain {terms.get('chain_id')}, not "
                f"chain {chain_id} that this command pays on: nothing was signed or sent"
            )
        parts = urlsplit(self.base)
        if parts.hostname not in LOOPBACK_NAMES and terms.get("domain") != parts.netloc:
            raise UserError(
                f"the watcher at {self.base} asks to sign in to {terms.get('domain')!r}, "
                f"not {parts.netloc!r}: nothing was signed"
            )
        now = datetime.now(UTC)
        message = SignInMessage(
            domain=terms["domain"],
            address=signer.address,
            statement="Sign in to watcher to order and reach cloud resources.",
            uri=terms["uri"],
            chain_id=chain_id,
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


def reachable(access: dict[str, Any]) -> bool:
    """Whether the owner has what they need to use it: an instance's ssh command, a
    pool's instances, a bucket's links."""
    kind = access.get("kind", "ec2_instance")
    if kind == "scaling_pool":
        return bool((access.get("pool") or {}).get("instances"))
    if kind == "s3_bucket":
        return access.get("storage") is not None
    return bool(access.get("ssh_command"))


def how_to_use(access: dict[str, Any], identity: str | None) -> list[str]:
    """What `watcher buy` prints for the order it bought, a line each."""
    kind = access.get("kind", "ec2_instance")
    key = f"-i {identity} " if identity else ""

    def ssh(command: str) -> str:
        return command.replace("ssh ", f"ssh {key}", 1) if command.startswith("ssh ") else command

    head = f"order {access['order_id']} runs: {access['summary']}"
    if kind == "scaling_pool":
        pool = access["pool"]
        lines = [
            f"{head}, group {pool['group']}: {pool['desired_capacity']} of at most "
            f"{pool['max_size']} instances (more start when the average CPU stays above "
            f"{pool['cpu_threshold']} %)"
        ]
        for member in pool["instances"]:
            command = member.get("ssh_command")
            lines.append(ssh(command) if command else f"{member['instance_id']}: no address yet")
        return lines
    if kind == "s3_bucket":
        storage = access["storage"]
        lines = [
            f"{head}, bucket {storage['bucket']}: {storage['used_bytes']} of "
            f"{storage['quota_bytes']} bytes used"
        ]
        lines.append(
            "upload and download on your dashboard, or ask GET "
            f"/api/orders/{access['order_id']}/access?upload=NAME (signed in) for a form "
            "made for the file NAME, and POST its fields and the file to its url"
        )
        return lines
    return [f"{head} at {access['public_ip']}", ssh(access["ssh_command"])]


async def wait_for(
    api: Api, reference: str, wait: float, poll: float = 1.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The placed draft and its order's access details once it runs; UserError with what
    is known when `wait` runs out, when the payment became credit, or when the order ended
    or runs without a public address."""
    deadline = time.monotonic() + wait
    draft: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            draft = await api.call("GET", f"/api/drafts/{reference}")
            if draft.get("state") == "placed" and draft.get("order_id"):
                order = draft["order_id"]
                access: dict[str, Any] = await api.call("GET", f"/api/orders/{order}/access")
                if access.get("state") == "running":
                    if reachable(access):
                        return draft, access
                    if access.get("kind", "ec2_instance") == "ec2_instance":
                        raise UserError(f"order {order} runs: {access.get('next_step')}")
                    # A pool's or bucket's details are read live: asked again.
                if access.get("state") in ("failed", "terminated"):
                    raise UserError(f"order {order} {access['state']}: {access.get('next_step')}")
            elif str(draft.get("note") or "").endswith("credited to the payer"):
                # Final: the watcher credited the payment instead (short, late...). Another
                # note (a reorg undid the payment) may still turn into the order: wait.
                raise UserError(f"the payment did not place the order: {draft['note']}")
        except Unreachable:
            pass  # asked again at the next poll: the payment is made, only an answer is late
        await asyncio.sleep(poll)
    raise UserError(
        f"order {reference} was not running after {wait:.0f} s "
        f"(draft {draft.get('state', 'unknown')}); see `watcher orders` or the dashboard"
    )


async def buy_from_credit(
    api: Api, reference: str, only_credit: bool, tries: int = 5, pause: float = 1.0
) -> None:
    """Place the draft with the signed-in wallet's credit. An unanswered request may have
    placed it: it is asked again (the draft's reference makes that safe), and "already
    paid" after an unanswered try means it did. A refusal says what to do instead."""
    unanswered: Unreachable | None = None
    for attempt in range(tries):
        try:
            await api.call("POST", f"/api/drafts/{reference}/buy-from-credit")
            return
        except Unreachable as exc:
            unanswered = exc
            await asyncio.sleep(min(pause * 2.0**attempt, 10.0))
        except UserError as exc:
            if unanswered is not None and "already paid" in str(exc):
                return  # the unanswered request placed it
            if only_credit and "answered 402" in str(exc):
                raise UserError(f"{exc}; run without --from-credit to pay the rest") from None
            raise
    raise UserError(
        f"{unanswered}; draft {reference} may have been bought from your credit: check it "
        "(GET /api/drafts/REF, `watcher orders`) before buying again"
    )
