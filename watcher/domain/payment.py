"""A payment: one ERC-20 Transfer log of the CTK contract into the burn address."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_typing import ChecksumAddress

from watcher.domain.addresses import to_checksum_address

# keccak("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
# Leading zeros are not canonical JSON-RPC, but some nodes send them.
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")


class MalformedChainData(ValueError):
    """The node returned a log or block that does not have the shape JSON-RPC promises."""


@dataclass(frozen=True, slots=True)
class PaymentKey:
    """What makes a payment unique: one log, wherever the same transaction carries several."""

    chain_id: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True, slots=True)
class Payment:
    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    payer: ChecksumAddress
    amount: int

    @property
    def key(self) -> PaymentKey:
        return PaymentKey(self.chain_id, self.tx_hash, self.log_index)


@lru_cache(maxsize=256)
def topic_for_address(address: str) -> str:
    """An address as a 32-byte indexed event topic."""
    return "0x" + address.lower().removeprefix("0x").rjust(64, "0")


def quantity(value: Any, what: str) -> int:
    """A JSON-RPC QUANTITY ("0x1a") as an int. Leading zeros, which some nodes send, pass."""
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise MalformedChainData(f"{what} is not a hex quantity: {value!r}")
    return int(value, 16)


def hash32(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise MalformedChainData(f"{what} is not a 32-byte hex hash: {value!r}")
    return value.lower()


def decode_payment(log: Any, chain_id: int, token: str, burn: str) -> Payment | None:
    """The payment a raw `eth_getLogs` entry carries, or None if it is not one.

    Not a payment: another contract's log, another event, an ERC-721 Transfer (4 topics),
    a transfer to any other address, a zero-value transfer, a log marked removed.
    Raises MalformedChainData for a log that does not have the shape JSON-RPC promises:
    a node sending garbage must be retried, never silently skipped.
    """
    if not isinstance(log, dict):
        raise MalformedChainData(f"log is not an object: {log!r}")
    address = log.get("address")
    topics = log.get("topics")
    if not isinstance(address, str) or not isinstance(topics, list):
        raise MalformedChainData(f"log lacks address or topics: {log!r}")
    if address.lower() != token.lower() or log.get("removed") is True:
        return None
    if len(topics) != 3 or not isinstance(topics[0], str) or topics[0].lower() != TRANSFER_TOPIC:
        return None
    sender_topic, to_topic = (hash32(t, "Transfer topic") for t in topics[1:])
    if to_topic != topic_for_address(burn):
        return None
    data = log.get("data")
    if not isinstance(data, str) or not _HEX32.fullmatch(data):
        raise MalformedChainData(f"Transfer data is not one 32-byte word: {data!r}")
    amount = int(data, 16)
    if amount == 0:
        return None
    return Payment(
        chain_id=chain_id,
        tx_hash=hash32(log.get("transactionHash"), "transactionHash"),
        log_index=quantity(log.get("logIndex"), "logIndex"),
        block_number=quantity(log.get("blockNumber"), "blockNumber"),
        block_hash=hash32(log.get("blockHash"), "blockHash"),
        payer=to_checksum_address("0x" + sender_topic[-40:]),
        amount=amount,
    )
