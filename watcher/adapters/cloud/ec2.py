"""The provider port's adapter for AWS EC2, through aioboto3: launch an order's instance,
find it by tag, read its state, stop, start and terminate it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from watcher.adapters.cloud import aws
from watcher.adapters.cloud.aws import NoCredentials
from watcher.domain.kinds import ec2_instance
from watcher.domain.kinds.ec2_instance import Ec2Instance
from watcher.domain.pricing import Plan
from watcher.domain.provisioning import ErrorKind
from watcher.ports.cloud import NOT_FOUND, CloudError, Instance, LaunchRequest, Provider

__all__ = ["Ec2Cloud", "NoCredentials", "cloud_config", "open_ec2"]


class Ec2Cloud:
    """The provider port on EC2 (watcher.ports.cloud.Provider): one client, used by every
    worker of the process."""

    kinds = frozenset({ec2_instance.KIND})

    def __init__(self, client: Any) -> None:
        self._ec2 = client

    async def find_instance(self, order_id: str) -> Instance | None:
        """The order's instance, if one was ever launched, in any state: a live one first;
        else one that ended (AWS lists ended instances for about an hour, moto for ever),
        so that an order whose instance ran and was terminated is not bought twice."""
        answer = await self._read(
            self._ec2.describe_instances,
            Filters=[{"Name": "tag:OrderId", "Values": [order_id]}],
        )
        found = [
            _instance(i) for r in answer.get("Reservations", []) for i in r.get("Instances", [])
        ]
        if not found:
            return None
        return min(found, key=lambda i: (i.ended, i.instance_id))

    async def tagged_instances(self) -> list[Instance]:
        """Every instance the watcher launched (tag AllocatedBy=TokenSystem), all pages.
        An error raises: a partial list must never be read as "these are all"."""
        found: list[Instance] = []
        token: str | None = None
        while True:
            arguments: dict[str, Any] = {
                "Filters": [{"Name": "tag:AllocatedBy", "Values": ["TokenSystem"]}],
                "MaxResults": 1000,
            }
            if token:
                arguments["NextToken"] = token
            answer = await self._read(self._ec2.describe_instances, **arguments)
            found.extend(
                _instance(i) for r in answer.get("Reservations", []) for i in r.get("Instances", [])
            )
            token = answer.get("NextToken")
            if not token:
                return found

    async def check_plan(self, plan: Plan) -> list[str]:
        """What in the plan this account and region do not have: its image, security
        groups, subnet, key pair. Transient errors raise CloudError (retry); a "does not
        exist" answer is a finding."""
        spec = Ec2Instance.of(plan.spec)
        problems: list[str] = []
        checks: list[tuple[Any, dict[str, Any], str, str]] = []
        if spec.ami or not spec.launch_template:  # else the template's
            checks.append(
                (self._ec2.describe_images, {"ImageIds": [spec.ami]}, "Images", f"image {spec.ami}")
            )
        if spec.launch_template:
            checks.append(
                (
                    self._ec2.describe_launch_templates,
                    {"LaunchTemplateNames": [spec.launch_template]},
                    "LaunchTemplates",
                    f"launch template {spec.launch_template}",
                )
            )
        if spec.security_group_ids:
            checks.append(
                (
                    self._ec2.describe_security_groups,
                    {"GroupIds": list(spec.security_group_ids)},
                    "SecurityGroups",
                    "security groups " + ", ".join(spec.security_group_ids),
                )
            )
        if spec.subnet_id:
            checks.append(
                (
                    self._ec2.describe_subnets,
                    {"SubnetIds": [spec.subnet_id]},
                    "Subnets",
                    f"subnet {spec.subnet_id}",
                )
            )
        if spec.key_name:
            checks.append(
                (
                    self._ec2.describe_key_pairs,
                    {"KeyNames": [spec.key_name]},
                    "KeyPairs",
                    f"key pair {spec.key_name}",
                )
            )
        for method, arguments, field, what in checks:
            try:
                answer = await self._call(method, **arguments)
            except CloudError as exc:
                if not _says_missing(exc.code):
                    # No answer, or no permission to look (a least-privilege role may not
                    # describe key pairs): unchecked, not a finding.
                    raise CloudError(ErrorKind.RETRY, exc.code, exc.message) from None
                problems.append(f"{what}: {exc.code}")
                continue
            wanted = len(next(iter(arguments.values())))
            if len(answer.get(field, [])) < wanted:
                problems.append(f"{what}: not found")
        return problems

    async def launch(self, request: LaunchRequest) -> Instance:
        plan = Ec2Instance.of(request.plan.spec)
        arguments: dict[str, Any] = {
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
        if plan.ami:
            arguments["ImageId"] = plan.ami
        if plan.launch_template:
            # The template's image, security groups and fleet tags; what is given here
            # (type, key, user data, the order's tags) overrides or adds to it.
            arguments["LaunchTemplate"] = {
                "LaunchTemplateName": plan.launch_template,
                "Version": "$Default",
            }
        if plan.key_name:
            arguments["KeyName"] = plan.key_name
        if request.ssh_keys:
            # The buyer's key goes in with the launch itself, as cloud-init user data,
            # rather than as an imported key pair: no account-wide resource to name, clean up
            # or make idempotent, and RunInstances stays the one side effect (ClientToken and
            # the tag look-up cover it). Each key is quoted as a JSON string (YAML reads
            # JSON), so a comment in it cannot change the document.
            arguments["UserData"] = cloud_config(request.ssh_keys)
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
            answer = await self._read(self._ec2.describe_instances, InstanceIds=[instance_id])
        except CloudError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise
        found = [
            _instance(i) for r in answer.get("Reservations", []) for i in r.get("Instances", [])
        ]
        return found[0] if found else None

    async def console_output(self, instance_id: str) -> str | None:
        # botocore decodes the base64 Output; EC2 leaves it out until the instance has
        # printed something (a few minutes after boot).
        try:
            answer = await self._read(self._ec2.get_console_output, InstanceId=instance_id)
        except CloudError as exc:
            # A look: "not found" right after a launch may only mean "not visible yet".
            raise CloudError(ErrorKind.RETRY, exc.code, exc.message) from None
        output = answer.get("Output")
        return output if isinstance(output, str) and output else None

    # EC2 itself makes these three idempotent: StopInstances on a stopped instance,
    # StartInstances on a running one and TerminateInstances on a terminated one answer
    # with the current state and change nothing. An ended instance cannot be stopped or
    # started (IncorrectInstanceState, a permanent error).
    async def stop(self, instance_id: str) -> None:
        await self._call(self._ec2.stop_instances, InstanceIds=[instance_id])

    async def start(self, instance_id: str) -> None:
        await self._call(self._ec2.start_instances, InstanceIds=[instance_id])

    async def terminate(self, instance_id: str) -> None:
        await self._call(self._ec2.terminate_instances, InstanceIds=[instance_id])

    async def _read(self, method: Any, **arguments: Any) -> Any:
        return await aws.look(method, (NOT_FOUND,), **arguments)

    async def _call(self, method: Any, **arguments: Any) -> Any:
        return await aws.call(method, **arguments)


def _says_missing(code: str | None) -> bool:
    """EC2's answers that a named resource does not exist or cannot be one."""
    return code is not None and (
        code.endswith((".NotFound", ".NotFoundException", ".Malformed"))
        or code.startswith("InvalidAMIID")
    )


def cloud_config(ssh_keys: tuple[str, ...]) -> str:
    """cloud-init user data that authorizes `ssh_keys` for the image's default user."""
    lines = ["#cloud-config", "ssh_authorized_keys:"]
    lines += [f"  - {json.dumps(key)}" for key in ssh_keys]
    return "\n".join(lines) + "\n"


def _instance(data: dict[str, Any]) -> Instance:
    return Instance(
        instance_id=data["InstanceId"],
        state=data.get("State", {}).get("Name", "unknown"),
        instance_type=data.get("InstanceType", ""),
        launched_at=data.get("LaunchTime"),
        # moto answers an empty code for an instance that never stopped; EC2 none.
        state_reason=(data.get("StateReason") or {}).get("Code") or None,
        tags=tuple(sorted((t["Key"], t["Value"]) for t in data.get("Tags", []))),
        image=data.get("ImageId", ""),
        public_ip=data.get("PublicIpAddress") or None,
        public_dns=data.get("PublicDnsName") or None,
    )


if TYPE_CHECKING:  # mypy checks that the adapter implements the whole port
    _port: type[Provider] = Ec2Cloud


@asynccontextmanager
async def open_ec2(
    region: str, endpoint_url: str | None, timeout: float
) -> AsyncIterator[Ec2Cloud]:
    """An EC2 client on the standard AWS credential chain (botocore's own retries off)."""
    async with aws.clients(region, endpoint_url, timeout, "ec2") as found:
        yield Ec2Cloud(found["ec2"])
