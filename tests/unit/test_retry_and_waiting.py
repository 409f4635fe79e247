"""One retry policy and one wait helper for every task (issue 9)."""

from __future__ import annotations

import asyncio
import random

from watcher.domain.backoff import Backoff, ProvisionRetry, RetryPolicy
from watcher.domain.provisioning import ErrorKind
from watcher.shared.waiting import pause, wait_any


def test_the_delay_is_full_jitter_under_a_capped_exponential_ceiling() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0)
    rng = random.Random(7)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0), (10**6, 8.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range


def test_backoff_counts_attempts_with_the_same_policy() -> None:
    backoff = Backoff(base=1.0, cap=4.0, rng=random.Random(1))
    policy, rng = RetryPolicy(1.0, 4.0), random.Random(1)
    assert [backoff.next_delay() for _ in range(5)] == [policy.delay(n, rng) for n in range(5)]
    backoff.reset()
    assert backoff.attempt == 0


def test_the_provisioning_decision_comes_from_the_recorded_attempts() -> None:
    retry = ProvisionRetry(RetryPolicy(1.0, 300.0), capacity_attempts=3)
    rng = random.Random(0)
    assert not retry.decide(ErrorKind.PERMANENT, 1, rng).retry
    assert retry.decide(ErrorKind.CAPACITY, 2, rng).retry
    assert not retry.decide(ErrorKind.CAPACITY, 3, rng).retry
    late = retry.decide(ErrorKind.RETRY, 1000, rng)
    assert late.retry and 0 <= late.delay <= 300.0


async def test_wait_any_returns_on_the_first_and_cancels_the_rest() -> None:
    first, never = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, first.set)
    before = len(asyncio.all_tasks())
    await wait_any(first.wait(), never.wait(), timeout=10)
    assert len(asyncio.all_tasks()) == before  # nothing left behind


async def test_pause_ends_early_when_stopped() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, stop.set)
    await asyncio.wait_for(pause(stop, 3600), timeout=5)
