"""The range splitter against error texts the major providers and node clients send."""

import random

import pytest

from watcher.domain.backoff import Backoff
from watcher.domain.ranges import RangeRefused, RangeSizer, classify_range_error

PROVIDER_ERRORS = [
    # (provider, code, message, requested blocks, expected hint)
    (
        "infura",
        -32005,
        "query returned more than 10000 results. Try with this block range [0x1, 0x2a].",
        5000,
        42,
    ),
    ("geth", -32005, "query returned more than 10000 results", 5000, None),
    (
        "alchemy",
        -32602,
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit "
        "on the response size, or you can request any block range with a cap of 10K logs in the response. Based "
        "on your parameters, this block range should work: [0x0, 0x4b7]",
        10000,
        1208,
    ),
    ("quicknode", -32614, "eth_getLogs is limited to a 10,000 range", 20000, 10000),
    ("quicknode-5", -32614, "eth_getLogs and eth_newFilter are limited to a 5 block range", 100, 5),
    ("blast", -32000, "range is too large, max is 1k blocks", 5000, 1000),
    ("nodereal", -32000, "exceed maximum block range: 5000", 10000, 5000),
    ("cloudflare", -32047, "Max range: 800", 2000, 800),
    ("chainstack", -32000, "Block range limit exceeded.", 10000, None),
    ("ankr", -32600, "block range is too wide", 10000, None),
    ("erigon", -32000, "query exceeds max block range 1000", 3000, 1000),
    ("besu", -32005, "Exceeded max range limit of 500 blocks", 2000, 500),
    ("llamarpc", -32000, "query exceeds max results 20000, retry with the range 1-200", 5000, None),
    (
        "alchemy-timeout",
        -32000,
        "Query timeout exceeded. Consider reducing your block range.",
        5000,
        None,
    ),
    ("generic", -32000, "block range too large", 5000, None),
    ("hardhat-like", None, "Too many logs requested", 5000, None),
    (
        "hint-too-big",
        -32005,
        "query returned more than 10000 results. Try with this block range [0x1, 0x1388].",
        10,
        9,
    ),
]


@pytest.mark.parametrize(
    ("provider", "code", "message", "requested", "hint"),
    PROVIDER_ERRORS,
    ids=[e[0] for e in PROVIDER_ERRORS],
)
def test_provider_errors_are_range_refusals(
    provider: str, code: int | None, message: str, requested: int, hint: int | None
) -> None:
    assert classify_range_error(code, message, requested) == RangeRefused(hint)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-32601, "the method eth_getLogs does not exist/is not available"),
        (-32602, "invalid argument 0: hex string without 0x prefix"),
        (3, "execution reverted"),
        (-32000, "header not found"),
    ],
)
def test_other_errors_are_not_range_refusals(code: int, message: str) -> None:
    assert classify_range_error(code, message, 1000) is None


def test_sizer_halves_without_hint_and_obeys_hints() -> None:
    sizer = RangeSizer(initial=1000, maximum=10_000)
    assert sizer.refused(RangeRefused(None), 1000)
    assert sizer.size == 500
    assert sizer.refused(RangeRefused(42), 500)
    assert sizer.size == 42
    assert sizer.refused(RangeRefused(5000), 42)  # a hint never grows the range
    assert sizer.size == 41


def test_sizer_cannot_split_a_single_block() -> None:
    sizer = RangeSizer(initial=1, maximum=10)
    assert not sizer.refused(RangeRefused(None), 1)


def test_sizer_grows_back_after_small_answers_up_to_the_maximum() -> None:
    sizer = RangeSizer(initial=100, maximum=350, grow_after=2, small_answer=50)
    sizer.answered(100, 10)
    assert sizer.size == 100
    sizer.answered(100, 10)
    assert sizer.size == 200
    sizer.answered(200, 10)
    sizer.answered(200, 5000)  # a big answer resets the streak
    sizer.answered(200, 10)
    assert sizer.size == 200
    sizer.answered(200, 10)
    assert sizer.size == 350
    for _ in range(10):
        sizer.answered(350, 0)
    assert sizer.size == 350


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert delays[0] <= 1.0 and delays[1] <= 2.0 and delays[2] <= 4.0
    assert max(delays[5:]) > 4.0  # grows to the cap, with jitter below it
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_sizer_shrinks_after_a_big_answer() -> None:
    sizer = RangeSizer(initial=1000, maximum=10_000, big_answer=10_000)
    sizer.answered(1000, 40_000)
    assert sizer.size == 125  # aims at half the big answer: 5,000 logs
    sizer.answered(1, 50_000)
    assert sizer.size == 125  # a single block cannot shrink
