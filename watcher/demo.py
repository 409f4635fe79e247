"""`watcher demo`: the thesis's three experiments (section 6) on a dev chain it starts itself.

1. A user funded with 50 CTK pays 10 CTK.
2. The user's balance is sent back to the admin; the payment is refused and nothing is sent.
3. The user is refunded 100 CTK and pays 10 CTK again.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from watcher.addresses import BURN_ADDRESS
from watcher.amounts import format_amount, parse_amount
from watcher.chain.connection import Chain, connect
from watcher.chain.token import CloudToken
from watcher.config import Settings
from watcher.devchain import DevChain, free_port, hardhat_project
from watcher.devchain_accounts import dev_account
from watcher.errors import InsufficientFunds
from watcher.keys import Signer

PRICE = parse_amount("10")
ADMIN, USER = 0, 1


@dataclass(frozen=True)
class Step:
    experiment: str
    action: str
    outcome: str
    tx_hash: str
    user_before: int
    user_after: int


async def run_demo(settings: Settings, console: Console | None = None) -> list[Step]:
    # Long lines (tx hashes, addresses) stay whole when the output is not a terminal.
    console = console or Console(soft_wrap=True)
    project = hardhat_project(settings.hardhat_dir)
    with tempfile.TemporaryDirectory(prefix="watcher-demo-") as workdir:
        log = (Path(workdir) / "devchain.log").open("wb")
        with log, DevChain(free_port(), project, log=log) as devchain:
            with console.status("starting the dev chain"):
                devchain.start()
            console.print(f"dev chain 1337 at {devchain.url}")
            async with connect(devchain.url, settings.rpc_timeout) as chain:
                steps = await _experiments(chain, settings.tx_timeout, console)
    console.print(_table(steps))
    console.print("dev chain stopped")
    return steps


async def _experiments(chain: Chain, timeout: float, console: Console) -> list[Step]:
    admin = Signer(dev_account(ADMIN), "dev account 0")
    user = Signer(dev_account(USER), "dev account 1")
    deployment = await CloudToken.deploy(chain, admin, timeout)
    ctk = await CloudToken.at(chain, deployment.address)
    console.print(f"CloudToken deployed at {deployment.address} (block {deployment.block_number})")
    console.print(f"admin {admin.address}, user {user.address}, burn address {BURN_ADDRESS}")
    steps: list[Step] = []

    async def step(experiment: str, action: str, send: Signer, to: str | None, amount: int) -> None:
        before = await ctk.balance_of(user.address)
        try:
            if to is None:
                sent = await ctk.pay(send, amount, timeout)
                outcome = "paid"
            else:
                sent = await ctk.transfer(send, chain.w3.to_checksum_address(to), amount, timeout)
                outcome = "sent"
            tx_hash = sent.tx_hash
        except InsufficientFunds as exc:
            outcome, tx_hash = f"refused: {exc}", "-"
        after = await ctk.balance_of(user.address)
        steps.append(Step(experiment, action, outcome, tx_hash, before, after))
        where = f" (tx {tx_hash})" if tx_hash != "-" else ""
        console.print(f"[bold]{experiment}[/bold] {action}: {outcome}{where}")

    await step(
        "1 sufficient funds", "admin sends the user 50 CTK", admin, user.address, parse_amount("50")
    )
    await step("1 sufficient funds", "user pays 10 CTK", user, None, PRICE)
    remaining = await ctk.balance_of(user.address)
    await step(
        "2 insufficient funds", "user returns the balance to admin", user, admin.address, remaining
    )
    await step("2 insufficient funds", "user pays 10 CTK", user, None, PRICE)
    await step(
        "3 replenished", "admin sends the user 100 CTK", admin, user.address, parse_amount("100")
    )
    await step("3 replenished", "user pays 10 CTK", user, None, PRICE)
    burned = await ctk.balance_of(BURN_ADDRESS)
    console.print(
        f"burn address holds {format_amount(burned)} CTK: the sum of the accepted payments"
    )
    return steps


def _table(steps: list[Step]) -> Table:
    table = Table(title="The thesis's experiments, replayed on the dev chain", title_justify="left")
    for column in ("experiment", "action", "outcome", "user before", "user after"):
        table.add_column(column, justify="right" if column.startswith("user") else "left")
    for s in steps:
        table.add_row(
            s.experiment,
            s.action,
            s.outcome.split(":")[0],
            f"{format_amount(s.user_before)} CTK",
            f"{format_amount(s.user_after)} CTK",
        )
    return table
