"""The follower against a real Hardhat node, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3

from tests.chainhelpers import CTK, DevChainDriver
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.ledger import queries
from watcher.dev.devchain import DevChain
from watcher.domain.addresses import BURN_ADDRESS
from watcher.runtime.config import load_settings
from watcher.runtime.service import Watcher, open_watcher
from watcher.services.replay import replay

ALICE, BOB = dev_account(7), dev_account(8)


@dataclass
class World:
    driver: DevChainDriver
    ctk: Any
    database_url: str
    devchain: DevChain

    def settings(self, **flags: object) -> Any:
        values = {
            "rpc_url": self.devchain.url,
            "token_address": self.ctk.address,
            "database_url": self.database_url,
            "confirmations": "0",
        }
        values.update({k: str(v) for k, v in flags.items()})
        return load_settings(values, {})


@pytest.fixture
async def world(devchain: DevChain, w3: Web3, database_url: str) -> World:
    driver = DevChainDriver(w3)
    ctk = driver.token()
    for user in (ALICE, BOB):
        driver.fund(ctk, user, 1000)
    return World(driver, ctk, database_url, devchain)


async def migrated(world: World) -> None:
    from watcher.runtime.service import upgrade_database

    await upgrade_database(world.settings())


def open_(world: World, **flags: object) -> AbstractAsyncContextManager[Watcher]:
    return open_watcher(world.settings(**flags), max_attempts=5)


async def sync(world: World, **flags: object) -> None:
    await migrated(world)
    async with open_(world, **flags) as watcher:
        await watcher.follower.sync()


async def ledger_state(world: World) -> tuple[list[Any], list[Any], list[Any]]:
    from watcher.adapters.ledger.database import create_engine

    engine = create_engine(world.database_url)
    try:
        payments = await queries.payments(engine, 1337)
        orders = [
            (o.order_id, o.payer, o.amount, o.block_number, o.state)
            for o in await queries.orders(engine, 1337)
        ]
        credits = [(c.payer, c.balance) for c in await queries.credits(engine, 1337)]
        totals = await queries.totals(engine, 1337)
        assert totals.paid == totals.credit + totals.spent
    finally:
        await engine.dispose()
    return payments, orders, credits


async def test_several_payments_in_one_transaction_each_count_and_others_are_ignored(
    world: World,
) -> None:
    driver, ctk = world.driver, world.ctk
    batcher = driver.deploy("PaymentBatcher")
    receipt = driver.pay_many(ctk, batcher, ALICE, [10 * CTK, 10 * CTK, 5 * CTK])
    other_token = driver.token()
    driver.fund(other_token, ALICE, 50)
    driver.pay(other_token, ALICE, 10 * CTK)  # another contract's Transfer into the burn address
    driver.pay(ctk, ALICE, 10 * CTK, to=BOB.address)  # CTK to someone else
    driver.pay_many(ctk, batcher, BOB, [10 * CTK], to=ALICE.address)
    driver.pay(ctk, BOB, 0)  # zero-value payment

    await sync(world)
    payments, orders, credits = await ledger_state(world)
    assert [(p.tx_hash, p.payer, p.amount) for p in payments] == [
        (receipt["transactionHash"].to_0x_hex(), ALICE.address, 10 * CTK),
        (receipt["transactionHash"].to_0x_hex(), ALICE.address, 10 * CTK),
        (receipt["transactionHash"].to_0x_hex(), ALICE.address, 5 * CTK),
    ]
    assert len({p.log_index for p in payments}) == 3
    assert len(orders) == 2
    assert credits == [(ALICE.address, 5 * CTK)]


async def test_credit_pooling_25_then_5(world: World) -> None:
    world.driver.pay(world.ctk, ALICE, 25 * CTK)
    await sync(world)
    _, orders, credits = await ledger_state(world)
    assert (len(orders), credits) == (2, [(ALICE.address, 5 * CTK)])
    world.driver.pay(world.ctk, ALICE, 5 * CTK)
    await sync(world)
    _, orders, credits = await ledger_state(world)
    assert (len(orders), credits) == (3, [(ALICE.address, 0)])


async def test_reorg_leaves_no_trace_of_the_orphan_and_counts_the_reincluded_once(
    world: World,
) -> None:
    driver, ctk = world.driver, world.ctk
    await sync(world)
    snapshot = driver.snapshot()
    raw = driver.signed(ALICE, ctk.functions.transfer(BURN_ADDRESS, 10 * CTK))
    orphan_only = driver.signed(BOB, ctk.functions.transfer(BURN_ADDRESS, 10 * CTK))
    driver.w3.eth.send_raw_transaction(raw)
    driver.w3.eth.send_raw_transaction(orphan_only)
    await sync(world)
    payments, orders, _ = await ledger_state(world)
    assert len(payments) == 2 and len(orders) == 2
    orphaned_hash = payments[0].block_hash

    driver.revert(snapshot)  # both blocks are gone
    driver.mine(2)  # a different branch...
    tx_hash = driver.w3.eth.send_raw_transaction(raw)  # ...where only Alice's payment returns
    driver.w3.eth.wait_for_transaction_receipt(tx_hash)
    driver.mine(1)
    await sync(world)

    payments, orders, credits = await ledger_state(world)
    assert [(p.payer, p.tx_hash) for p in payments] == [(ALICE.address, tx_hash.to_0x_hex())]
    assert payments[0].block_hash != orphaned_hash
    assert (
        payments[0].block_hash
        == driver.w3.eth.get_block(payments[0].block_number)["hash"].to_0x_hex()
    )
    assert len(orders) == 1 and orders[0][1] == ALICE.address
    assert credits == [(ALICE.address, 0)]


async def test_reorg_inside_the_confirmation_window_never_reaches_the_ledger(world: World) -> None:
    driver, ctk = world.driver, world.ctk
    snapshot = driver.snapshot()
    driver.pay(ctk, BOB, 10 * CTK)
    driver.mine(1)
    await sync(world, confirmations=2)
    assert (await ledger_state(world))[0] == []
    driver.revert(snapshot)
    driver.mine(4)
    await sync(world, confirmations=2)
    payments, orders, credits = await ledger_state(world)
    assert (payments, orders, credits) == ([], [], [])


async def test_replay_twice_changes_nothing(world: World) -> None:
    start = world.driver.head
    for amount in (10, 3, 7, 30):
        world.driver.pay(world.ctk, ALICE, amount * CTK)
    await migrated(world)
    async with open_(world) as watcher:
        first = await replay(watcher.follower, watcher.ledger, start, None)
        assert (first.payments, first.orders) == (4, 5)
    state = await ledger_state(world)
    async with open_(world) as watcher:
        again = await replay(watcher.follower, watcher.ledger, start, None)
        assert (again.payments, again.duplicates, again.orders) == (0, 4, 0)
    assert await ledger_state(world) == state


async def test_follows_live_over_websocket(world: World) -> None:
    await migrated(world)
    async with open_(world, ws_url=world.devchain.ws_url, poll_interval=3600) as watcher:
        task = asyncio.create_task(watcher.follower.run(world.devchain.ws_url, 3600))
        try:
            await asyncio.sleep(0.5)
            world.driver.pay(world.ctk, BOB, 10 * CTK)
            for _ in range(100):
                if (await ledger_state(world))[0]:
                    break
                await asyncio.sleep(0.05)
        finally:
            watcher.follower.stop.set()
            await asyncio.wait_for(task, 10)
    payments, orders, _ = await ledger_state(world)
    assert len(payments) == 1 and len(orders) == 1


async def test_a_websocket_drop_mid_stream_loses_nothing(world: World) -> None:
    from tests.proxy import TcpProxy
    from watcher.shared import metrics

    proxy = TcpProxy(world.devchain.port)
    await proxy.start()
    reconnects = metrics.WS_RECONNECTS._value.get()
    await migrated(world)

    async def recorded(count: int) -> bool:
        for _ in range(200):
            if len((await ledger_state(world))[0]) >= count:
                return True
            await asyncio.sleep(0.05)
        return False

    # Polling is off (an hour): only the subscription wakes the follower, and each attempt
    # to reconnect it, which catches up from the cursor.
    async with open_(world, poll_interval=3600) as watcher:
        task = asyncio.create_task(watcher.follower.run(proxy.url, 3600))
        try:
            await asyncio.sleep(0.5)
            world.driver.pay(world.ctk, ALICE, 10 * CTK)
            assert await recorded(1)
            await proxy.down()  # the socket dies mid-stream, and stays down a while
            for amount in (10, 20, 1):
                world.driver.pay(world.ctk, ALICE, amount * CTK)
            await asyncio.sleep(1.0)
            await proxy.start()
            assert await recorded(4)
        finally:
            watcher.follower.stop.set()
            await asyncio.wait_for(task, 10)
            await proxy.down()
    payments, orders, credits = await ledger_state(world)
    assert [p.amount for p in payments] == [10 * CTK, 10 * CTK, 20 * CTK, 1 * CTK]
    assert len(orders) == 4 and credits == [(ALICE.address, 1 * CTK)]
    assert metrics.WS_RECONNECTS._value.get() > reconnects


async def test_follows_over_a_websocket_rpc_url(world: World) -> None:
    batcher = world.driver.deploy("PaymentBatcher")
    world.driver.pay_many(world.ctk, batcher, BOB, [4 * CTK, 6 * CTK])
    await sync(world, rpc_url=world.devchain.ws_url)
    payments, orders, credits = await ledger_state(world)
    assert [p.amount for p in payments] == [4 * CTK, 6 * CTK]
    assert len(orders) == 1 and credits == [(BOB.address, 0)]
