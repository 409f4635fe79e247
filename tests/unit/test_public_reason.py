"""What anyone who names a payer reads about a failed launch: a code and plain words,
never the cloud's or the database's own text (watcher.domain.provisioning.public_reason)."""

from __future__ import annotations

import pytest

from watcher.domain import provisioning
from watcher.domain.provisioning import (
    CLOUD_SILENT,
    DATABASE_UNAVAILABLE,
    PROVISIONING_ERROR,
    public_reason,
)

INSTANCE = "i-0123456789abcdef0"


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [
        # cloud errors, as watcher/adapters/cloud/ec2.py's CloudError words them
        (
            "InsufficientInstanceCapacity: We currently do not have sufficient t3.micro "
            "capacity in the Availability Zone you requested (eu-west-1a).",
            "InsufficientInstanceCapacity: no capacity for this instance type right now",
        ),
        (
            "RequestLimitExceeded: Request limit exceeded.",
            "RequestLimitExceeded: the cloud is throttling requests",
        ),
        ("Unavailable: Service unavailable", "Unavailable: the cloud service is unavailable"),
        (
            "UnauthorizedOperation: You are not authorized to perform this operation. User: "
            "arn:aws:iam::123456789012:user/ops is not authorized to perform: ec2:RunInstances "
            "Encoded authorization failure message: 6Ay7B-Q4xQ0KfjPz3TCz9s1vZ",
            "UnauthorizedOperation: the operator's cloud account is not allowed to do this",
        ),
        (
            "InvalidSubnetID.NotFound: The subnet ID 'subnet-0abc' does not exist",
            "InvalidSubnetID.NotFound: the plan's settings are not valid in the cloud",
        ),
        (
            "VcpuLimitExceeded: You have requested more vCPU capacity than your current limit",
            "VcpuLimitExceeded: the cloud account's instance limit is reached",
        ),
        # a code we have no words for: the code, and general words
        (
            "DryRunOperation: Request would have succeeded for account 123456789012",
            "DryRunOperation: the cloud refused the request",
        ),
        # no answer at all: the endpoint's URL (and any credential in it) is not shown
        (
            'no answer: EndpointConnectionError: Could not connect to the endpoint URL: "http://'
            '***:***@ec2.internal.example:4566/"',
            CLOUD_SILENT,
        ),
        ("no answer: ConnectTimeoutError: Connect timeout on endpoint URL", CLOUD_SILENT),
        ("no answer: TimeoutError: ", CLOUD_SILENT),
        (
            "no answer: NoCredentialsError: Unable to locate credentials",
            "the operator's cloud credentials are missing",
        ),
        # the database, as the provisioner records a blip
        (
            'database: connection to server at "db.internal" (10.1.2.3), port 5432 failed',
            DATABASE_UNAVAILABLE,
        ),
        # the provisioner's own texts, which quote nothing foreign
        (
            "payment orphaned by a reorg: waiting for it to be mined again before launching",
            "payment orphaned by a reorg: waiting for it to be mined again before launching",
        ),
        (f"instance {INSTANCE} pending", f"instance {INSTANCE} pending"),
        (f"instance {INSTANCE} not found yet", f"instance {INSTANCE} not found yet"),
        (
            f"instance {INSTANCE} terminated before it ran: Server.InsufficientInstanceCapacity",
            f"instance {INSTANCE} terminated before it ran: Server.InsufficientInstanceCapacity",
        ),
        (
            f"instance {INSTANCE} terminated: Client.UserInitiatedShutdown",
            f"instance {INSTANCE} terminated: Client.UserInitiatedShutdown",
        ),
        (
            f"instance {INSTANCE} was not found in 3 look-ups over 31 s, nor by its OrderId tag",
            f"instance {INSTANCE} was not found in 3 look-ups over 31 s, nor by its OrderId tag",
        ),
        # anything else: nothing of it
        ("no answer: the endpoint lists no Amazon images", PROVISIONING_ERROR),
        ("Traceback (most recent call last): File /srv/watcher/x.py", PROVISIONING_ERROR),
        (f"instance {INSTANCE} pending: see https://h/?key=s3cret", PROVISIONING_ERROR),
        ("", PROVISIONING_ERROR),
        (None, None),
    ],
)
def test_public_reason(recorded: str | None, shown: str | None) -> None:
    assert public_reason(recorded) == shown


@pytest.mark.parametrize(
    "code",
    sorted(provisioning._RETRY_CODES | provisioning._CAPACITY_CODES),
)
def test_every_retried_or_capacity_code_has_words_of_its_own(code: str) -> None:
    shown = public_reason(f"{code}: whatever the cloud said")
    assert shown is not None and shown.startswith(f"{code}: ")
    assert "refused" not in shown and "whatever" not in shown
