"""Order states. The provisioning phases are recorded, after Stripe's idempotency keys:
queued -> launching -> launched (instance id stored) -> running, or failed (refunded), or
terminated (its instance was ended outside the watcher: not refunded, it was delivered)."""

from __future__ import annotations

from enum import StrEnum


class OrderState(StrEnum):
    QUEUED = "queued"
    LAUNCHING = "launching"
    LAUNCHED = "launched"
    RUNNING = "running"
    FAILED = "failed"
    TERMINATED = "terminated"

    @property
    def holds_resource(self) -> bool:
        """Whether a resource of the order's may exist now (its price is spent on it)."""
        return self in (OrderState.LAUNCHING, OrderState.LAUNCHED, OrderState.RUNNING)
