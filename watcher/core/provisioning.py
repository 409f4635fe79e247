"""Provisioning rules with no I/O: idempotency tokens, instance tags, and what to do about
an error from the cloud."""

from __future__ import annotations

from enum import StrEnum

from watcher.amounts import format_amount
from watcher.core.pricing import Plan


class ErrorKind(StrEnum):
    RETRY = "retry"  # throttling, 5xx, timeouts: try again after a backoff, for as long as it takes
    CAPACITY = "capacity"  # no capacity now: try again, a bounded number of times
    PERMANENT = "permanent"  # trying again cannot help: fail the order and refund it


_RETRY_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "EC2ThrottledException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "SlowDown",
    }
)
_CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "MaxSpotInstanceCountExceeded",
    }
)


def classify_cloud_error(code: str | None, http_status: int | None) -> ErrorKind:
    """`code` is the AWS error code (None for a transport failure: no answer at all)."""
    if code is None:
        return ErrorKind.RETRY
    if code in _RETRY_CODES or (http_status is not None and http_status >= 500):
        return ErrorKind.RETRY
    if code in _CAPACITY_CODES:
        return ErrorKind.CAPACITY
    return ErrorKind.PERMANENT


def client_token(order_id: str) -> str:
    """EC2's idempotency key for the order's RunInstances: ASCII, at most 64 characters."""
    token = f"watcher-{order_id}"
    if len(token) > 64 or not token.isascii():
        raise ValueError(f"order id {order_id!r} makes no valid ClientToken")
    return token


def instance_tags(order_id: str, payer: str, tx_hash: str, plan: Plan) -> dict[str, str]:
    """Every instance is tagged back to the payment that bought it (and as in the thesis)."""
    return {
        "AllocatedBy": "TokenSystem",
        "TokenCost": format_amount(plan.price),
        "PaidBy": payer,
        "PaymentTx": tx_hash,
        "OrderId": order_id,
        "Name": f"watcher-{order_id[:12]}",
    }
