"""The checkout and dashboard pages in headless Chromium (Debian's package, driven by
Playwright), with an EIP-1193 provider injected that forwards to the Hardhat node's
unlocked dev account: pay, watch the order reach running, and the messages a user meets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from tests.browserhelpers import (
    BROKE,
    BROWSER_ARGS,
    BUYER,
    HOLDING_PROMPT,
    SHOTS,
    api_orders,
    page_with,
    running_shop,
    screenshots,
    wallet,
)
from watcher.dev.devchain import DevChain


@pytest.fixture
def shop(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> Iterator[tuple[str, Any]]:
    """`watcher run` with its web API, a fresh CTK, and a buyer holding 100 CTK."""
    moto.reset()
    with running_shop(devchain, w3, moto.url, moto_ami, tmp_path) as (url, ctk):
        yield url, ctk


def test_checkout_pays_and_follows_the_order_to_running(
    chromium: str, shop: tuple[str, Any], w3: Web3
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, ctk = shop
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = page_with(browser, wallet(w3, BUYER.address))
            page.goto(url)
            expect(page.locator(".plan")).to_have_count(2)
            page.click("#connect")
            expect(page.locator("#balance")).to_have_text("100 CTK")
            page.click(".plan[data-plan='t3.large']")  # listed, but not for wallet payments yet
            expect(page.locator(".plan.selected")).to_have_attribute("data-plan", "t3.micro")
            page.fill("#quantity", "2")
            expect(page.locator("#total")).to_have_text("20")
            page.click("#pay")
            expect(page.locator("#banner")).to_contain_text("running", timeout=30_000)
            expect(page.locator("#orders tr")).to_have_count(2)
            expect(page.locator("#orders .badge.running")).to_have_count(2)
            expect(page.locator("#balance")).to_have_text("80 CTK")
            page.screenshot(path=str(SHOTS / "checkout.png"), full_page=True)
            assert ctk.functions.balanceOf(BUYER.address).call() == 80 * 10**18

            page.goto(f"{url}/wallet/{BUYER.address}")
            expect(page.locator("#count")).to_have_text("2")
            expect(page.locator("#balance")).to_have_text("80 CTK")
            expect(page.locator("#orders .badge.running")).to_have_count(2)
            page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-wallet", "No wallet found. Install MetaMask"),
        (
            "too-little",
            "Not enough CTK: your wallet holds 0 CTK and this costs 10 CTK. Nothing was sent.",
        ),
        (
            "wrong-network",
            "Wrong network: your wallet is on chain 1. Switch it to chain 1337 to pay.",
        ),
        ("rejected", "You rejected the payment in your wallet. Nothing was sent."),
    ],
)
def test_messages_a_user_can_meet(
    chromium: str, shop: tuple[str, Any], w3: Web3, case: str, message: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, ctk = shop
    handler = {
        "no-wallet": None,
        "too-little": wallet(w3, BROKE.address),
        "wrong-network": wallet(w3, BUYER.address, chain_id="0x1"),
        "rejected": wallet(w3, BUYER.address, reject=True),
    }[case]
    before = w3.eth.block_number
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = page_with(browser, handler)
            page.goto(url)
            page.click("#connect")
            if case in ("too-little", "rejected"):
                expect(page.locator("#pay")).to_be_enabled()
                page.click("#pay")
            expect(page.locator("#banner")).to_have_text(
                message
            ) if case != "no-wallet" else expect(page.locator("#banner")).to_contain_text(message)
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / f"message-{case}.png"))
        finally:
            browser.close()
    assert w3.eth.block_number == before  # nothing was sent
    assert ctk.functions.balanceOf(BUYER.address).call() == 100 * 10**18


def test_a_double_click_on_pay_pays_once(chromium: str, shop: tuple[str, Any], w3: Web3) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, ctk = shop
    sent: list[Any] = []
    answer = wallet(w3, BUYER.address)

    def counting(method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_sendTransaction":
            sent.append(params)
        return answer(method, params)  # type: ignore[no-any-return]

    nonce = w3.eth.get_transaction_count(BUYER.address)
    start = w3.eth.block_number
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = page_with(browser, counting)
            page.add_init_script(HOLDING_PROMPT)
            page.goto(url)
            page.click("#connect")
            expect(page.locator("#balance")).to_have_text("100 CTK")
            box = page.locator("#pay").bounding_box()
            assert box is not None
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

            page.mouse.click(x, y)
            page.wait_for_function("window.__held.length === 1")  # the wallet prompt is open
            expect(page.locator("#pay")).to_be_disabled()
            expect(page.locator("#pay")).to_have_text("Waiting for your wallet…")
            expect(page.locator("#banner")).to_have_text(
                "Confirm the payment of 10 CTK in your wallet. Nothing is sent until you confirm there."
            )
            time.sleep(0.3)  # an impatient second click, 0.3 s later
            page.mouse.click(x, y)
            page.mouse.dblclick(x, y)
            # And past the disabled attribute (a script, an old browser): the code refuses too.
            page.evaluate(
                "() => { const b = document.getElementById('pay'); b.disabled = false; b.click(); b.click(); }"
            )
            screenshots(page, "pay-waiting-for-wallet")
            assert page.evaluate("window.__held.length") == 1

            page.evaluate("window.__answer()")  # the user confirms in the wallet
            expect(page.locator("#pay")).to_be_enabled()
            expect(page.locator("#pay")).to_have_text("Pay with CTK")
            expect(page.locator("#payments .payment")).to_have_count(1)
            expect(page.locator("#banner")).to_contain_text("running", timeout=30_000)
            expect(page.locator("#payments .payment")).to_contain_text("recorded: 1 order.")
            expect(page.locator("#orders tr[data-order]")).to_have_count(1)
            screenshots(page, "pay-once-running")
        finally:
            browser.close()
    assert len(sent) == 1
    assert w3.eth.get_transaction_count(BUYER.address) == nonce + 1
    transfers = ctk.events.Transfer().get_logs(
        from_block=start, argument_filters={"from": BUYER.address}
    )
    assert len(transfers) == 1 and transfers[0]["args"]["value"] == 10 * 10**18
    assert ctk.functions.balanceOf(BUYER.address).call() == 90 * 10**18
    assert len(api_orders(url, BUYER.address)) == 1


@contextlib.contextmanager
def fault_proxy(target: str, on_run_instances: Any) -> Iterator[Any]:
    """tests.cloudhelpers.FaultProxy (asyncio) on a loop of its own thread, for sync tests."""
    from tests.cloudhelpers import FaultProxy

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
    thread.start()
    proxy = asyncio.run_coroutine_threadsafe(
        FaultProxy(target, on_run_instances=on_run_instances).start(), loop
    ).result(30)
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def age_pending_jobs(database_url: str, minutes: int) -> None:
    """Move the pending jobs' creation back, as if their orders had waited that long (the
    ledger's own types write the timestamps; run on a thread: Playwright owns this one)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select, update

    from watcher.adapters.ledger.database import create_engine
    from watcher.adapters.ledger.schema import JobRecord, OrderRecord

    async def move() -> None:
        engine = create_engine(database_url)
        then = datetime.now(UTC) - timedelta(minutes=minutes)
        pending = JobRecord.state.in_(["queued", "claimed"])
        try:
            async with engine.begin() as conn:
                await conn.execute(update(JobRecord).where(pending).values(created_at=then))
                # Orders waiting: those with a pending launch job, and queued ones whose
                # job no worker has claimed yet (a queued order is its own job).
                waiting = select(JobRecord.order_id).where(pending)
                await conn.execute(
                    update(OrderRecord)
                    .where(OrderRecord.order_id.in_(waiting) | (OrderRecord.state == "queued"))
                    .values(created_at=then, paid_at=then)
                )
        finally:
            await engine.dispose()

    worker = threading.Thread(target=asyncio.run, args=(move(),))
    worker.start()
    worker.join(60)


