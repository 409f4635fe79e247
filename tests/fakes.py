"""FakeChain: an in-memory ChainSource for fast, deterministic follower tests.

It answers like the JSON-RPC adapter over a real node (tests/integration/
test_chain_source_contract.py runs the same checks against both), and adds what a real
node will not do on demand: reorgs of any depth, refused log ranges, failing calls.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from watcher.adapters.chain.rpc import RpcError
from watcher.adapters.chain.source import HeadTag
from watcher.domain.blocks import BlockRef
from watcher.domain.payment import TRANSFER_TOPIC, topic_for_address


def _hash(*parts: object) -> str:
    return "0x" + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


@dataclass
class FakeBlock:
    ref: BlockRef
    logs: list[dict[str, Any]] = field(default_factory=list)


class FakeChain:
    def __init__(
        self, chain_id: int = 1337, max_log_range: int | None = None, finality_depth: int = 0
    ) -> None:
        self._chain_id = chain_id
        self.max_log_range = max_log_range
        self.finality_depth = finality_depth
        self.blocks: list[FakeBlock] = [FakeBlock(BlockRef(0, _hash("genesis"), "0x" + "0" * 64))]
        self.fail_next: deque[Exception] = deque()
        self.calls: list[str] = []
        # Runs inside the next eth_getLogs, before it answers: to move the chain mid-step.
        self.during_logs: deque[Callable[[], None]] = deque()
        self._salt = 0
        self._tx = 0

    # --- making history ---

    def mine(self, transfers: list[tuple[str, str, str, int]] | None = None) -> BlockRef:
        """Mine a block with Transfer logs given as (token, sender, to, amount), one per tx."""
        parent = self.blocks[-1].ref
        number = parent.number + 1
        ref = BlockRef(
            number, _hash(number, parent.hash, self._salt), parent.hash, 1_700_000_000 + 12 * number
        )
        logs = []
        for index, (token, sender, to, amount) in enumerate(transfers or []):
            self._tx += 1
            logs.append(
                {
                    "address": token.lower(),
                    "topics": [TRANSFER_TOPIC, topic_for_address(sender), topic_for_address(to)],
                    "data": "0x" + hex(amount)[2:].rjust(64, "0"),
                    "blockNumber": hex(number),
                    "blockHash": ref.hash,
                    "transactionHash": _hash("tx", self._tx, self._salt),
                    "transactionIndex": hex(index),
                    "logIndex": hex(index),
                    "removed": False,
                }
            )
        self.blocks.append(FakeBlock(ref, logs))
        return ref

    def mine_empty(self, count: int) -> None:
        for _ in range(count):
            self.mine()

    def reorg(self, depth: int) -> None:
        """Drop the newest `depth` blocks; blocks mined next get different hashes."""
        del self.blocks[len(self.blocks) - depth :]
        self._salt += 1

    # --- ChainSource ---

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_next:
            raise self.fail_next.popleft()

    async def chain_id(self) -> int:
        self._enter("chain_id")
        return self._chain_id

    async def head(self, tag: HeadTag = "latest") -> int:
        self._enter("head")
        latest = self.blocks[-1].ref.number
        return latest if tag == "latest" else max(0, latest - self.finality_depth)

    async def block(self, number: int) -> BlockRef | None:
        self._enter("block")
        return self.blocks[number].ref if 0 <= number < len(self.blocks) else None

    async def logs(
        self, from_block: int, to_block: int, address: str, topics: list[str | None]
    ) -> list[dict[str, Any]]:
        self._enter("logs")
        if self.during_logs:
            self.during_logs.popleft()()
        if self.max_log_range is not None and to_block - from_block + 1 > self.max_log_range:
            raise RpcError(
                -32005,
                f"query returned more than 10000 results. Try with this block range [{hex(from_block)}, {hex(from_block + self.max_log_range - 1)}].",
            )
        found = []
        for block in self.blocks[from_block : to_block + 1]:
            for log in block.logs:
                if log["address"] != address.lower():
                    continue
                if all(
                    want is None or want.lower() == got.lower()
                    for want, got in zip(topics, log["topics"], strict=False)
                ):
                    found.append(dict(log))
        return found

    async def close(self) -> None:
        return None
