"""The Checkout contract (contracts/Checkout.sol): deploy it, and pay for a drafted order
through it with an EIP-2612 permit, so a buyer sends one transaction and approves nothing
beforehand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress
from web3.contract import AsyncContract

from watcher.adapters.chain.artifact import contract_artifact
from watcher.adapters.chain.connection import Chain, chain_errors, require_contract
from watcher.adapters.chain.signer import Signer
from watcher.adapters.chain.token import CloudToken, Deployment
from watcher.adapters.chain.transactions import MinedTransaction, send_transaction
from watcher.domain.amounts import format_amount
from watcher.domain.errors import ChainError, InsufficientFunds

# How long a permit stays usable: long enough for a slow wallet, short enough that a
# signature found later is worthless.
PERMIT_SECONDS = 3600


def permit_message(
    name: str,
    version: str,
    chain_id: int,
    token: str,
    owner: str,
    spender: str,
    value: int,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The EIP-712 message of an EIP-2612 permit, as a wallet signs it."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": token,
        },
        "message": {
            "owner": owner,
            "spender": spender,
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    }


@dataclass(frozen=True)
class CheckoutPayment:
    tx_hash: str
    block_number: int
    payer: ChecksumAddress
    reference: str
    amount: int


class Checkout:
    def __init__(self, chain: Chain, address: ChecksumAddress) -> None:
        self.chain = chain
        self.address = address
        self._abi = contract_artifact("Checkout").abi
        self._contract: AsyncContract = chain.w3.eth.contract(address=address, abi=self._abi)

    @classmethod
    async def at(cls, chain: Chain, address: ChecksumAddress, token: CloudToken) -> Checkout:
        """The Checkout at `address`, checked to pay with `token` (else ChainError)."""
        await require_contract(
            chain, address, "WATCHER_CHECKOUT_ADDRESS", "watcher checkout deploy"
        )
        checkout = cls(chain, address)
        with chain_errors(chain.url):
            pays_with = await checkout._contract.functions.token().call()
        if pays_with != token.address:
            raise ChainError(
                f"the Checkout at {address} pays with {pays_with}, not {token.address}"
            )
        return checkout

    @staticmethod
    async def deploy(
        chain: Chain, signer: Signer, token: ChecksumAddress, timeout: float
    ) -> Deployment:
        artifact = contract_artifact("Checkout")
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        mined = await send_transaction(
            chain, signer, factory.constructor(token), timeout, artifact.abi
        )
        assert mined.contract_address is not None
        return Deployment(
            address=chain.w3.to_checksum_address(mined.contract_address),
            chain_id=chain.chain_id,
            block_number=mined.block_number,
            tx_hash=mined.tx_hash,
        )

    async def pay_with_permit(
        self, signer: Signer, token: CloudToken, reference: str, amount: int, timeout: float
    ) -> CheckoutPayment:
        """Pay `amount` for the order `reference` in one transaction: a permit for exactly
        that amount, signed here, and `payWithPermit`."""
        balance = await token.balance_of(signer.address)
        if balance < amount:
            raise InsufficientFunds(
                f"not enough CTK: {signer.address} holds {format_amount(balance)} CTK and "
                f"this order costs {format_amount(amount)} CTK; nothing was sent"
            )
        w3 = self.chain.w3
        with chain_errors(self.chain.url):
            nonce = await token.permit_nonce(signer.address)
            name, version = await token.permit_domain()
            latest = await w3.eth.get_block("latest")
        deadline = int(latest["timestamp"]) + PERMIT_SECONDS
        v, r, s = signer.sign_typed(
            permit_message(
                name,
                version,
                self.chain.chain_id,
                token.address,
                signer.address,
                self.address,
                amount,
                nonce,
                deadline,
            )
        )
        call = self._contract.functions.payWithPermit(
            bytes.fromhex(reference.removeprefix("0x")), amount, deadline, v, r, s
        )
        mined: MinedTransaction = await send_transaction(
            self.chain, signer, call, timeout, self._abi + token.abi
        )
        return CheckoutPayment(mined.tx_hash, mined.block_number, signer.address, reference, amount)
