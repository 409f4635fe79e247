"""Driving the pages in headless Chromium (Debian's package, through Playwright): the
injected EIP-1193 wallet that forwards to the Hardhat node's unlocked dev accounts, a
running `watcher run` with its web API, screenshots at desktop and phone width."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def ensure_chromium() -> str:
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


@contextlib.contextmanager
def running_shop(
    devchain: DevChain,
    w3: Web3,
    aws_url: str,
    ami: str,
    tmp_path: Path,
    extra_env: dict[str, str] | None = None,
    checkout: bool = False,
    plans: str | None = None,
) -> Iterator[tuple[str, Any]]:
    """`watcher run` on a fresh CTK (with a Checkout for it, when `checkout`), serving its
    pages; the buyer holds 100 CTK. Yields the pages' URL and the token contract. `plans`
    replaces the two instance plans of watcher.toml."""
    driver = DevChainDriver(w3)
    ctk = driver.token()
    driver.fund(ctk, BUYER, 100)
    if checkout:
        extra_env = {
            **(extra_env or {}),
            "WATCHER_CHECKOUT_ADDRESS": driver.deploy("Checkout", ctk.address).address,
        }
    http_port = free_port()
    (tmp_path / "watcher.toml").write_text(
        plans
        or f'[plans."t3.micro"]\nprice = "10"\nami = "{ami}"\n[plans."t3.large"]\nprice = "25"\ninstance_type = "t3.large"\nami = "{ami}"\n'
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
    """The page as it is, at desktop and at phone width (390 px), where nothing may make
    it scroll sideways."""
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size(DESKTOP)
    assert width <= PHONE["width"], f"{name} is {width} px wide at 390 px"


def api_orders(url: str, payer: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/orders?payer={payer}", timeout=10) as answer:
        orders: list[dict[str, Any]] = json.load(answer)
    return orders
