"""Retrying: capped exponential backoff with full jitter (AWS architecture blog's "Full
Jitter"), and the provisioner's retry decision. One formula for every retry in the
service: the RPC node, the database, the MQTT broker, the cloud."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from watcher.domain.provisioning import ErrorKind


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 0.25
    cap: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A random time in [0, min(cap, base * 2**attempt)] before retry number
        `attempt` + 1 (attempt 0 is the first retry)."""
        ceiling = min(self.cap, self.base * 2 ** min(max(attempt, 0), 62))
        return rng.uniform(0, ceiling)


@dataclass
class Backoff:
    """A RetryPolicy with its own attempt counter, for loops that keep no record."""

    base: float = 0.25
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """Sleep a random time in [0, min(cap, base * 2**attempt)], then count the attempt."""
        delay = RetryPolicy(self.base, self.cap).delay(self.attempt, self.rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0


@dataclass(frozen=True)
class ProvisionRetry:
    """What to do after a cloud error, from the attempts the job has recorded (so a
    restarted worker decides as the one that died would have, after procrastinate's
    RetryStrategy): permanent errors end the order; capacity errors are retried
    `capacity_attempts` times in all; the rest for as long as it takes."""

    policy: RetryPolicy = field(default_factory=lambda: RetryPolicy(base=1.0, cap=300.0))
    capacity_attempts: int = 5

    def decide(self, kind: ErrorKind, attempts: int, rng: random.Random) -> RetryDecision:
        if kind is ErrorKind.PERMANENT or (
            kind is ErrorKind.CAPACITY and attempts >= self.capacity_attempts
        ):
            return RetryDecision(retry=False)
        return RetryDecision(retry=True, delay=self.policy.delay(attempts - 1, rng))
