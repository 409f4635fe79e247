"""The CloudToken (CTK) contract: deploy it, read balances, send transfers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress
from web3.contract import AsyncContract

from watcher.adapters.chain.artifact import cloud_token_artifact
from watcher.adapters.chain.connection import Chain, chain_errors, require_contract
from watcher.adapters.chain.signer import Signer
from watcher.adapters.chain.transactions import MinedTransaction, send_transaction
from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.amounts import format_amount
from watcher.domain.errors import InsufficientFunds


@dataclass(frozen=True)
class Deployment:
    address: ChecksumAddress
    chain_id: int
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class Transfer:
    tx_hash: str
    block_number: int
    sender: ChecksumAddress
    to: ChecksumAddress
    amount: int


class CloudToken:
    """A CTK contract on one chain. Build it with `CloudToken.at`, which checks there is
    a contract at the address, so a wrong address fails before any transaction."""

    def __init__(self, chain: Chain, address: ChecksumAddress) -> None:
        self.chain = chain
        self.address = address
        artifact = cloud_token_artifact()
        self._abi = artifact.abi
        self._contract: AsyncContract = chain.w3.eth.contract(address=address, abi=artifact.abi)

    @classmethod
    async def at(cls, chain: Chain, address: ChecksumAddress) -> CloudToken:
        await require_contract(chain, address, "WATCHER_TOKEN_ADDRESS", "watcher token deploy")
        return cls(chain, address)

    @staticmethod
    async def deploy(chain: Chain, signer: Signer, timeout: float) -> Deployment:
        artifact = cloud_token_artifact()
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        mined = await send_transaction(chain, signer, factory.constructor(), timeout, artifact.abi)
        assert mined.contract_address is not None
        return Deployment(
            address=chain.w3.to_checksum_address(mined.contract_address),
            chain_id=chain.chain_id,
            block_number=mined.block_number,
            tx_hash=mined.tx_hash,
        )

    @property
    def abi(self) -> list[dict[str, Any]]:
        return self._abi

    async def permit_nonce(self, owner: ChecksumAddress) -> int:
        """The owner's next EIP-2612 permit nonce."""
        with chain_errors(self.chain.url):
            nonce: int = await self._contract.functions.nonces(owner).call()
        return nonce

    async def permit_domain(self) -> tuple[str, str]:
        """The token's EIP-712 name and version (EIP-5267 `eip712Domain`), for permits."""
        with chain_errors(self.chain.url):
            domain = await self._contract.functions.eip712Domain().call()
        return str(domain[1]), str(domain[2])

    async def balance_of(self, owner: ChecksumAddress) -> int:
        with chain_errors(self.chain.url):
            balance: int = await self._contract.functions.balanceOf(owner).call()
        return balance

    async def allowance(self, owner: ChecksumAddress, spender: ChecksumAddress) -> int:
        with chain_errors(self.chain.url):
            value: int = await self._contract.functions.allowance(owner, spender).call()
        return value

    async def approve(
        self, signer: Signer, spender: ChecksumAddress, amount: int, timeout: float
    ) -> MinedTransaction:
        """Let `spender` move exactly `amount` of the signer's CTK (replacing any earlier
        allowance)."""
        call = self._contract.functions.approve(spender, amount)
        return await send_transaction(self.chain, signer, call, timeout, self._abi)

    async def transfer(
        self, signer: Signer, to: ChecksumAddress, amount: int, timeout: float
    ) -> Transfer:
        """Send `amount` base units to `to`, refusing up front when the balance is short."""
        balance = await self.balance_of(signer.address)
        if balance < amount:
            raise InsufficientFunds(
                f"not enough CTK: {signer.address} holds {format_amount(balance)} CTK and "
                f"this needs {format_amount(amount)} CTK; nothing was sent"
            )
        mined: MinedTransaction = await send_transaction(
            self.chain, signer, self._contract.functions.transfer(to, amount), timeout, self._abi
        )
        return Transfer(
            tx_hash=mined.tx_hash,
            block_number=mined.block_number,
            sender=signer.address,
            to=to,
            amount=amount,
        )

    async def pay(self, signer: Signer, amount: int, timeout: float) -> Transfer:
        """A payment is a plain transfer to the burn address, as any wallet would send it."""
        return await self.transfer(signer, BURN_ADDRESS, amount, timeout)
