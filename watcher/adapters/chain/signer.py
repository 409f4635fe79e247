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

    def sign_text(self, text: str) -> str:
        """EIP-191 personal_sign of `text` (a sign-in message), as 0x-hex."""
        from eth_account.messages import encode_defunct

        signature = self._account.sign_message(encode_defunct(text=text)).signature
        return "0x" + bytes(signature).hex()

    def sign_typed(self, typed: dict[str, Any]) -> tuple[int, bytes, bytes]:
        """EIP-712 signature of `typed` (a permit) as (v, r, s)."""
        from eth_account.messages import encode_typed_data

        signed = self._account.sign_message(encode_typed_data(full_message=typed))
        return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

    def __repr__(self) -> str:
        return f"Signer({self.address}, from {self.source})"
