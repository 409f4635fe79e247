"""Payment-to-launch latency (`make bench`): the time from the block that carries a payment
to the RunInstances call for its order, over N payments, with confirmations 0 and 2.

    python bench/latency_bench.py [--payments 100] [--block-time 1.0]

The dev chain mines a block every `--block-time` seconds (Hardhat interval mining), as a
real chain would; a recording proxy in front of moto's EC2 server timestamps each
RunInstances call and reads the order id from its tags; a block's time is when its receipt
first showed at the node (eth_blockNumber polled every 5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs

from aiohttp import ClientSession, web
from web3 import HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chainhelpers import CTK, DevChainDriver  # noqa: E402
from watcher.adapters.chain.dev_accounts import dev_account  # noqa: E402
from watcher.dev.devchain import DevChain, hardhat_project  # noqa: E402
from watcher.dev.moto import MotoServer  # noqa: E402
from watcher.shared.net import free_port  # noqa: E402

WATCHER = str(Path(sys.executable).parent / "watcher")
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


class Recorder:
    """Forwards to moto; notes when each RunInstances arrives, by OrderId tag."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.launches: dict[str, float] = {}
        # Round trips of the tag look-ups the worker makes before each launch (issue 8).
        self.lookups: list[float] = []
        self.port = free_port()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.session = ClientSession()

    async def stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        body = await request.read()
        lookup = b"Action=DescribeInstances" in body and b"tag%3AOrderId" in body
        if b"Action=RunInstances" in body:
            now = time.monotonic()
            form = parse_qs(body.decode())
            keys = {k: v[0] for k, v in form.items()}
            for name, value in keys.items():
                if name.endswith(".Key") and value == "OrderId":
                    self.launches.setdefault(keys[name[: -len("Key")] + "Value"], now)
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with self.session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            if lookup:
                self.lookups.append(time.monotonic() - started)
            return web.Response(
                status=answer.status,
                body=payload,
                headers={"Content-Type": answer.headers.get("Content-Type", "text/xml")},
            )


async def measure(
    chain: DevChain,
    w3: Web3,
    moto: MotoServer,
    ami: str,
    confirmations: int,
    payments: int,
    block_time: float,
    folder: Path,
) -> list[float]:
    driver = DevChainDriver(w3)
    w3.provider.make_request("evm_setIntervalMining", [0])  # type: ignore[arg-type]
    w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    ctk = driver.token()
    payers = [dev_account(i) for i in range(1, 11)]
    for payer in payers:
        driver.fund(ctk, payer, 1000)
    start = driver.head + 1
    recorder = Recorder(moto.url)
    await recorder.start()
    (folder / "watcher.toml").write_text(f'[plans."t3.micro"]\nprice = "10"\nami = "{ami}"\n')
    env = {
        **os.environ,
        **AWS,
        "WATCHER_RPC_URL": chain.url,
        "WATCHER_WS_URL": chain.ws_url,
        "WATCHER_TOKEN_ADDRESS": ctk.address,
        "WATCHER_DATABASE_URL": f"sqlite+aiosqlite:///{folder / f'latency-{confirmations}.db'}",
        "WATCHER_CONFIRMATIONS": str(confirmations),
        "WATCHER_START_BLOCK": str(start),
        "WATCHER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{recorder.port}",
        "WATCHER_AWS_REGION": "us-east-1",
        "WATCHER_WORKERS": "4",
    }
    run = subprocess.Popen(
        [WATCHER, "run"], env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    seen: dict[int, float] = {}
    watching = asyncio.create_task(_watch_heads(chain.url, seen))
    try:
        await asyncio.sleep(2.0)  # start-up
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setIntervalMining", [int(block_time * 1000)])  # type: ignore[arg-type]
        sent: list[str] = []
        for n in range(payments):
            payer = payers[n % len(payers)]
            raw = driver.signed(
                payer,
                ctk.functions.transfer("0x000000000000000000000000000000000000dEaD", 10 * CTK),
            )
            sent.append(w3.eth.send_raw_transaction(raw).to_0x_hex())
            await asyncio.sleep(block_time / 3)
        mined_at: dict[str, float] = {}
        for tx in sent:
            receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=60)  # type: ignore[arg-type]
            while receipt["blockNumber"] not in seen:
                await asyncio.sleep(0.01)
            mined_at[tx] = seen[receipt["blockNumber"]]
        deadline = time.monotonic() + 120
        while len(recorder.launches) < payments and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        orders = subprocess.run(
            [WATCHER, "orders", "--json"],
            env=env,
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
        tx_of = {o["order_id"]: o["tx_hash"] for o in map(json.loads, orders.stdout.splitlines())}
        if recorder.lookups:
            ms = sorted(x * 1000 for x in recorder.lookups)
            print(
                f"confirmations={confirmations}: tag look-up before each launch: {len(ms)} calls, "
                f"median {statistics.median(ms):.1f} ms, p90 {ms[int(len(ms) * 0.9) - 1]:.1f} ms"
            )
        return [
            recorder.launches[order] - mined_at[tx]
            for order, tx in tx_of.items()
            if order in recorder.launches and tx in mined_at
        ]
    finally:
        watching.cancel()
        run.send_signal(signal.SIGTERM)
        run.wait(30)
        await recorder.stop()
        w3.provider.make_request("evm_setIntervalMining", [0])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]


async def _watch_heads(url: str, seen: dict[int, float]) -> None:
    """When each block first shows, polled every 5 ms: the reference for "the block"."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    async with ClientSession() as session:
        while True:
            async with session.post(url, json=body) as answer:
                number = int((await answer.json())["result"], 16)
            seen.setdefault(number, time.monotonic())
            await asyncio.sleep(0.005)


def main() -> None:
    import logging

    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100)
    parser.add_argument("--block-time", type=float, default=1.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="watcher-latency-") as tmp,
        (Path(tmp) / "hardhat.log").open("wb") as log,
    ):
        folder = Path(tmp)
        with DevChain(free_port(), hardhat_project(ROOT), log=log) as chain, MotoServer() as moto:
            chain.start()
            moto.start()
            import boto3

            ami = boto3.client(
                "ec2",
                endpoint_url=moto.url,
                region_name="us-east-1",
                aws_access_key_id="b",
                aws_secret_access_key="b",
            ).describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
            w3 = Web3(HTTPProvider(chain.url))
            for confirmations in (0, 2):
                latencies = asyncio.run(
                    measure(
                        chain, w3, moto, ami, confirmations, args.payments, args.block_time, folder
                    )
                )
                latencies.sort()
                print(
                    f"confirmations={confirmations} block time {args.block_time:.1f} s: {len(latencies)}/{args.payments} payments launched; "
                    f"block -> RunInstances median {statistics.median(latencies) * 1000:.0f} ms, "
                    f"p90 {latencies[int(len(latencies) * 0.9) - 1] * 1000:.0f} ms, worst {latencies[-1] * 1000:.0f} ms"
                )


if __name__ == "__main__":
    main()