def test_pages_say_what_happens_to_failed_retrying_and_stuck_orders(
    chromium: str, devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    moto.reset()
    # EC2's first launch answers "no capacity" (with one capacity attempt allowed, the order
    # fails and is refunded); every later one "503 Service unavailable" (retried for ever).
    with (
        fault_proxy(moto.url, lambda n: "capacity" if n == 1 else "error503") as proxy,
        running_shop(
            devchain, w3, proxy.url, moto_ami, tmp_path, {"WATCHER_CAPACITY_ATTEMPTS": "1"}
        ) as (url, _ctk),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = page_with(browser, wallet(w3, BUYER.address))
            page.goto(url)
            page.click("#connect")
            expect(page.locator("#balance")).to_have_text("100 CTK")
            page.click("#pay")
            failed = page.locator("#orders tr.note.bad")
            expect(failed).to_contain_text(
                # The API's classified reason, not AWS's own message (which may name the
                # operator's account): the plain words first, the code after them.
                "This instance could not be launched: no capacity for this instance type right "
                "now (InsufficientInstanceCapacity). Its price, 10 CTK, is back in your "
                "credit and counts toward your next payment.",
                timeout=30_000,
            )
            expect(page.locator("#orders .badge.failed")).to_have_text("failed · refunded")
            expect(page.locator("#banner")).to_contain_text("back in your credit")
            screenshots(page, "checkout-failed-refunded")

            page.click("#pay")  # again: this one's launches fail, and are retried
            retrying = page.locator("#orders tr.note.warn").first
            expect(retrying).to_contain_text(
                "failed: the cloud service is unavailable (Unavailable). The watcher tries again",
                timeout=30_000,
            )
            expect(retrying).to_contain_text(
                "by itself; your payment is safe and you do not need to do anything."
            )
            expect(page.locator("#orders .badge.retrying").first).to_be_visible()
            expect(page.locator("#banner")).to_have_text(
                "Your payment is recorded. Launching failed for now and is retried "
                "automatically; see below."
            )
            screenshots(page, "checkout-retrying")

            page.goto(f"{url}/wallet/{BUYER.address}")
            expect(page.locator("#orders .badge.failed")).to_have_count(1)
            expect(page.locator("#orders .badge.retrying").first).to_be_visible()
            expect(page.locator("#banner")).to_contain_text("failed for now and is retried")
            screenshots(page, "dashboard-retrying")

            age_pending_jobs(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}", minutes=25)
            stuck = page.locator("#orders tr.note.bad", has_text="taking much longer")
            expect(stuck.first).to_contain_text("it has waited 25 minutes.")
            expect(stuck.first).to_contain_text(
                "Your payment is recorded and nothing is lost: the order goes ahead as soon as "
                "launching works again."
            )
            expect(page.locator("#orders .badge.stuck").first).to_be_visible()
            expect(page.locator("#banner")).to_contain_text("stuck")
            screenshots(page, "dashboard-stuck")
        finally:
            browser.close()
        with pytest.raises(urllib.error.HTTPError) as degraded:
            urllib.request.urlopen(f"{url}/api/health", timeout=10)
        assert degraded.value.code == 503
        assert json.load(degraded.value)["status"] == "degraded"


def test_api_docs_render_without_internet(chromium: str, shop: tuple[str, Any]) -> None:
    from urllib.parse import urlsplit

    from playwright.sync_api import expect, sync_playwright

    url, _ctk = shop
    outside: list[str] = []

    def local_only(route: Any) -> None:
        # The machine has no internet anyway; this also catches a page that would try.
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = page_with(browser, None)
            page.route("**/*", local_only)
            page.goto(f"{url}/docs")
            expect(page.locator(".opblock").first).to_be_visible()
            orders = page.locator('.opblock-summary-path[data-path="/api/orders"]')
            expect(orders).to_be_visible()
            access = '.opblock-summary-path[data-path="/api/orders/{order_id}/access"]'
            expect(page.locator(access)).to_be_visible()
            screenshots(page, "docs")
        finally:
            browser.close()
    assert outside == []
