"""Capped exponential backoff with full jitter (AWS architecture blog's "Full Jitter")."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.25
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """Sleep a random time in [0, min(cap, base * 2**attempt)], then count the attempt."""
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt, 62))
        self.attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
