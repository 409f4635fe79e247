"""`watcher demo`: the product's main job on embedded defaults, with the thesis's three
experiments (section 6) as real wallet transactions.

It starts a Hardhat dev chain, moto's EC2 server and a SQLite ledger in a temporary folder,
deploys CTK, runs the watcher (follower and provisioners) and then:

1. the admin funds a user with 50 CTK; the user pays 10 CTK and gets an instance;
2. the user sends the balance back to the admin; `watcher pay` refuses, nothing is sent;
3. the admin refunds the user 100 CTK; the user pays 10 CTK and gets a second instance.

Everything it started is stopped before it returns.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.chain.connection import Chain, connect
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.chain.signer import Signer
from watcher.adapters.chain.token import CloudToken
from watcher.adapters.ledger import queries
from watcher.dev.devchain import DevChain, hardhat_project
from watcher.dev.moto import MotoServer
from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.amounts import format_amount, parse_amount
from watcher.domain.catalog import Catalog
from watcher.domain.errors import InsufficientFunds, UserError
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.runtime.config import Settings, load_settings
from watcher.runtime.service import open_provisioners, open_watcher
from watcher.shared.net import free_port

PRICE = parse_amount("10")
ADMIN, USER = 0, 1
ORDER_TIMEOUT = 30.0


@dataclass(frozen=True)
class Step:
    experiment: str
    action: str
    outcome: str
    tx_hash: str
    user_before: int
    user_after: int
    order_state: str = "-"
    instance_id: str = "-"


@contextmanager
def _moto_credentials() -> Iterator[None]:
    """moto takes any credentials; the demo never sends the user's real ones anywhere."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ.pop(name, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "demo"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "demo"  # noqa: S105 - a placeholder moto accepts
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def run_demo(settings: Settings, console: Console | None = None) -> list[Step]:
    # Long lines (tx hashes, addresses) and the table stay whole when the output is not a
    # terminal (a terminal gets what fits it).
    console = console or Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    project = hardhat_project(settings.hardhat_dir)
    with tempfile.TemporaryDirectory(prefix="watcher-demo-") as workdir, _moto_credentials():
        folder = Path(workdir)
        with (
            (folder / "devchain.log").open("wb") as log,
            DevChain(free_port(), project, log=log) as devchain,
            MotoServer() as moto,
        ):
            began = time.monotonic()
            with console.status("starting the dev chain and moto's EC2 server"):
                devchain.start()
                moto.start()
            console.print(f"dev chain 1337 at {devchain.url}, moto's EC2 server at {moto.url}")
            async with connect(devchain.url, settings.rpc_timeout) as chain:
                admin = Signer(dev_account(ADMIN), "dev account 0")
                deployment = await CloudToken.deploy(chain, admin, settings.tx_timeout)
                ami = await _moto_ami(moto.url)
                watcher_settings = _watcher_settings(
                    devchain, moto, folder, deployment.address, ami
                )
                console.print(
                    f"CloudToken at {deployment.address}; ledger {folder / 'ledger.db'}; "
                    f"plan t3.micro = 10 CTK from {ami}"
                )
                steps = await _with_watcher(watcher_settings, chain, deployment.address, console)
            console.print(_table(steps))
            console.print(f"experiments took {time.monotonic() - began:.1f} s after setup")
    console.print("dev chain, moto and the watcher stopped")
    return steps


def _watcher_settings(
    devchain: DevChain, moto: MotoServer, folder: Path, token: str, ami: str
) -> Settings:
    plan = ec2_plan("t3.micro", PRICE, "t3.micro", ami)
    base = load_settings(
        {
            "rpc_url": devchain.url,
            "ws_url": devchain.ws_url,
            "token_address": token,
            "database_url": f"sqlite+aiosqlite:///{folder / 'ledger.db'}",
            "confirmations": "0",
            "poll_interval": "0.5",
            "aws_endpoint_url": moto.url,
            "aws_region": "us-east-1",
            "workers": "2",
        },
        environ={},
        config_file=None,
    )
    return replace(base, catalog=Catalog({plan.name: plan}, plan.name))


async def _moto_ami(url: str) -> str:
    from watcher.adapters.cloud.ec2 import open_ec2

    async with open_ec2("us-east-1", url, 10) as cloud:
        return await cloud.first_image()


