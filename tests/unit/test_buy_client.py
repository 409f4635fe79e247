"""`watcher buy`'s client side against a stand-in API over real HTTP (issue 10): it refuses
to sign for another chain or, off loopback, another site's domain; while waiting it asks
again through API errors, stops on a payment the watcher credited, and never mistakes a
reorg's note for a final answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.chain.signer import Signer
from watcher.domain.errors import UserError
from watcher.interfaces.buy import Api, buy_from_credit, wait_for
from watcher.shared.net import free_port

REF = "0x" + "ab" * 32
ORDER = "c" * 32


async def serve(routes: list[web.RouteDef], host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, host, port).start()
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def nonce(chain_id: int, domain: str) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "nonce": "a1b2c3d4e5f6",
                "domain": domain,
                "uri": f"http://{domain}/",
                "chain_id": chain_id,
            }
        )

    return handler


async def test_sign_in_refuses_another_chain_or_another_sites_domain(
    http: aiohttp.ClientSession,
) -> None:
    signer = Signer(dev_account(1), "dev account 1")
    runner, base = await serve([web.post("/api/auth/nonce", nonce(1, "127.0.0.1"))])
    try:
        with pytest.raises(UserError, match="follows chain 1, not chain 1337"):
            await Api(http, base).sign_in(signer, 1337)
    finally:
        await runner.cleanup()
    # Off the loopback names, the domain to sign must be the API's own: a stand-in on
    # 127.0.0.2 (loopback, but not a name the client trusts) asks for another site's.
    runner, base = await serve(
        [web.post("/api/auth/nonce", nonce(1337, "evil.example"))], "127.0.0.2"
    )
    try:
        with pytest.raises(UserError, match=r"asks to sign in to 'evil\.example'"):
            await Api(http, base).sign_in(signer, 1337)
    finally:
        await runner.cleanup()


async def test_waiting_asks_again_through_errors_and_waits_out_a_reorg_note(
    http: aiohttp.ClientSession,
) -> None:
    answers = iter(
        [
            web.Response(status=502, text="<html>bad gateway</html>"),
            web.json_response(
                {
                    "state": "open",
                    "order_id": None,
                    "note": "the payment that placed it was undone by a reorg",
                }
            ),
            web.json_response({"state": "placed", "order_id": ORDER, "note": None}),
        ]
    )

    async def draft(request: web.Request) -> web.StreamResponse:
        return next(answers, web.json_response({"state": "placed", "order_id": ORDER}))

    async def access(request: web.Request) -> web.Response:
        return web.json_response(
            {"state": "running", "ssh_command": "ssh ec2-user@198.51.100.2", "next_step": "log in"}
        )

    runner, base = await serve(
        [web.get(f"/api/drafts/{REF}", draft), web.get(f"/api/orders/{ORDER}/access", access)]
    )
    try:
        placed, reached = await wait_for(Api(http, base), REF, wait=20, poll=0.01)
    finally:
        await runner.cleanup()
    assert placed["order_id"] == ORDER and reached["ssh_command"].startswith("ssh ")


async def test_waiting_stops_on_a_credited_payment(http: aiohttp.ClientSession) -> None:
    async def draft(request: web.Request) -> web.Response:
        note = "5 CTK is short of the quoted 20 CTK: credited to the payer"
        return web.json_response({"state": "open", "order_id": None, "note": note})

    runner, base = await serve([web.get(f"/api/drafts/{REF}", draft)])
    try:
        with pytest.raises(UserError, match="did not place the order: 5 CTK is short"):
            await wait_for(Api(http, base), REF, wait=20, poll=0.01)
    finally:
        await runner.cleanup()


async def test_buying_from_credit_asks_again_after_no_answer(http: aiohttp.ClientSession) -> None:
    """The first request placed the order but its answer was lost (a proxy's 502): asked
    again, "already paid" means done. Never an answer: the error says to check first."""
    answers = iter(
        [
            web.Response(status=502, text="<html>bad gateway</html>"),
            web.json_response(
                {"detail": f"draft {REF} is already paid: order {ORDER}"}, status=409
            ),
        ]
    )

    async def buy(request: web.Request) -> web.Response:
        return next(answers)

    runner, base = await serve([web.post(f"/api/drafts/{REF}/buy-from-credit", buy)])
    try:
        await buy_from_credit(Api(http, base), REF, only_credit=True, pause=0.01)
    finally:
        await runner.cleanup()

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=503, text="<html>down</html>")

    runner, base = await serve([web.post(f"/api/drafts/{REF}/buy-from-credit", down)])
    try:
        with pytest.raises(UserError, match="may have been bought from your credit: check it"):
            await buy_from_credit(Api(http, base), REF, only_credit=True, tries=3, pause=0.01)
    finally:
        await runner.cleanup()
    # A plain refusal stays one: "already paid" with no unanswered try before it.
    refusal = web.json_response({"detail": "draft is already paid: order x"}, status=409)

    async def paid(request: web.Request) -> web.Response:
        return refusal

    runner, base = await serve([web.post(f"/api/drafts/{REF}/buy-from-credit", paid)])
    try:
        with pytest.raises(UserError, match="answered 409"):
            await buy_from_credit(Api(http, base), REF, only_credit=True, pause=0.01)
    finally:
        await runner.cleanup()
