"""The checkout with the Checkout contract (issue 10), in headless Chromium with the injected
EIP-1193 wallet on the Hardhat node: sign in with the wallet, buy a non-default plan for 2
hours with an SSH key (credit applied first, the rest through Checkout.payWithPermit in one
transaction), see the receipt with the address and the ssh command; the dashboard shows
access to the owner only; a double click pays once; a buyer with enough credit buys without
a transaction. Screenshots of checkout, receipt and dashboard at 1280 and 390 px go to
test-output/."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from web3 import Web3

from tests.browserhelpers import (
    BROWSER_ARGS,
    BUYER,
    HOLDING_PROMPT,
    SHOTS,
    page_with,
    running_shop,
    screenshots,
    wallet,
)
from tests.chainhelpers import DevChainDriver
from tests.cloudhelpers import ec2_client
from tests.keyhelpers import new_ssh_key
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.dev.devchain import DevChain

CTK = 10**18
OTHER = dev_account(19)
KEY = new_ssh_key("buyer@laptop")
ORDER_PAID = "OrderPaid(bytes32,address,uint256)"


@pytest.fixture
def checkout_shop(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> Iterator[tuple[str, Any]]:
    moto.reset()
    with running_shop(devchain, w3, moto.url, moto_ami, tmp_path, checkout=True) as shop:
        yield shop


def info(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/api/payment-info", timeout=10) as answer:
        found: dict[str, Any] = json.load(answer)
    return found


def credit_of(url: str, payer: str) -> int:
    with urllib.request.urlopen(f"{url}/api/credit/{payer}", timeout=10) as answer:
        return int(json.load(answer)["balance"])


def fill_order(page: Any, plan: str, hours: str, name: str | None = None) -> None:
    page.click(f".plan[data-plan='{plan}']")
    page.fill("#periods", hours)
    page.fill("#ssh-key", KEY)
    if name is not None:
        page.fill("#name", name)


def test_sign_in_buy_two_hours_of_a_non_default_plan_and_reach_it(
    chromium: str, checkout_shop: tuple[str, Any], w3: Web3, moto: Any
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, ctk = checkout_shop
    checkout = info(url)["checkout_address"]
    driver = DevChainDriver(w3)
    # 5 CTK paid earlier by a plain transfer: credit, applied first at the checkout.
    driver.pay(ctk, BUYER, 5 * CTK)
    deadline = time.monotonic() + 30
    while credit_of(url, BUYER.address) != 5 * CTK:
        assert time.monotonic() < deadline, "the plain payment was not credited"
        time.sleep(0.2)
    start = w3.eth.block_number
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = page_with(browser, wallet(w3, BUYER.address))
            page.goto(url)
            expect(page.locator(".plan")).to_have_count(2)
            expect(page.locator(".plan[data-plan='t3.large']")).to_contain_text("25 CTK / hour")
            expect(page.locator(".plan[data-plan='t3.large']")).to_contain_text(
                "t3.large · 2 vCPU · 8 GiB memory"
            )
            expect(page.locator("#pay")).to_have_text("Sign in to pay")
            page.click("#connect")
            expect(page.locator("#account")).to_have_text(BUYER.address)
            expect(page.locator("#credit")).to_have_text("5 CTK")
            expect(page.locator("#balance")).to_have_text("95 CTK")

            # No silent clamping: each bad value gets its message, and nothing is sent.
            fill_order(page, "t3.large", "150", "build box")
            expect(page.locator("#periods-error")).to_have_text(
                "At most 100 hours in one order; 150 is too many."
            )
            page.fill("#periods", "2.5")
            expect(page.locator("#periods-error")).to_have_text(
                "Whole hours only: 2.5 is not a whole number."
            )
            page.fill("#ssh-key", "ssh-dss AAAAB3NzaC1kc3MAAACB")
            page.fill("#periods", "2")
            page.click("#pay")
            expect(page.locator("#ssh-key-error")).to_contain_text(
                "This is not an OpenSSH public key"
            )
            expect(page.locator("#banner")).to_have_text(
                "Check the order: see the messages under the fields. Nothing was sent."
            )
            assert w3.eth.block_number == start
            page.fill("#ssh-key", KEY)
            expect(page.locator("#summary")).to_contain_text("t3.large · 2 hours × 25 CTK")
            expect(page.locator("#summary")).to_contain_text("Your credit, applied first")
            expect(page.locator("#due")).to_have_text("45 CTK")
            expect(page.locator("#ssh-key-error")).to_be_empty()
            expect(page.locator("#banner")).not_to_be_visible()
            expect(page.locator("#pay")).to_have_text("Pay 45 CTK")
            screenshots(page, "checkout-order")

            page.click("#pay")
            receipt = page.locator("#receipt")
            expect(receipt.locator("[data-ssh]")).to_be_visible(timeout=60_000)
            expect(receipt).to_contain_text("Your server is running.")
            expect(receipt).to_contain_text("t3.large · 2 hours · “build box”")
            expect(receipt).to_contain_text("45 CTK in")
            expect(receipt).to_contain_text("plus 5 CTK of your credit")
            ssh = receipt.locator("[data-ssh]").inner_text()
            ip = receipt.locator(".access .kv").inner_text()
            assert ssh.startswith("ssh ec2-user@"), ssh
            screenshots(page, "checkout-receipt")
            expect(page.locator("#orders .badge.running")).to_have_count(1)
            expect(page.locator("#credit")).to_have_text("0 CTK")

            # A reload keeps the session and the orders.
            page.reload()
            expect(page.locator("#account")).to_have_text(BUYER.address)
            expect(page.locator("#orders .badge.running")).to_have_count(1)

            page.goto(f"{url}/wallet/{BUYER.address}")
            access = page.locator("#access .access")
            expect(access).to_have_count(1)
            expect(access.locator("[data-ssh]")).to_have_text(ssh)
            expect(access).to_contain_text("us-east-1")
            # moto's console output has no cloud-init block: the page says what to expect.
            expect(access.locator("[data-host-keys]")).to_contain_text("not shown by the cloud yet")
            expect(access).to_contain_text("2 vCPU · 8 GiB memory · 2 hours")
            screenshots(page, "dashboard-owner")
            order_id = page.locator("#orders tr[data-order]").first.get_attribute("data-order")

            # Another wallet, signed in: the orders (public, as the chain is), no access.
            other = page_with(browser, wallet(w3, OTHER.address))
            other.goto(url)
            other.click("#connect")
            expect(other.locator("#account")).to_have_text(OTHER.address)
            other.goto(f"{url}/wallet/{BUYER.address}")
            expect(other.locator("#orders .badge.running")).to_have_count(1)
            expect(other.locator("#access-state")).to_contain_text("Sign in to see access details")
            expect(other.locator("#access-state")).to_contain_text(
                f"You are signed in as {OTHER.address}, another wallet."
            )
            expect(other.locator("#access .access")).to_have_count(0)
            status = other.evaluate(
                "async (id) => (await fetch(`/api/orders/${id}/access`)).status", order_id
            )
            assert status == 403
            screenshots(other, "dashboard-other-wallet")

            # Signed out: a prompt to sign in, no access.
            anyone = browser.new_page(viewport={"width": 390, "height": 844})
            anyone.goto(f"{url}/wallet/{BUYER.address}")
            expect(anyone.locator("#access-state")).to_contain_text("Sign in to see access details")
            anyone.goto(f"{url}/wallet/0xnot-an-address")
            expect(anyone.locator("h1")).to_have_text("Not a wallet address")
            anyone.screenshot(path=str(SHOTS / "bad-address-390.png"))
            assert anyone.evaluate("document.documentElement.scrollWidth") <= 390
        finally:
            browser.close()
    # One transaction: the permit rode along; the CTK went to the burn address and the
    # same transaction named the order.
    sent = [
        w3.eth.get_transaction_by_block(n, i)
        for n in range(start + 1, w3.eth.block_number + 1)
        for i in range(w3.eth.get_block_transaction_count(n))
    ]
    mine = [t for t in sent if t["from"] == BUYER.address]
    assert len(mine) == 1 and mine[0]["to"] == checkout
    logs = w3.eth.get_transaction_receipt(mine[0]["hash"])["logs"]
    assert Web3.keccak(text=ORDER_PAID) in [log["topics"][0] for log in logs]
    assert ctk.functions.balanceOf(BUYER.address).call() == 50 * CTK
    # The instance: the plan's type, the buyer's key.
    ec2 = ec2_client(moto.url)
    (reservation,) = ec2.describe_instances()["Reservations"]
    (instance,) = reservation["Instances"]
    assert instance["InstanceType"] == "t3.large"
    data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    document = base64.b64decode(data["UserData"]["Value"]).decode()
    assert yaml.safe_load(document) == {"ssh_authorized_keys": [" ".join(KEY.split()[:2])]}
    assert instance["PublicIpAddress"] in ip


def test_a_double_click_on_pay_sends_one_transaction(
    chromium: str, checkout_shop: tuple[str, Any], w3: Web3
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, ctk = checkout_shop
    sent: list[Any] = []
    answer = wallet(w3, BUYER.address)

    def counting(method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_sendTransaction":
            sent.append(params)
        return answer(method, params)  # type: ignore[no-any-return]

    nonce = w3.eth.get_transaction_count(BUYER.address)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = page_with(browser, counting)
            page.add_init_script(HOLDING_PROMPT)
            page.goto(url)
            page.click("#connect")
            expect(page.locator("#balance")).to_have_text("100 CTK")
            fill_order(page, "t3.micro", "1")
            expect(page.locator("#pay")).to_have_text("Pay 10 CTK")
            page.locator("#pay").scroll_into_view_if_needed()
            box = page.locator("#pay").bounding_box()  # in the viewport, once scrolled to
            assert box is not None
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.dblclick(x, y)
            page.wait_for_function("window.__held.length === 1", timeout=30_000)
            expect(page.locator("#pay")).to_be_disabled()
            expect(page.locator("#pay")).to_have_text("Waiting for your wallet…")
            page.mouse.click(x, y)
            page.keyboard.press("Enter")  # a submit from the keyboard
            page.evaluate(
                "() => { const b = document.getElementById('pay'); b.disabled = false; "
                "b.click(); b.click(); }"
            )
            screenshots(page, "checkout-waiting-for-wallet")
            assert page.evaluate("window.__held.length") == 1
            page.evaluate("window.__answer()")
            expect(page.locator("#receipt [data-ssh]")).to_be_visible(timeout=60_000)
            expect(page.locator("#pay")).to_be_enabled()
        finally:
            browser.close()
    assert len(sent) == 1
    assert w3.eth.get_transaction_count(BUYER.address) == nonce + 1
    assert ctk.functions.balanceOf(BUYER.address).call() == 90 * CTK
    drafts_paid = ctk.events.Transfer().get_logs(
        from_block=0, argument_filters={"from": BUYER.address}
    )
    assert len(drafts_paid) == 1


def test_credit_that_covers_the_order_buys_it_without_a_transaction(
    chromium: str, checkout_shop: tuple[str, Any], w3: Web3
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, ctk = checkout_shop
    DevChainDriver(w3).pay(ctk, BUYER, 12 * CTK)
    deadline = time.monotonic() + 30
    while credit_of(url, BUYER.address) != 12 * CTK:
        assert time.monotonic() < deadline, "the plain payment was not credited"
        time.sleep(0.2)
    nonce = w3.eth.get_transaction_count(BUYER.address)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = page_with(browser, wallet(w3, BUYER.address))
            page.goto(url)
            page.click("#connect")
            expect(page.locator("#credit")).to_have_text("12 CTK")
            fill_order(page, "t3.micro", "1")
            expect(page.locator("#pay")).to_have_text("Buy with 10 CTK of credit")
            page.click("#pay")
            receipt = page.locator("#receipt")
            expect(receipt.locator("[data-ssh]")).to_be_visible(timeout=60_000)
            expect(receipt).to_contain_text("10 CTK from your credit (no transaction)")
            expect(page.locator("#credit")).to_have_text("2 CTK")
            screenshots(page, "checkout-receipt-from-credit")
        finally:
            browser.close()
    assert w3.eth.get_transaction_count(BUYER.address) == nonce


@pytest.fixture
def lease_shop(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> Iterator[tuple[str, Any]]:
    moto.reset()
    with running_shop(
        devchain, w3, moto.url, moto_ami, tmp_path, {"WATCHER_LEASES": "true"}, checkout=True
    ) as shop:
        yield shop


def test_the_owner_extends_renews_and_cancels_a_lease_on_the_dashboard(
    chromium: str, lease_shop: tuple[str, Any], w3: Web3, moto: Any
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, ctk = lease_shop
    DevChainDriver(w3).pay(ctk, BUYER, 20 * CTK)  # credit (no vending beside a Checkout)
    deadline = time.monotonic() + 30
    while credit_of(url, BUYER.address) != 20 * CTK:
        assert time.monotonic() < deadline, "the plain payment was not credited"
        time.sleep(0.2)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = page_with(browser, wallet(w3, BUYER.address))
            page.on("dialog", lambda dialog: dialog.accept())
            page.goto(url)
            expect(page.locator("#hours-help")).to_contain_text("your server is stopped")
            page.click("#connect")
            fill_order(page, "t3.micro", "1")
            page.click("#pay")  # 10 of the 20 CTK of credit
            expect(page.locator("#receipt [data-ssh]")).to_be_visible(timeout=60_000)

            page.goto(f"{url}/wallet/{BUYER.address}")
            lease = page.locator(".lease")
            expect(lease).to_have_count(1)
            expect(lease).to_contain_text("min left")
            expect(lease).to_contain_text("Your credit, 10 CTK, pays for 1 hour.")
            lease.locator("[data-periods]").fill("2.5")
            lease.locator("[data-extend]").click()
            expect(lease.locator("[data-lease-error]")).to_have_text(
                "Enter whole hours from 1 to 100, not “2.5”."
            )
            lease.locator("[data-periods]").fill("1")
            lease.locator("[data-extend]").click()
            expect(page.locator("#banner")).to_contain_text("10 CTK from your credit.")
            expect(page.locator("#credit")).to_have_text("0 CTK")
            page.locator(".lease [data-renew]").check()
            expect(page.locator("#banner")).to_contain_text("Auto-renew is on")
            expect(page.locator(".lease")).to_contain_text("Renewed from your credit")
            screenshots(page, "dashboard-lease")

            page.locator(".lease [data-cancel]").click()  # the dialog names the refund
            expect(page.locator("#banner")).to_contain_text(
                "Cancelled: the server is being removed; 10 CTK back to your credit."
            )
            expect(page.locator("#credit")).to_have_text("10 CTK")
            expect(page.locator("#orders .badge")).to_contain_text("cancelled", timeout=30_000)
            screenshots(page, "dashboard-cancelled")
        finally:
            browser.close()
    (reservation,) = ec2_client(moto.url).describe_instances()["Reservations"]
    assert reservation["Instances"][0]["State"]["Name"] == "terminated"
