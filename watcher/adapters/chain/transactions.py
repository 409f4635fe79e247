"""Building, signing, sending and confirming a transaction from a local Signer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_typing import HexStr
from eth_utils.abi import function_signature_to_4byte_selector
from hexbytes import HexBytes
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from watcher.adapters.chain.connection import Chain, chain_errors
from watcher.adapters.chain.signer import Signer
from watcher.domain.addresses import to_checksum_address
from watcher.domain.amounts import format_amount
from watcher.domain.errors import ChainError, InsufficientFunds


@dataclass(frozen=True)
class MinedTransaction:
    tx_hash: str
    block_number: int
    gas_used: int
    contract_address: str | None
    # The receipt's logs, for a caller that decodes its contracts' events.
    logs: tuple[Any, ...] = ()


async def send_transaction(
    chain: Chain, signer: Signer, prepared: Any, timeout: float, abi: list[dict[str, Any]]
) -> MinedTransaction:
    """Send a prepared contract call or constructor and wait until it is mined.

    Gas estimation runs the call first: a call that would revert is refused here, with the
    contract's reason decoded, and nothing reaches the network.
    """
    w3 = chain.w3
    with chain_errors(chain.url):
        try:
            tx = await prepared.build_transaction(
                {
                    "from": signer.address,
                    "chainId": chain.chain_id,
                    "nonce": await w3.eth.get_transaction_count(signer.address, "pending"),
                }
            )
        except (ContractCustomError, ContractLogicError, ContractPanicError) as exc:
            raise ChainError(
                f"the contract refused the transaction: {revert_reason(exc, abi)}"
            ) from None
        await _require_gas_money(chain, signer, tx)
        signed = signer.sign_transaction(tx)
        tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    hex_hash = HexBytes(tx_hash).to_0x_hex()
    if receipt["status"] != 1:
        raise ChainError(f"transaction {hex_hash} was mined but reverted")
    contract = receipt.get("contractAddress")
    return MinedTransaction(
        tx_hash=hex_hash,
        block_number=receipt["blockNumber"],
        gas_used=receipt["gasUsed"],
        contract_address=str(contract) if contract else None,
        logs=tuple(receipt["logs"]),
    )


async def _require_gas_money(chain: Chain, signer: Signer, tx: dict[str, Any]) -> None:
    fee_per_gas = tx.get("maxFeePerGas", tx.get("gasPrice", 0))
    needed = int(tx["gas"]) * int(fee_per_gas) + int(tx.get("value", 0))
    have = await chain.w3.eth.get_balance(signer.address)
    if have < needed:
        raise InsufficientFunds(
            f"{signer.address} has {format_amount(have)} ETH for gas; this transaction may need "
            f"up to {format_amount(needed)} ETH; nothing was sent"
        )


def revert_reason(exc: Exception, abi: list[dict[str, Any]]) -> str:
    """Name a custom error (OpenZeppelin 5 and the market's contracts revert with these)
    with its decoded arguments, e.g. `BidNotBetter(worstStanding=5, increment=1)`."""
    data = getattr(exc, "data", None)
    # Geth puts the revert data here as hex; Hardhat nests it as {"message", "data"}.
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        raw = bytes.fromhex(HexStr(data[2:]))
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [arg["type"] for arg in item["inputs"]]
            signature = f"{item['name']}({','.join(types)})"
            if function_signature_to_4byte_selector(signature) == raw[:4]:
                values = [
                    to_checksum_address(value) if kind == "address" else value
                    for kind, value in zip(types, abi_decode(types, raw[4:]), strict=True)
                ]
                args = ", ".join(
                    f"{arg['name']}={value}"
                    for arg, value in zip(item["inputs"], values, strict=True)
                )
                return f"{item['name']}({args})"
    message = getattr(exc, "message", None) or str(exc)
    return str(message).splitlines()[0]
