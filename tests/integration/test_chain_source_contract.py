"""FakeChain must answer like the JSON-RPC adapter over a real node: the same checks run
against both, so follower tests on the fake mean something for the real thing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from web3 import Web3

from tests.chainhelpers import CTK, DevChainDriver
from tests.fakes import FakeChain
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.chain.rpc import HttpTransport
from watcher.adapters.chain.source import ChainSource, RpcChainSource
from watcher.dev.devchain import DevChain
from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.payment import TRANSFER_TOPIC, decode_payment, topic_for_address

PAYER = dev_account(3)


@pytest.fixture(params=["fake", "hardhat"])
async def world(
    request: pytest.FixtureRequest, devchain: DevChain, w3: Web3
) -> AsyncIterator[tuple[ChainSource, str, int]]:
    """A source with one block holding a 7 CTK payment and a transfer to someone else,
    followed by two empty blocks. Yields (source, token address, payment block)."""
    if request.param == "fake":
        chain = FakeChain()
        token = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        chain.mine_empty(3)
        chain.mine(
            [
                (token, PAYER.address, BURN_ADDRESS, 7 * CTK),
                (token, PAYER.address, dev_account(4).address, CTK),
            ]
        )
        chain.mine_empty(2)
        yield chain, token, 4
        return
    driver = DevChainDriver(w3)
    ctk = driver.token()
    driver.fund(ctk, PAYER, 8)
    batcher = driver.deploy("PaymentBatcher")
    driver.send(PAYER, ctk.functions.approve(batcher.address, 8 * CTK))
    # Two transfers in one block, as the fake mines them.
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        tx1 = PAYER.sign_transaction(
            ctk.functions.transfer(BURN_ADDRESS, 7 * CTK).build_transaction(
                {
                    "from": PAYER.address,
                    "nonce": w3.eth.get_transaction_count(PAYER.address),
                    "gas": 100_000,
                }
            )
        )
        tx2 = PAYER.sign_transaction(
            ctk.functions.transfer(dev_account(4).address, CTK).build_transaction(
                {
                    "from": PAYER.address,
                    "nonce": w3.eth.get_transaction_count(PAYER.address) + 1,
                    "gas": 100_000,
                }
            )
        )
        w3.eth.send_raw_transaction(tx1.raw_transaction)
        w3.eth.send_raw_transaction(tx2.raw_transaction)
        driver.mine()
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    block = driver.head
    driver.mine(2)
    source = RpcChainSource(HttpTransport(devchain.url, 10))
    yield source, ctk.address, block
    await source.close()


async def test_blocks_chain_by_parent_hash_and_end_at_the_head(
    world: tuple[ChainSource, str, int],
) -> None:
    source, _, block = world
    head = await source.head()
    assert head == block + 2
    newest, parent = await source.block(head), await source.block(head - 1)
    assert newest is not None and parent is not None
    assert newest.parent_hash == parent.hash and newest.number == head
    assert await source.block(head + 1) is None
    assert await source.head("finalized") <= head


async def test_logs_filter_by_contract_and_topics(world: tuple[ChainSource, str, int]) -> None:
    source, token, block = world
    burn_topics: list[str | None] = [TRANSFER_TOPIC, None, topic_for_address(BURN_ADDRESS)]
    logs = await source.logs(0, block + 2, token, burn_topics)
    assert len(logs) == 1
    entry: dict[str, Any] = logs[0]
    assert {
        "address",
        "topics",
        "data",
        "blockNumber",
        "blockHash",
        "transactionHash",
        "logIndex",
    } <= set(entry)
    payment = decode_payment(entry, 1337, token, BURN_ADDRESS)
    assert payment is not None
    assert (payment.payer, payment.amount, payment.block_number) == (PAYER.address, 7 * CTK, block)
    header = await source.block(block)
    assert header is not None and payment.block_hash == header.hash
    all_transfers = await source.logs(block, block, token, [TRANSFER_TOPIC])
    assert [int(e["logIndex"], 16) for e in all_transfers] == [0, 1]
    assert await source.logs(block + 1, block + 2, token, burn_topics) == []
    assert await source.logs(0, block, "0x" + "12" * 20, burn_topics) == []
