"""The checkout and the dashboard for a scaling pool and a bucket (issue 12), in headless
Chromium against `watcher run`, the Hardhat node and moto's server: each plan says what it
is; bought through the Checkout, the receipt and the dashboard show the pool's instances
with their ssh commands, its sizes and its alarm, and the bucket's use of its quota, an
upload form that puts a file in the bucket and a download link that reads it back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from tests.acceptance.test_checkout_page import fill_order
from tests.browserhelpers import (
    BROWSER_ARGS,
    BUYER,
    page_with,
    running_shop,
    screenshots,
    wallet,
)
from tests.cloudhelpers import aws_client, subnet_and_image
from watcher.dev.devchain import DevChain


@pytest.fixture
def kinds_shop(
    devchain: DevChain, w3: Web3, moto: Any, moto_ami: str, tmp_path: Path
) -> Iterator[tuple[str, Any]]:
    moto.reset()
    subnet, _ = subnet_and_image(moto.url)
    plans = (
        f'[plans."t3.micro"]\nprice = "10"\nami = "{moto_ami}"\n'
        f'[plans."pool"]\nprice = "20"\nkind = "scaling_pool"\ninstance_type = "t3.micro"\n'
        f'ami = "{moto_ami}"\nsubnet_id = "{subnet}"\nmin_size = 1\nmax_size = 3\n'
        '[plans."box"]\nprice = "5"\nkind = "s3_bucket"\nquota = "1MiB"\nexpire_days = 30\n'
    )
    with running_shop(
        devchain, w3, moto.url, moto_ami, tmp_path, {"WATCHER_LEASES": "true"},
        checkout=True, plans=plans,
    ) as shop:  # fmt: skip
        yield shop


def test_a_pool_and_a_bucket_bought_and_used_on_the_pages(
    chromium: str, kinds_shop: tuple[str, Any], w3: Web3, moto: Any
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _ = kinds_shop
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = page_with(browser, wallet(w3, BUYER.address))
            page.goto(url)
            pool_card = page.locator(".plan[data-plan='pool']")
            expect(pool_card).to_contain_text("pool of 1-3 t3.micro")
            expect(pool_card).to_contain_text("up to 3 (the price pays for all of them)")
            expect(page.locator(".plan[data-plan='box']")).to_contain_text(
                "A private bucket of 1 MiB"
            )
            page.click("#connect")

            fill_order(page, "pool", "1")
            expect(page.locator("#hours-help")).to_contain_text("your pool is scaled to zero")
            page.click("#pay")
            pool = page.locator("#receipt [data-kind='scaling_pool']")
            expect(pool.locator("[data-pool-members] .command")).to_have_count(1, timeout=60_000)
            expect(pool).to_contain_text("1 running · 1 wanted · at most 3")
            expect(page.locator("#receipt")).to_contain_text("Your pool is running.")
            screenshots(page, "checkout-receipt-pool")

            fill_order(page, "box", "1")
            expect(page.locator("#hours-help")).to_contain_text("your bucket is closed")
            page.click("#pay")
            box = page.locator("#receipt [data-kind='s3_bucket']")
            expect(box.locator("form[data-upload]")).to_be_visible(timeout=60_000)
            expect(box).to_contain_text("0 B of 1 MiB")
            expect(page.locator("#receipt")).to_contain_text("Your bucket is ready.")
            screenshots(page, "checkout-receipt-storage")

            page.goto(f"{url}/wallet/{BUYER.address}")
            pool = page.locator("#access [data-kind='scaling_pool']")
            expect(pool).to_contain_text("at most 3", timeout=30_000)
            expect(pool.locator("[data-alarm]")).not_to_be_empty()
            expect(pool.locator("[data-pool-members] code")).to_contain_text("ssh ec2-user@")
            box = page.locator("#access [data-kind='s3_bucket']")
            expect(box.locator("form[data-upload]")).to_be_visible()
            box.locator("input[type=file]").set_input_files(
                {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"results of run 1\n"}
            )
            box.locator("form[data-upload] button").click()
            expect(page.locator("#banner")).to_contain_text("Uploaded notes.txt", timeout=30_000)
            link = page.locator("#access [data-kind='s3_bucket'] .files a", has_text="notes.txt")
            expect(link).to_be_visible()
            expect(page.locator("#access [data-kind='s3_bucket'] [data-used]")).to_contain_text(
                "17 B of 1 MiB"
            )
            got = page.request.get(link.get_attribute("href") or "")
            assert got.status == 200 and got.body() == b"results of run 1\n"
            # A file larger than what is left is refused on the page, before it is sent.
            box.locator("input[type=file]").set_input_files(
                {
                    "name": "big.bin",
                    "mimeType": "application/octet-stream",
                    "buffer": b"x" * (2**20),
                }
            )
            box.locator("form[data-upload] button").click()
            expect(box.locator("[data-upload-error]")).to_contain_text(
                "big.bin is 1 MiB: only 1023 KiB is left"
            )
            screenshots(page, "dashboard-pool-and-storage")
            # The API signs a form only for a file named, capped at what is left.
            box_id = box.get_attribute("data-access")
            plain = page.request.get(f"{url}/api/orders/{box_id}/access").json()
            assert plain["storage"]["upload"] is None and plain["storage"]["open"] is True
            named = page.request.get(f"{url}/api/orders/{box_id}/access?upload=run2.csv").json()
            assert named["storage"]["upload"]["fields"]["key"] == "run2.csv"
            assert named["storage"]["upload"]["max_bytes"] == 2**20 - 17
            bad = page.request.get(f"{url}/api/orders/{box_id}/access?upload=%2Fetc")
            assert bad.status == 422
        finally:
            browser.close()
    s3 = aws_client(moto.url, "s3")
    (bucket,) = [
        b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("watcher-")
    ]
    assert s3.get_object(Bucket=bucket, Key="notes.txt")["Body"].read() == b"results of run 1\n"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["notes.txt"]
