"""A block as the follower and the ledger speak of it: no I/O, so the ledger need not
import the chain adapter (a lower layer reaching up)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BlockRef:
    number: int
    hash: str
    parent_hash: str
    # Seconds since the epoch; 0 where unknown.
    timestamp: int = 0
