import pytest

from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.payment import (
    TRANSFER_TOPIC,
    MalformedChainData,
    decode_payment,
    topic_for_address,
)

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TX = "0x" + "ab" * 32
BLOCK_HASH = "0x" + "cd" * 32


def log(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "address": TOKEN.lower(),
        "topics": [TRANSFER_TOPIC, topic_for_address(PAYER), topic_for_address(BURN_ADDRESS)],
        "data": "0x" + hex(10 * 10**18)[2:].rjust(64, "0"),
        "blockNumber": "0x1a",
        "blockHash": BLOCK_HASH,
        "transactionHash": TX,
        "logIndex": "0x3",
        "removed": False,
    }
    base.update(overrides)
    return base


def decode(entry: object) -> object:
    return decode_payment(entry, 1337, TOKEN, BURN_ADDRESS)


def test_a_transfer_to_the_burn_address_is_a_payment() -> None:
    payment = decode(log())
    assert payment is not None
    assert payment.payer == PAYER
    assert payment.amount == 10 * 10**18
    assert (payment.block_number, payment.log_index, payment.tx_hash) == (26, 3, TX)
    assert payment.key.chain_id == 1337


def test_largest_amount() -> None:
    payment = decode(log(data="0x" + "f" * 64))
    assert payment is not None and payment.amount == 2**256 - 1


@pytest.mark.parametrize(
    "entry",
    [
        log(address="0x" + "11" * 20),  # another token
        log(
            topics=[TRANSFER_TOPIC, topic_for_address(PAYER), topic_for_address(PAYER)]
        ),  # another recipient
        log(data="0x" + "0" * 64),  # zero value
        log(
            topics=["0x" + "22" * 32, topic_for_address(PAYER), topic_for_address(BURN_ADDRESS)]
        ),  # other event
        log(
            topics=[
                TRANSFER_TOPIC,
                topic_for_address(PAYER),
                topic_for_address(BURN_ADDRESS),
                "0x" + "0" * 64,
            ]
        ),
        log(removed=True),
    ],
    ids=["other-token", "other-recipient", "zero-value", "other-event", "erc721", "removed"],
)
def test_not_payments(entry: dict[str, object]) -> None:
    assert decode(entry) is None


@pytest.mark.parametrize(
    "entry",
    [
        "not a log",
        log(topics=None),
        log(data="0x1234"),
        log(data=None),
        log(blockNumber="26"),
        log(logIndex=None),
        log(transactionHash="0xabc"),
        log(blockHash=None),
        log(topics=[TRANSFER_TOPIC, "0x12", topic_for_address(BURN_ADDRESS)]),
    ],
)
def test_malformed_chain_data_is_an_error_not_a_skip(entry: object) -> None:
    with pytest.raises(MalformedChainData):
        decode(entry)
