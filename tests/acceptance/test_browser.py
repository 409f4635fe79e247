"""The checkout and dashboard pages in headless Chromium (Debian's package, driven by
Playwright), with an EIP-1193 provider injected that forwards to the Hardhat node's
unlocked dev account: pay, watch the order reach running, and the messages a user meets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from tests.chainhelpers import DevChainDriver
from tests.cloudhelpers import AWS_ENV
from tests.conftest import ROOT
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.dev.devchain import DevChain
from watcher.shared.net import free_port

WATCHER = str(Path(sys.executable).parent / "watcher")
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-output"
BUYER, BROKE = dev_account(17), dev_account(18)

# window.ethereum, as a wallet extension would inject it; requests go to Python.
PROVIDER = """
window.ethereum = {
  isMetaMask: true,
  async request({ method, params }) {
    const answer = await window.__wallet(method, params || []);
    if (answer.error) { const e = new Error(answer.error.message); e.code = answer.error.code; throw e; }
    return answer.result;
  },
  on() {}, removeListener() {},
};
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        subprocess.run(
            ["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=300, env=env
        )
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
            check=True,
            capture_output=True,
            timeout=900,
            env=env,
        )
    return CHROMIUM


@pytest.fixture
def shop(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> Iterator[tuple[str, Any]]:
    """`watcher run` with its web API, a fresh CTK, and a buyer holding 100 CTK."""
    moto.reset()
    with running_shop(devchain, w3, moto.url, moto_ami, tmp_path) as (url, ctk):
        yield url, ctk


@contextlib.contextmanager
def running_shop(
    devchain: DevChain,
    w3: Web3,
    aws_url: str,
    ami: str,
    tmp_path: Path,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[str, Any]]:
    driver = DevChainDriver(w3)
    ctk = driver.token()
    driver.fund(ctk, BUYER, 100)
    http_port = free_port()
    (tmp_path / "watcher.toml").write_text(
        f'[plans."t3.micro"]\nprice = "10"\nami = "{ami}"\n[plans."t3.large"]\nprice = "25"\ninstance_type = "t3.large"\nami = "{ami}"\n'
    )
    env = {
        **os.environ,
        **AWS_ENV,
        "WATCHER_RPC_URL": devchain.url,
        "WATCHER_WS_URL": devchain.ws_url,
        "WATCHER_TOKEN_ADDRESS": ctk.address,
        "WATCHER_CONFIRMATIONS": "0",
        "WATCHER_START_BLOCK": str(driver.head),
        "WATCHER_AWS_ENDPOINT_URL": aws_url,
        "WATCHER_AWS_REGION": "us-east-1",
        "WATCHER_HTTP_PORT": str(http_port),
        "WATCHER_METRICS_PORT": "0",
        "WATCHER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}",
        **(extra_env or {}),
    }
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(
        [WATCHER, "run"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log
    )
    deadline = time.monotonic() + 30
    while "watcher_started" not in (tmp_path / "run.log").read_text():
        assert run.poll() is None and time.monotonic() < deadline, (
            tmp_path / "run.log"
        ).read_text()
        time.sleep(0.1)
    while True:  # uvicorn binds just after the start-up line
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/health", timeout=1)
            break
        except urllib.error.HTTPError:  # up, and saying it is degraded
            break
        except OSError:
            assert run.poll() is None and time.monotonic() < deadline, (
                tmp_path / "run.log"
            ).read_text()
            time.sleep(0.1)
    # The start-up lines name the ledger file in use and where the pages are served.
    started = (tmp_path / "run.log").read_text()
    assert f"ledger={tmp_path / 'ledger.db'} " in started, started
    assert f"api_served url=http://127.0.0.1:{http_port}/\n" in started, started
    try:
        yield f"http://127.0.0.1:{http_port}", ctk
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(30)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-2000:]


def wallet(w3: Web3, account: str, chain_id: str | None = None, reject: bool = False) -> Any:
    def answer(method: str, params: list[Any]) -> dict[str, Any]:
        if method in ("eth_requestAccounts", "eth_accounts"):
            return {"result": [account]}
        if method == "eth_chainId" and chain_id is not None:
            return {"result": chain_id}
        if method == "eth_sendTransaction" and reject:
            return {"error": {"code": 4001, "message": "User rejected the request."}}
        reply = w3.provider.make_request(method, params)  # type: ignore[arg-type]
        return {"error": reply["error"]} if "error" in reply else {"result": reply["result"]}

    return answer


def page_with(browser: Any, handler: Any | None) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    if handler is not None:
        page.expose_function("__wallet", handler)
        page.add_init_script(PROVIDER)
    return page


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


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# A wallet whose confirmation prompt stays open until the test answers it, as a person
# reading MetaMask's prompt: every eth_sendTransaction waits for window.__answer().
HOLDING_PROMPT = """
(() => {
  const request = window.ethereum.request;
  window.__held = [];
  window.__answered = false;
  window.__answer = () => { window.__answered = true; window.__held.splice(0).forEach((go) => go()); };
  window.ethereum.request = async (args) => {
    if (args.method === "eth_sendTransaction" && !window.__answered) {
      await new Promise((go) => window.__held.push(go));
    }
    return request.call(window.ethereum, args);
  };
})();
"""


def screenshots(page: Any, name: str) -> None:
    """The page as it is, at desktop and at phone width (390 px)."""
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def api_orders(url: str, payer: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/orders?payer={payer}", timeout=10) as answer:
        orders: list[dict[str, Any]] = json.load(answer)
    return orders


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
