"""Driving the Hardhat dev chain from tests with plain web3 (independent of our adapters)."""

from __future__ import annotations

import json
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt

from tests.conftest import ROOT
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.domain.addresses import BURN_ADDRESS

CTK = 10**18


def artifact(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "contracts" / "build" / f"{name}.json").read_text())
    return data


class DevChainDriver:
    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.admin = dev_account(0)

    def send(self, account: LocalAccount, call: Any) -> TxReceipt:
        tx = call.build_transaction(
            {
                "from": account.address,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
            }
        )
        signed = account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1
        return receipt

    def signed(self, account: LocalAccount, call: Any) -> bytes:
        """A signed transaction, not sent: to send (and re-send after a reorg) by hand."""
        tx = call.build_transaction(
            {
                "from": account.address,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
            }
        )
        raw: bytes = account.sign_transaction(tx).raw_transaction
        return raw

    def deploy(self, name: str, *args: Any) -> Any:
        data = artifact(name)
        factory = self.w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
        receipt = self.send(self.admin, factory.constructor(*args))
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=data["abi"])

    def token(self) -> Any:
        return self.deploy("CloudToken")

    def fund(self, token: Any, account: LocalAccount, ctk: int) -> None:
        self.send(self.admin, token.functions.transfer(account.address, ctk * CTK))

    def pay(
        self, token: Any, account: LocalAccount, units: int, to: str = BURN_ADDRESS
    ) -> TxReceipt:
        return self.send(account, token.functions.transfer(to, units))

    def pay_many(
        self,
        token: Any,
        batcher: Any,
        account: LocalAccount,
        amounts: list[int],
        to: str = BURN_ADDRESS,
    ) -> TxReceipt:
        self.send(account, token.functions.approve(batcher.address, sum(amounts)))
        return self.send(account, batcher.functions.payMany(token.address, to, amounts))

    def snapshot(self) -> str:
        snapshot_id: str = self.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
        return snapshot_id

    def revert(self, snapshot_id: str) -> None:
        assert self.w3.provider.make_request("evm_revert", [snapshot_id])["result"] is True  # type: ignore[arg-type]

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    @property
    def head(self) -> int:
        return self.w3.eth.block_number
