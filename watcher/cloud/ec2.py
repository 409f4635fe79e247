"""EC2 through aioboto3: launch an order's instance, find it by tag, read its state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from watcher.core.pricing import Plan
from watcher.core.provisioning import ErrorKind, classify_cloud_error
from watcher.errors import ConfigError


@dataclass(frozen=True)
class Instance:
    instance_id: str
    state: str
    instance_type: str
    launched_at: datetime | None


@dataclass(frozen=True)
class LaunchRequest:
    order_id: str
    client_token: str
    plan: Plan
    tags: dict[str, str]


class CloudError(Exception):
    def __init__(self, kind: ErrorKind, code: str | None, message: str) -> None:
        super().__init__(f"{code or 'no answer'}: {message}")
        self.kind = kind
        self.code = code
        self.message = message


class NoCredentials(ConfigError):
    """The standard AWS credential chain found nothing."""


class Cloud(Protocol):
    async def find_instance(self, order_id: str) -> Instance | None: ...

    async def launch(self, request: LaunchRequest) -> Instance: ...

    async def describe(self, instance_id: str) -> Instance | None: ...


class Ec2Cloud:
    """One EC2 client, used by every worker of the process."""

    def __init__(self, client: Any) -> None:
        self._ec2 = client

    async def find_instance(self, order_id: str) -> Instance | None:
        """The order's instance, if one was launched (terminated ones do not count)."""
        answer = await self._call(
            self._ec2.describe_instances,
            Filters=[
                {"Name": "tag:OrderId", "Values": [order_id]},
                {
                    "Name": "instance-state-name",
                    "Values": ["pending", "running", "stopping", "stopped"],
                },
            ],
        )
        found = [
            _instance(i) for r in answer.get("Reservations", []) for i in r.get("Instances", [])
        ]
        return min(found, key=lambda i: i.instance_id) if found else None

    async def launch(self, request: LaunchRequest) -> Instance:
        plan = request.plan
        arguments: dict[str, Any] = {
            "ImageId": plan.ami,
            "InstanceType": plan.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": request.client_token,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in request.tags.items()],
                }
            ],
        }
        if plan.key_name:
            arguments["KeyName"] = plan.key_name
        if plan.security_group_ids:
            arguments["SecurityGroupIds"] = list(plan.security_group_ids)
        if plan.subnet_id:
            arguments["SubnetId"] = plan.subnet_id
        answer = await self._call(self._ec2.run_instances, **arguments)
        return _instance(answer["Instances"][0])

    async def first_image(self) -> str:
        """An AMI this endpoint knows (moto's server ships Amazon's public ones)."""
        answer = await self._call(self._ec2.describe_images, Owners=["amazon"])
        images = sorted(image["ImageId"] for image in answer.get("Images", []))
        if not images:
            raise CloudError(ErrorKind.PERMANENT, None, "the endpoint lists no Amazon images")
        return str(images[0])

    async def describe(self, instance_id: str) -> Instance | None:
        try:
            answer = await self._call(self._ec2.describe_instances, InstanceIds=[instance_id])
        except CloudError as exc:
            if exc.code == "InvalidInstanceID.NotFound":
                return None
            raise
        found = [
            _instance(i) for r in answer.get("Reservations", []) for i in r.get("Instances", [])
        ]
        return found[0] if found else None

    async def _call(self, method: Any, **arguments: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await method(**arguments)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            kind = classify_cloud_error(code, status)
            raise CloudError(kind, code, str(error.get("Message", exc))) from None
        except (BotoCoreError, OSError, TimeoutError) as exc:
            # No answer (connection refused, timeout...): the call may or may not have
            # happened; only the tag look-up before the next try can tell.
            raise CloudError(ErrorKind.RETRY, None, f"{type(exc).__name__}: {exc}") from None


def _instance(data: dict[str, Any]) -> Instance:
    return Instance(
        instance_id=data["InstanceId"],
        state=data.get("State", {}).get("Name", "unknown"),
        instance_type=data.get("InstanceType", ""),
        launched_at=data.get("LaunchTime"),
    )


@asynccontextmanager
async def open_ec2(
    region: str, endpoint_url: str | None, timeout: float
) -> AsyncIterator[Ec2Cloud]:
    """An EC2 client on the standard AWS credential chain. botocore's own retries are off:
    a retried RunInstances is only safe after the tag look-up the worker makes first."""
    import aioboto3
    from botocore.config import Config

    config = Config(
        region_name=region,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout,
        read_timeout=timeout,
    )
    session = aioboto3.Session()
    if await session.get_credentials() is None:
        raise NoCredentials(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
            "or an instance role (against moto's server any values do)"
        )
    async with session.client("ec2", endpoint_url=endpoint_url, config=config) as client:
        yield Ec2Cloud(client)
