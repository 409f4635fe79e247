import pytest

from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.provisioning import ErrorKind, classify_cloud_error, client_token, instance_tags


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("RequestLimitExceeded", 400, ErrorKind.RETRY),
        ("Throttling", 400, ErrorKind.RETRY),
        ("InternalError", 500, ErrorKind.RETRY),
        ("Unavailable", 503, ErrorKind.RETRY),
        ("SomethingNew", 502, ErrorKind.RETRY),  # any 5xx
        (None, None, ErrorKind.RETRY),  # no answer at all: timeout, refused connection
        ("InsufficientInstanceCapacity", 400, ErrorKind.CAPACITY),
        ("InstanceLimitExceeded", 400, ErrorKind.CAPACITY),
        ("InvalidAMIID.NotFound", 400, ErrorKind.PERMANENT),
        ("InvalidAMIID.Malformed", 400, ErrorKind.PERMANENT),
        ("IdempotentParameterMismatch", 400, ErrorKind.PERMANENT),
        ("UnauthorizedOperation", 403, ErrorKind.PERMANENT),
        ("InvalidKeyPair.NotFound", 400, ErrorKind.PERMANENT),
    ],
)
def test_cloud_errors_are_sorted_by_what_to_do(
    code: str | None, status: int | None, kind: ErrorKind
) -> None:
    assert classify_cloud_error(code, status) is kind


def test_client_token_is_deterministic_ascii_and_short() -> None:
    order_id = "0123456789abcdef0123456789abcdef"
    assert client_token(order_id) == client_token(order_id) == f"watcher-{order_id}"
    assert len(client_token(order_id)) <= 64
    with pytest.raises(ValueError, match="no valid ClientToken"):
        client_token("x" * 60)


def test_tags_tie_the_instance_to_its_payment() -> None:
    plan = ec2_plan("big", 42 * 10**18 + 5 * 10**17, "t3.large", "ami-0123456789abcdef0")
    tags = instance_tags("o" * 32, "0xPayer", "0xTx", plan)
    assert tags["AllocatedBy"] == "TokenSystem"
    assert tags["TokenCost"] == "42.5"
    assert (tags["PaidBy"], tags["PaymentTx"], tags["OrderId"]) == ("0xPayer", "0xTx", "o" * 32)
