"""Where the follower reads the chain from: a small Protocol, its JSON-RPC adapter, and the
block reference both speak in."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from watcher.adapters.chain.rpc import RpcError, RpcTransport
from watcher.domain.addresses import to_checksum_address
from watcher.domain.blocks import BlockRef
from watcher.domain.payment import MalformedChainData, hash32, quantity

HeadTag = Literal["latest", "safe", "finalized"]


class ChainSource(Protocol):
    async def chain_id(self) -> int: ...

    async def head(self, tag: HeadTag = "latest") -> int:
        """The number of the newest block with this tag."""
        ...

    async def block(self, number: int) -> BlockRef | None:
        """The canonical block at `number`, or None above the head."""
        ...

    async def logs(
        self, from_block: int, to_block: int, address: str, topics: list[str | None]
    ) -> list[dict[str, Any]]:
        """Raw `eth_getLogs` entries, in chain order."""
        ...

    async def close(self) -> None: ...


class RpcChainSource:
    def __init__(self, transport: RpcTransport) -> None:
        self.transport = transport

    @property
    def url(self) -> str:
        return self.transport.url

    async def chain_id(self) -> int:
        return quantity(await self.transport.call("eth_chainId", []), "eth_chainId")

    async def head(self, tag: HeadTag = "latest") -> int:
        if tag == "latest":
            return quantity(await self.transport.call("eth_blockNumber", []), "eth_blockNumber")
        block = await self.transport.call("eth_getBlockByNumber", [tag, False])
        if block is None:
            raise MalformedChainData(f"the node has no {tag!r} block")
        return _block_ref(block).number

    async def block(self, number: int) -> BlockRef | None:
        block = await self.transport.call("eth_getBlockByNumber", [hex(number), False])
        if block is None:
            return None
        ref = _block_ref(block)
        if ref.number != number:
            raise MalformedChainData(f"asked for block {number}, the node sent block {ref.number}")
        return ref

    async def logs(
        self, from_block: int, to_block: int, address: str, topics: list[str | None]
    ) -> list[dict[str, Any]]:
        result = await self.transport.call(
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(from_block),
                    "toBlock": hex(to_block),
                    "address": address,
                    "topics": topics,
                }
            ],
        )
        if not isinstance(result, list):
            raise MalformedChainData(f"eth_getLogs answered {type(result).__name__}, not a list")
        return result

    async def has_code(self, address: str) -> bool:
        """Whether a contract is deployed at `address` (at the latest block)."""
        code = await self.transport.call("eth_getCode", [address, "latest"])
        if not isinstance(code, str) or not code.startswith("0x"):
            raise MalformedChainData(f"eth_getCode answered {code!r}")
        return code not in ("0x", "0x0")

    async def checkout_token(self, checkout: str) -> str | None:
        """The token a Checkout contract pays with (its `token()`), None when no contract
        at `checkout` answers it."""
        if not await self.has_code(checkout):
            return None
        try:
            result = await self.transport.call(
                "eth_call", [{"to": checkout, "data": "0xfc0c546a"}, "latest"]
            )
        except RpcError:
            return None  # no such function: not a Checkout
        if not isinstance(result, str) or len(result) != 66:
            return None
        return to_checksum_address("0x" + result[-40:])

    async def token_balance(self, token: str, owner: str) -> int:
        """ERC-20 balanceOf(owner) at the latest block."""
        data = "0x70a08231" + owner.lower().removeprefix("0x").rjust(64, "0")
        result = await self.transport.call("eth_call", [{"to": token, "data": data}, "latest"])
        return quantity(result if result != "0x" else "0x0", "balanceOf result")

    async def close(self) -> None:
        await self.transport.close()


def _block_ref(block: Any) -> BlockRef:
    if not isinstance(block, dict):
        raise MalformedChainData(f"block is not an object: {block!r}")
    return BlockRef(
        number=quantity(block.get("number"), "block number"),
        hash=hash32(block.get("hash"), "block hash"),
        parent_hash=hash32(block.get("parentHash"), "parent hash"),
        timestamp=quantity(block.get("timestamp"), "block timestamp"),
    )
