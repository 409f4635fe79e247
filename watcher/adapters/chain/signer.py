"""A key that signs transactions, for the chain adapters. Where the key comes from (the
settings, a keystore, a dev account) is watcher/runtime/keys.py's business: this module knows no
settings, so the chain layer does not reach up into the configuration."""

from __future__ import annotations

from typing import Any

from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress


class Signer:
    """Signs transactions for one address. Its repr shows the address only."""

    __slots__ = ("_account", "source")

    def __init__(self, account: LocalAccount, source: str) -> None:
        self._account = account
        self.source = source

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address

    def sign_transaction(self, transaction: dict[str, Any]) -> SignedTransaction:
        return self._account.sign_transaction(transaction)

    def __repr__(self) -> str:
        return f"Signer({self.address}, from {self.source})"
