"""Provisioning rules with no I/O: idempotency tokens, instance tags, what to do about
an error from the cloud, and how to tell a payer why provisioning failed."""

from __future__ import annotations

import re
from enum import StrEnum

from watcher.domain.amounts import format_amount
from watcher.domain.pricing import Plan


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


def instance_tags(order_id: str, payer: str, tx_hash: str | None, plan: Plan) -> dict[str, str]:
    """Every instance is tagged back to the payment that bought it (and as in the thesis);
    one its owner bought from credit says so."""
    return {
        "AllocatedBy": "TokenSystem",
        "TokenCost": format_amount(plan.price),
        "PaidBy": payer,
        "PaymentTx": tx_hash or "credit",
        "OrderId": order_id,
        "Name": f"watcher-{order_id[:12]}",
    }


# --- why provisioning failed, in words a payer may read ---
#
# An order's last error and failure reason are kept as the cloud, the database or the
# provisioner worded them: the operator needs every detail (`watcher orders`). The API
# answers anyone who names a payer address, and those texts carry the operator's account
# id, IAM ARNs, encoded authorization messages, internal host names. `public_reason`
# reduces them to an error code and a class in plain words.

PROVISIONING_ERROR = "provisioning error (the operator sees the details)"
CLOUD_SILENT = "the cloud did not answer"
DATABASE_UNAVAILABLE = "database unavailable"

_CAPACITY_WORDS = "no capacity for this instance type right now"
_LIMIT_WORDS = "the cloud account's instance limit is reached"
_THROTTLED_WORDS = "the cloud is throttling requests"
_CLOUD_BUSY_WORDS = "the cloud is busy right now"
_DENIED_WORDS = "the operator's cloud account is not allowed to do this"
_INVALID_WORDS = "the plan's settings are not valid in the cloud"
_REFUSED_WORDS = "the cloud refused the request"
# Plain words for the codes of the lists above (every one of them has words, a unit test
# checks it) and the permanent codes a payer is likely to meet.
_PLAIN_WORDS = {
    "InsufficientInstanceCapacity": _CAPACITY_WORDS,
    "InsufficientCapacity": _CAPACITY_WORDS,
    "InsufficientHostCapacity": _CAPACITY_WORDS,
    "InsufficientReservedInstanceCapacity": _CAPACITY_WORDS,
    "InstanceLimitExceeded": _LIMIT_WORDS,
    "VcpuLimitExceeded": _LIMIT_WORDS,
    "MaxSpotInstanceCountExceeded": _LIMIT_WORDS,
    "Throttling": _THROTTLED_WORDS,
    "ThrottlingException": _THROTTLED_WORDS,
    "RequestLimitExceeded": _THROTTLED_WORDS,
    "EC2ThrottledException": _THROTTLED_WORDS,
    "SlowDown": _THROTTLED_WORDS,
    "InternalError": "the cloud had an internal error",
    "InternalFailure": "the cloud had an internal error",
    "ServiceUnavailable": "the cloud service is unavailable",
    "Unavailable": "the cloud service is unavailable",
    "RequestTimeout": "the cloud did not answer in time",
    "RequestTimeoutException": "the cloud did not answer in time",
    "PriorRequestNotComplete": "the cloud is still busy with an earlier request",
    "UnauthorizedOperation": _DENIED_WORDS,
    "AuthFailure": _DENIED_WORDS,
    "AccessDenied": _DENIED_WORDS,
    "AccessDeniedException": _DENIED_WORDS,
    "InvalidClientTokenId": _DENIED_WORDS,
    "SignatureDoesNotMatch": _DENIED_WORDS,
    "UnrecognizedClientException": _DENIED_WORDS,
    "ExpiredToken": _DENIED_WORDS,
    "RequestExpired": _DENIED_WORDS,
    "OptInRequired": _DENIED_WORDS,
    "PendingVerification": _DENIED_WORDS,
    "Blocked": _DENIED_WORDS,
    "Unsupported": "this instance type is not offered there",
}
# An AWS error code: `InsufficientInstanceCapacity`, `InvalidAMIID.NotFound`.
_AWS_CODE = re.compile(r"[A-Z][A-Za-z0-9]{1,63}(?:\.[A-Za-z0-9]{1,63}){0,3}")
_INSTANCE = r"i-[0-9a-f]{8,17}"
# The provisioner's own texts, which quote nothing but an instance id, its state, an EC2
# state-reason code and counts: shown as they are.
_OWN_TEXTS = (
    # released while the instance starts: "instance i-0abc pending", "... not found yet"
    re.compile(rf"instance {_INSTANCE} [a-z][a-z -]{{0,30}}"),
    # ended: "instance i-0abc terminated before it ran: Server.InsufficientInstanceCapacity"
    re.compile(rf"instance {_INSTANCE} [a-z-]{{1,30}}(?: before it ran)?: {_AWS_CODE.pattern}"),
    re.compile(rf"instance {_INSTANCE} [a-z-]{{1,30}}(?: before it ran)?: unknown"),
    re.compile(
        rf"instance {_INSTANCE} was not found in \d{{1,6}} look-ups over \d{{1,9}} s, "
        "nor by its OrderId tag"
    ),
)
_OWN_PREFIXES = {
    # watcher/services/provisioner.py's UNFUNDED
    "payment orphaned by a reorg": (
        "payment orphaned by a reorg: waiting for it to be mined again before launching"
    ),
    "worker stopped": "the watcher was stopping; it goes on where it left off",
    # watcher/services/provisioner.py writes "database: <the driver's message>"
    "database:": DATABASE_UNAVAILABLE,
}
# How botocore and aiohttp name a failure with no answer ("no answer: <Name>: ...").
_NO_ANSWER = re.compile(r"no answer: ([A-Za-z][A-Za-z0-9_]*(?:Error|Exception|Timeout))\b")


def cloud_error_words(code: str) -> str:
    """`code` and what it means, for a payer: "RequestLimitExceeded: the cloud is
    throttling requests"; a code without words of its own: "the cloud refused the
    request"."""
    words = _PLAIN_WORDS.get(code)
    if words is None and code.startswith("Invalid"):
        words = _INVALID_WORDS
    if words is None and code in _RETRY_CODES:
        words = _CLOUD_BUSY_WORDS
    if words is None and code in _CAPACITY_CODES:
        words = _CAPACITY_WORDS
    return f"{code}: {words or _REFUSED_WORDS}"


def public_reason(text: str | None) -> str | None:
    """Why an order's provisioning failed (an order's `last_error` or `failure_reason`,
    as recorded), reduced to what anyone may read: the provisioner's own texts as they
    are; a cloud error as its code and a class in plain words; "database unavailable";
    otherwise PROVISIONING_ERROR. Nothing else of the recorded text comes through."""
    if text is None:
        return None
    text = text.strip()
    for pattern in _OWN_TEXTS:
        if pattern.fullmatch(text):
            return text
    for prefix, shown in _OWN_PREFIXES.items():
        if text.startswith(prefix):
            return shown
    # A CloudError: "<code>: <message>", or "no answer: <what failed>"
    # (watcher/adapters/cloud/ec2.py)
    silent = _NO_ANSWER.match(text)
    if silent is not None:
        if "Credential" in silent.group(1):
            return "the operator's cloud credentials are missing"
        return CLOUD_SILENT
    code, colon, _ = text.partition(":")
    if colon and _AWS_CODE.fullmatch(code):
        return cloud_error_words(code)
    return PROVISIONING_ERROR
