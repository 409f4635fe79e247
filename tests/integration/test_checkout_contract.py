"""The Checkout contract on a real Hardhat node (issue 10): a payment for an order is the
CTK Transfer into the burn address plus, in the same transaction, an event naming the
order; with an EIP-2612 permit it takes one transaction and no prior approval."""

from __future__ import annotations

import os
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.logs import DISCARD

from tests.chainhelpers import CTK, DevChainDriver
from watcher.adapters.chain.checkout import permit_message
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.payment import decode_payment

BUYER, OTHER = dev_account(7), dev_account(8)


@pytest.fixture(scope="module")
def deployed(w3: Web3) -> tuple[DevChainDriver, Any, Any]:
    driver = DevChainDriver(w3)
    token = driver.token()
    checkout = driver.deploy("Checkout", token.address)
    driver.fund(token, BUYER, 1000)
    return driver, token, checkout


def ref() -> bytes:
    return os.urandom(32)


def permit_signature(
    w3: Web3, token: Any, owner: Any, spender: str, value: int, deadline: int
) -> Any:
    typed = permit_message(
        "CloudToken",
        "1",
        w3.eth.chain_id,
        token.address,
        owner.address,
        spender,
        value,
        token.functions.nonces(owner.address).call(),
        deadline,
    )
    return owner.sign_message(encode_typed_data(full_message=typed))


def both_events(w3: Web3, token: Any, checkout: Any, receipt: Any) -> tuple[Any, Any]:
    # Each contract's events, the other's logs left aside.
    (transfer,) = token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    (paid,) = checkout.events.OrderPaid().process_receipt(receipt, errors=DISCARD)
    return transfer, paid


def test_pay_burns_the_amount_and_names_the_order_in_the_same_transaction(
    w3: Web3, deployed: tuple[DevChainDriver, Any, Any]
) -> None:
    driver, token, checkout = deployed
    order = ref()
    burned = token.functions.balanceOf(BURN_ADDRESS).call()
    driver.send(BUYER, token.functions.approve(checkout.address, 20 * CTK))
    receipt = driver.send(BUYER, checkout.functions.pay(order, 20 * CTK))
    transfer, paid = both_events(w3, token, checkout, receipt)
    assert (transfer.args["from"], transfer.args["to"], transfer.args["value"]) == (
        BUYER.address,
        BURN_ADDRESS,
        20 * CTK,
    )
    assert (paid.args["ref"], paid.args["payer"], paid.args["amount"]) == (
        order,
        BUYER.address,
        20 * CTK,
    )
    assert token.functions.balanceOf(BURN_ADDRESS).call() == burned + 20 * CTK
    assert token.functions.balanceOf(checkout.address).call() == 0  # it holds nothing
    # The watcher counts the Transfer as it counts any payment, paid by the buyer.
    raw = next(log for log in receipt["logs"] if log["address"] == token.address)
    as_rpc = {
        "address": raw["address"],
        "topics": ["0x" + bytes(t).hex().removeprefix("0x") for t in raw["topics"]],
        "data": "0x" + bytes(raw["data"]).hex().removeprefix("0x"),
        "blockNumber": hex(raw["blockNumber"]),
        "blockHash": "0x" + bytes(raw["blockHash"]).hex().removeprefix("0x"),
        "transactionHash": "0x" + bytes(raw["transactionHash"]).hex().removeprefix("0x"),
        "logIndex": hex(raw["logIndex"]),
    }
    payment = decode_payment(as_rpc, w3.eth.chain_id, token.address, BURN_ADDRESS)
    assert payment is not None and (payment.payer, payment.amount) == (BUYER.address, 20 * CTK)


def test_pay_with_a_permit_takes_one_transaction_and_no_approval(
    w3: Web3, deployed: tuple[DevChainDriver, Any, Any]
) -> None:
    driver, token, checkout = deployed
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    signed = permit_signature(w3, token, BUYER, checkout.address, 15 * CTK, deadline)
    before = w3.eth.get_transaction_count(BUYER.address)
    receipt = driver.send(
        BUYER,
        checkout.functions.payWithPermit(
            ref(),
            15 * CTK,
            deadline,
            signed.v,
            signed.r.to_bytes(32, "big"),
            signed.s.to_bytes(32, "big"),
        ),
    )
    assert w3.eth.get_transaction_count(BUYER.address) == before + 1
    transfer, paid = both_events(w3, token, checkout, receipt)
    assert transfer.args["value"] == paid.args["amount"] == 15 * CTK
    assert token.functions.allowance(BUYER.address, checkout.address).call() == 0


def test_a_permit_someone_else_submitted_first_still_pays(
    w3: Web3, deployed: tuple[DevChainDriver, Any, Any]
) -> None:
    """Copied from the mempool and sent first, the permit is used up; the payment goes
    through on the allowance it left (the contract ignores the failed permit)."""
    driver, token, checkout = deployed
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    signed = permit_signature(w3, token, BUYER, checkout.address, 5 * CTK, deadline)
    r, s = signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
    driver.send(
        OTHER,
        token.functions.permit(BUYER.address, checkout.address, 5 * CTK, deadline, signed.v, r, s),
    )
    receipt = driver.send(
        BUYER, checkout.functions.payWithPermit(ref(), 5 * CTK, deadline, signed.v, r, s)
    )
    assert both_events(w3, token, checkout, receipt)[1].args["amount"] == 5 * CTK


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.functions.pay(b"\0" * 32, CTK), "NoReference"),
        (lambda c: c.functions.pay(os.urandom(32), 0), "NoAmount"),
        (lambda c: c.functions.pay(os.urandom(32), 10**9 * CTK), "ERC20InsufficientAllowance"),
    ],
)
def test_a_payment_without_reference_amount_or_allowance_is_refused_whole(
    w3: Web3, deployed: tuple[DevChainDriver, Any, Any], call: Any, error: str
) -> None:
    _, token, checkout = deployed
    burned = token.functions.balanceOf(BURN_ADDRESS).call()
    with pytest.raises((ContractCustomError, ContractLogicError)) as refused:
        call(checkout).call({"from": BUYER.address})
    # Hardhat answers the custom error's selector; name it from the two contracts' ABIs.
    names = {
        "0x"
        + Web3.keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})")[:4]
        .hex()
        .removeprefix("0x"): e["name"]
        for e in checkout.abi + token.abi
        if e["type"] == "error"
    }
    data = refused.value.data  # type: ignore[union-attr]
    data = str(data.get("data", "") if isinstance(data, dict) else data or "")
    assert names.get(data[:10]) == error, (data[:10], str(refused.value)[:200])
    assert token.functions.balanceOf(BURN_ADDRESS).call() == burned
