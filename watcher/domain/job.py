"""The provisioning job's states (the order's own states are in domain/order.py)."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"  #: waiting in the queue (in backoff until its available_at)
    CLAIMED = "claimed"  #: a worker holds it, renewing its claim with heartbeats
    DONE = "done"  #: nothing left to do for the order
    FAILED = "failed"  #: the order failed (and was refunded)


#: The states of a job that still has work: what "pending" means everywhere.
PENDING_JOB_STATES = (JobState.QUEUED.value, JobState.CLAIMED.value)


class JobKind(StrEnum):
    LAUNCH = "launch"  #: create the order's resource
    STOP = "stop"  #: a lease's paid time is over: stop its resource (disk kept)
    START = "start"  #: a lease extended in grace: start its resource again
    TERMINATE = "terminate"  #: a lease's grace is over, or it was cancelled: end it
