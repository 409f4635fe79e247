"""Adaptive `eth_getLogs` ranges: shrink when a provider refuses a range, grow back when
answers are small. After Chainlink's log poller, plus the hints providers put in errors."""

from __future__ import annotations

import re
from dataclasses import dataclass

# "Try with this block range [0x1, 0x2]" (Infura, Alchemy, and nodes copying them).
_SUGGESTED_RANGE = re.compile(r"\[\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\]")
# "max is 1k", "maximum block range: 5000", "limited to a 10,000 range", "up to a 2K block
# range", "max range: 800", "exceeds max block range 3000", "block range limit (2000)".
_MAX_BLOCKS = re.compile(
    r"(?:max(?:imum)?(?: block)?(?: range)?(?: is| of|:)?|limited to(?: a)?|up to(?: a)?|"
    r"range limit(?: of)?|block range limit)\s*\(?\s*(\d[\d,_]*)\s*([kK])?\b",
    re.IGNORECASE,
)
_RANGE_WORDS = (
    "more than",
    "too large",
    "too big",
    "too wide",
    "too many",
    "exceed",
    "limit",
    "response size",
    "range",
    "timeout",
    "timed out",
)
LIMIT_EXCEEDED = -32005


@dataclass(frozen=True, slots=True)
class RangeRefused:
    """A provider refused a log range; `max_blocks` is its hint of a size it accepts."""

    max_blocks: int | None


def classify_range_error(
    code: int | None, message: str, requested_blocks: int
) -> RangeRefused | None:
    """Whether an RPC error means "ask for fewer blocks", and how many to ask for."""
    text = message.lower()
    if code != LIMIT_EXCEEDED and not any(word in text for word in _RANGE_WORDS):
        return None
    if not (
        "log" in text
        or "range" in text
        or "block" in text
        or "result" in text
        or code == LIMIT_EXCEEDED
    ):
        return None
    suggested = _SUGGESTED_RANGE.search(message)
    if suggested:
        low, high = (int(x, 0) for x in suggested.groups())
        if high >= low:
            return RangeRefused(min(high - low + 1, max(requested_blocks - 1, 1)))
    limit = _MAX_BLOCKS.search(message)
    if limit:
        number = int(limit.group(1).replace(",", "").replace("_", ""))
        if limit.group(2):
            number *= 1000
        if number > 0:
            return RangeRefused(min(number, max(requested_blocks - 1, 1)))
    return RangeRefused(None)


class RangeSizer:
    """How many blocks the next `eth_getLogs` asks for."""

    def __init__(
        self,
        initial: int,
        maximum: int,
        grow_after: int = 3,
        small_answer: int = 2_000,
        big_answer: int = 10_000,
    ) -> None:
        if not 1 <= initial <= maximum:
            raise ValueError("need 1 <= initial <= maximum")
        self.size = initial
        self.maximum = maximum
        self._grow_after = grow_after
        self._small_answer = small_answer
        self._big_answer = big_answer
        self._small_streak = 0

    def refused(self, refusal: RangeRefused, requested_blocks: int) -> bool:
        """Shrink after a refusal. False when already down to a single block: nothing to split."""
        if requested_blocks <= 1:
            return False
        hint = refusal.max_blocks
        self.size = max(
            1, min(hint if hint is not None else requested_blocks // 2, requested_blocks - 1)
        )
        self._small_streak = 0
        return True

    def answered(self, requested_blocks: int, results: int) -> None:
        """Grow (double, up to the maximum) after a few full-size answers that were small;
        shrink after a big one, so each range stays a bite the ledger writes in one go
        (and the next range can be read while it does)."""
        if results > self._big_answer and requested_blocks > 1:
            target = self._big_answer // 2
            self.size = max(1, min(self.size, requested_blocks * target // results))
            self._small_streak = 0
            return
        if results >= self._small_answer or requested_blocks < self.size:
            self._small_streak = 0
            return
        self._small_streak += 1
        if self._small_streak >= self._grow_after and self.size < self.maximum:
            self.size = min(self.maximum, self.size * 2)
            self._small_streak = 0