async def _with_watcher(
    settings: Settings, chain: Chain, token: str, console: Console
) -> list[Step]:
    async with (
        open_watcher(settings, max_attempts=None) as watcher,
        open_provisioners(settings, watcher.engine, settings.workers) as workers,
    ):
        watcher.follower.order_listeners.extend(w.wake for w in workers)
        tasks = [asyncio.create_task(watcher.follower.run(settings.ws_url, settings.poll_interval))]
        tasks += [asyncio.create_task(worker.run()) for worker in workers]
        try:
            ctk = await CloudToken.at(chain, settings.require_token_address())
            return await _experiments(chain, ctk, watcher.engine, settings.tx_timeout, console)
        finally:
            watcher.follower.stop.set()
            for worker in workers:
                worker.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _experiments(
    chain: Chain, ctk: CloudToken, engine: AsyncEngine, timeout: float, console: Console
) -> list[Step]:
    admin = Signer(dev_account(ADMIN), "dev account 0")
    user = Signer(dev_account(USER), "dev account 1")
    console.print(f"admin {admin.address}, user {user.address}, burn address {BURN_ADDRESS}")
    steps: list[Step] = []

    async def step(experiment: str, action: str, send: Signer, to: str | None, amount: int) -> None:
        before = await ctk.balance_of(user.address)
        state = instance = "-"
        try:
            if to is None:
                sent = await ctk.pay(send, amount, timeout)
                outcome = "paid"
                order = await _await_order(engine, sent.tx_hash)
                state, instance = order.state, order.instance_id or "-"
            else:
                sent = await ctk.transfer(send, chain.w3.to_checksum_address(to), amount, timeout)
                outcome = "sent"
            tx_hash = sent.tx_hash
        except InsufficientFunds as exc:
            outcome, tx_hash = f"refused: {exc}", "-"
        after = await ctk.balance_of(user.address)
        steps.append(Step(experiment, action, outcome, tx_hash, before, after, state, instance))
        where = f" (tx {tx_hash})" if tx_hash != "-" else ""
        got = f"; order {state}, instance {instance}" if instance != "-" else ""
        console.print(f"[bold]{experiment}[/bold] {action}: {outcome}{where}{got}")

    fifty, hundred = parse_amount("50"), parse_amount("100")
    await step("1 sufficient funds", "admin sends the user 50 CTK", admin, user.address, fifty)
    await step("1 sufficient funds", "user pays 10 CTK", user, None, PRICE)
    remaining = await ctk.balance_of(user.address)
    await step("2 insufficient funds", "user returns the balance", user, admin.address, remaining)
    await step("2 insufficient funds", "user pays 10 CTK", user, None, PRICE)
    await step("3 replenished", "admin sends the user 100 CTK", admin, user.address, hundred)
    await step("3 replenished", "user pays 10 CTK", user, None, PRICE)
    burned = await ctk.balance_of(BURN_ADDRESS)
    console.print(
        f"burn address holds {format_amount(burned)} CTK: the sum of the accepted payments"
    )
    return steps


async def _await_order(engine: AsyncEngine, tx_hash: str) -> queries.OrderView:
    """Wait until the payment's order is running (or failed)."""
    deadline = time.monotonic() + ORDER_TIMEOUT
    while time.monotonic() < deadline:
        for order in await queries.orders(engine):
            if order.tx_hash == tx_hash and order.state in ("running", "failed"):
                return order
        await asyncio.sleep(0.1)
    raise UserError(
        f"the order for payment {tx_hash} was not provisioned within {ORDER_TIMEOUT:.0f} s"
    )


def _table(steps: list[Step]) -> Table:
    table = Table(title="The thesis's experiments, replayed end to end", title_justify="left")
    for column in (
        "experiment",
        "action",
        "outcome",
        "user before",
        "user after",
        "order",
        "instance",
    ):
        table.add_column(column, justify="right" if column.startswith("user") else "left")
    for s in steps:
        table.add_row(
            s.experiment,
            s.action,
            s.outcome.split(":")[0],
            f"{format_amount(s.user_before)} CTK",
            f"{format_amount(s.user_after)} CTK",
            s.order_state,
            s.instance_id,
        )
    return table
