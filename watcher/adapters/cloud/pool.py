"""The provider port for scaling pools (watcher/domain/kinds/scaling_pool.py) on AWS: per
order a launch template, an auto-scaling group on it, a scale-out policy and a CPU alarm,
all named after the order (`scaling_pool.group_name`) and tagged with it.

The group stands for the order: its handle (`Instance`) is the group, in EC2's states:
running once `min_size` instances are in service, stopped when scaled to zero (the lease's
stop: min = max = desired = 0, so the alarm cannot scale it out again; its template,
policy and alarm are kept through the grace, and a start restores the sizes it was sold
with, kept in its own tags), shutting-down while AWS deletes it. A deleted group is not
listed at all: no answer is read as "gone" by this provider (the lease worker and the
audit confirm an absence by repeated looks).

Launching is idempotent part by part: each of the four is looked for first and made only
if missing, so a launch cut short is finished by the next, never doubled. The pool's
instances carry PoolOrderId, not OrderId or AllocatedBy: they are the group's, not orders
of their own (the EC2 provider and the audit count those tags as one order each).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any

from watcher.adapters.cloud import aws
from watcher.adapters.cloud.ec2 import Ec2Cloud, cloud_config
from watcher.domain.kinds import scaling_pool
from watcher.domain.kinds.scaling_pool import ScalingPool, group_name
from watcher.domain.pricing import Plan
from watcher.domain.provisioning import ErrorKind
from watcher.ports.cloud import (
    CloudError,
    Instance,
    LaunchRequest,
    PoolMember,
    PoolState,
    PoolViews,
    Provider,
)

# The sizes a group was sold with, in its own tags: what a start after a stop restores.
SIZES_TAG = "PoolSizes"
POLICY = "scale-out"
_DELETING = "Delete in progress"


def alarm_name(group: str) -> str:
    return f"{group}-cpu"


def _sizes(pool: ScalingPool) -> str:
    return f"{pool.min_size}/{pool.desired_capacity}/{pool.max_size}"


class PoolCloud:
    """Scaling pools on Auto Scaling, CloudWatch and EC2 (launch templates)."""

    kinds = frozenset({scaling_pool.KIND})

    def __init__(self, ec2: Ec2Cloud, ec2_client: Any, asg: Any, cw: Any) -> None:
        self._instances = ec2
        self._ec2 = ec2_client
        self._asg = asg
        self._cw = cw

    async def _group(self, name: str) -> dict[str, Any] | None:
        answer = await self._read(
            self._asg.describe_auto_scaling_groups, AutoScalingGroupNames=[name]
        )
        groups = answer.get("AutoScalingGroups", [])
        return groups[0] if groups else None

    async def find_instance(self, order_id: str) -> Instance | None:
        """The order's pool once it is whole. A group without its alarm (a launch cut
        short after the group was made) answers None, so that the launch before which the
        provisioner looks finishes it: each part is looked for again and made only if
        missing, and nothing is made twice. The alarm is made last."""
        name = group_name(order_id)
        group = await self._group(name)
        if group is None:
            return None
        handle = _handle(group)
        # A group of that name made by someone else is not the order's.
        if handle.tag("OrderId") != order_id:
            return None
        if handle.state != "shutting-down" and not await self._alarm_exists(name):
            return None
        return handle

    async def _alarm_exists(self, name: str) -> bool:
        answer = await self._read(self._cw.describe_alarms, AlarmNames=[alarm_name(name)])
        return bool(answer.get("MetricAlarms"))

    async def tagged_instances(self) -> list[Instance]:
        found: list[Instance] = []
        token: str | None = None
        while True:
            arguments: dict[str, Any] = {
                "Filters": [{"Name": "tag:AllocatedBy", "Values": ["TokenSystem"]}],
                "MaxRecords": 100,
            }
            if token:
                arguments["NextToken"] = token
            answer = await self._read(self._asg.describe_auto_scaling_groups, **arguments)
            found.extend(
                _handle(g)
                for g in answer.get("AutoScalingGroups", [])
                if any(t["Key"] == "OrderId" for t in g.get("Tags", []))
            )
            token = answer.get("NextToken")
            if not token:
                return found

    async def check_plan(self, plan: Plan) -> list[str]:
        """What its instances would need: the image, subnet, groups and key pair."""
        pool = ScalingPool.of(plan.spec)
        return await self._instances.check_plan(
            Plan(name=plan.name, price=plan.price, spec=pool.as_instance())
        )

    async def launch(self, request: LaunchRequest) -> Instance:
        """The order's template, its group (made empty: no instance runs until the pool
        is whole), the policy, the sold sizes, then the alarm, which marks it whole. Each
        part is looked for first; an answer that it already exists means an earlier try
        made it. A group of the order's name that is not the order's is never used. A
        permanent error after something was made removes what was made, so that a failed
        (refunded) order holds nothing."""
        pool = ScalingPool.of(request.plan.spec)
        name = group_name(request.order_id)
        group = await self._group(name)
        if group is not None and _handle(group).tag("OrderId") != request.order_id:
            raise CloudError(
                ErrorKind.PERMANENT,
                "AlreadyExists",
                f"a group named {name} exists and is not this order's",
            )
        made = group is not None
        try:
            if await self._template(name) is None:
                await self._create_template(request, pool, name)
            made = True
            if group is None:
                await self._create_group(request, pool, name)
            await aws.call(
                self._asg.put_scaling_policy,
                AutoScalingGroupName=name,
                PolicyName=POLICY,
                PolicyType="SimpleScaling",
                AdjustmentType="ChangeInCapacity",
                ScalingAdjustment=pool.scale_out_by,
            )
            policy_arn = await self._policy_arn(name)
            await aws.call(
                self._asg.update_auto_scaling_group,
                AutoScalingGroupName=name,
                MinSize=pool.min_size,
                MaxSize=pool.max_size,
                DesiredCapacity=pool.desired_capacity,
            )
            await aws.call(
                self._cw.put_metric_alarm,
                AlarmName=alarm_name(name),
                AlarmDescription=f"Scale pool {name} out when its average CPU stays high",
                Namespace="AWS/EC2",
                MetricName="CPUUtilization",
                Statistic="Average",
                Dimensions=[{"Name": "AutoScalingGroupName", "Value": name}],
                Period=60,
                EvaluationPeriods=2,
                Threshold=float(pool.cpu_threshold),
                ComparisonOperator="GreaterThanThreshold",
                AlarmActions=[policy_arn],
                Tags=_tags(request.tags),
            )
        except CloudError as exc:
            if exc.kind is ErrorKind.PERMANENT and made:
                await self._remove_quietly(name)
            raise
        group = await self._group(name)
        if group is None:
            # Made, not listed yet: no answer about it (the provisioner looks again).
            raise CloudError(ErrorKind.RETRY, None, f"group {name} not listed yet")
        return _handle(group)

    async def _create_template(self, request: LaunchRequest, pool: ScalingPool, name: str) -> None:
        data: dict[str, Any] = {
            "ImageId": pool.ami,
            "InstanceType": pool.instance_type,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "PoolOrderId", "Value": request.order_id},
                        {"Key": "Name", "Value": name},
                    ],
                }
            ],
        }
        if pool.key_name:
            data["KeyName"] = pool.key_name
        if pool.security_group_ids:
            data["SecurityGroupIds"] = list(pool.security_group_ids)
        if request.ssh_keys:
            # A launch template takes its user data base64-encoded.
            data["UserData"] = base64.b64encode(cloud_config(request.ssh_keys).encode()).decode()
        try:
            await aws.call(
                self._ec2.create_launch_template,
                LaunchTemplateName=name,
                LaunchTemplateData=data,
                TagSpecifications=[
                    {"ResourceType": "launch-template", "Tags": _tags(request.tags)}
                ],
                ClientToken=request.client_token,
            )
        except CloudError as exc:
            if not (exc.code or "").endswith("AlreadyExistsException"):
                raise  # else made by an earlier try whose answer was lost

    async def _create_group(self, request: LaunchRequest, pool: ScalingPool, name: str) -> None:
        tags = {**request.tags, SIZES_TAG: _sizes(pool)}
        try:
            await aws.call(
                self._asg.create_auto_scaling_group,
                AutoScalingGroupName=name,
                LaunchTemplate={"LaunchTemplateName": name, "Version": "$Default"},
                MinSize=0,
                MaxSize=0,
                DesiredCapacity=0,
                VPCZoneIdentifier=pool.subnet_id,
                Tags=[
                    {
                        "ResourceId": name,
                        "ResourceType": "auto-scaling-group",
                        "Key": k,
                        "Value": v,
                        "PropagateAtLaunch": False,
                    }
                    for k, v in sorted(tags.items())
                ],
            )
        except CloudError as exc:
            if exc.code != "AlreadyExists":
                raise
            # Made by an earlier try whose answer was lost: ours only if tagged so.
            group = await self._group(name)
            if group is None:
                raise CloudError(ErrorKind.RETRY, None, f"group {name} not listed yet") from None
            if _handle(group).tag("OrderId") != request.order_id:
                raise CloudError(
                    ErrorKind.PERMANENT,
                    "AlreadyExists",
                    f"a group named {name} exists and is not this order's",
                ) from None

    async def _remove_quietly(self, name: str) -> None:
        """What a failed launch made, removed on a best-effort basis: an error here leaves
        an empty group or a template (they cost nothing), never hides the launch's own."""
        with suppress(CloudError):
            await self.terminate(name)

    async def _template(self, name: str) -> dict[str, Any] | None:
        try:
            answer = await self._read(
                self._ec2.describe_launch_templates, LaunchTemplateNames=[name]
            )
        except CloudError as exc:
            if exc.code and exc.code.startswith("InvalidLaunchTemplateName.NotFound"):
                return None
            raise
        templates = answer.get("LaunchTemplates", [])
        return templates[0] if templates else None

    async def _policy_arn(self, name: str) -> str:
        answer = await self._read(
            self._asg.describe_policies, AutoScalingGroupName=name, PolicyNames=[POLICY]
        )
        policies = answer.get("ScalingPolicies", [])
        if not policies:
            raise CloudError(ErrorKind.RETRY, None, f"policy of {name} not listed yet")
        return str(policies[0]["PolicyARN"])

    async def describe(self, instance_id: str) -> Instance | None:
        group = await self._group(instance_id)
        return _handle(group) if group is not None else None

    async def console_output(self, instance_id: str) -> str | None:
        return None  # a pool has no one console: its members' host keys are not shown

    async def stop(self, instance_id: str) -> None:
        group = await self._group(instance_id)
        if group is None or group.get("Status") == _DELETING:
            raise CloudError(ErrorKind.PERMANENT, "IncorrectInstanceState", "no such pool")
        await aws.call(
            self._asg.update_auto_scaling_group,
            AutoScalingGroupName=instance_id,
            MinSize=0,
            MaxSize=0,
            DesiredCapacity=0,
        )

    async def start(self, instance_id: str) -> None:
        group = await self._group(instance_id)
        if group is None or group.get("Status") == _DELETING:
            raise CloudError(ErrorKind.PERMANENT, "IncorrectInstanceState", "no such pool")
        sizes = {t["Key"]: t["Value"] for t in group.get("Tags", [])}.get(SIZES_TAG, "1/1/1")
        low, desired, high = (int(n) for n in sizes.split("/"))
        await aws.call(
            self._asg.update_auto_scaling_group,
            AutoScalingGroupName=instance_id,
            MinSize=low,
            MaxSize=high,
            DesiredCapacity=desired,
        )

    async def terminate(self, instance_id: str) -> None:
        """The alarm, the template, then the group with its instances; each only if still
        there, so a repeat after a crash does what is left. The group goes last: once it
        is deleting (the lease's end is confirmed by it), nothing else is left."""
        await aws.call(self._cw.delete_alarms, AlarmNames=[alarm_name(instance_id)])
        if await self._template(instance_id) is not None:
            await aws.call(self._ec2.delete_launch_template, LaunchTemplateName=instance_id)
        group = await self._group(instance_id)
        if group is not None and group.get("Status") != _DELETING:
            await aws.call(
                self._asg.delete_auto_scaling_group,
                AutoScalingGroupName=instance_id,
                ForceDelete=True,
            )

    async def pool(self, resource_id: str) -> PoolState | None:
        group = await self._group(resource_id)
        if group is None:
            return None
        members = group.get("Instances", [])
        addresses: dict[str, str | None] = {}
        if members:
            answer = await self._read(
                self._ec2.describe_instances, InstanceIds=[m["InstanceId"] for m in members]
            )
            for reservation in answer.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    addresses[instance["InstanceId"]] = instance.get("PublicIpAddress")
        alarms = await self._read(self._cw.describe_alarms, AlarmNames=[alarm_name(resource_id)])
        alarm = next(iter(alarms.get("MetricAlarms", [])), None)
        return PoolState(
            members=tuple(
                PoolMember(
                    m["InstanceId"], m.get("LifecycleState", ""), addresses.get(m["InstanceId"])
                )
                for m in members
            ),
            min_size=int(group["MinSize"]),
            desired_capacity=int(group["DesiredCapacity"]),
            max_size=int(group["MaxSize"]),
            alarm_state=alarm.get("StateValue") if alarm else None,
        )

    async def _read(self, method: Any, **arguments: Any) -> Any:
        return await aws.look(method, ("InvalidLaunchTemplate",), **arguments)


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _handle(group: dict[str, Any]) -> Instance:
    tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
    members = group.get("Instances", [])
    in_service = sum(1 for m in members if m.get("LifecycleState") == "InService")
    if group.get("Status") == _DELETING:
        state = "shutting-down"
    elif int(group["MaxSize"]) == 0 and int(group["DesiredCapacity"]) == 0:
        state = "stopping" if members else "stopped"
    elif in_service >= max(int(group["MinSize"]), 1):
        state = "running"
    else:
        state = "pending"
    created = group.get("CreatedTime")
    return Instance(
        instance_id=group["AutoScalingGroupName"],
        state=state,
        instance_type=next((m.get("InstanceType", "") for m in members), ""),
        launched_at=created if isinstance(created, datetime) else None,
        tags=tuple(sorted(tags.items())),
    )


if TYPE_CHECKING:  # mypy checks that the adapter implements the whole port
    _port: type[Provider] = PoolCloud
    _views: type[PoolViews] = PoolCloud


@asynccontextmanager
async def open_pools(
    region: str, endpoint_url: str | None, timeout: float
) -> AsyncIterator[PoolCloud]:
    async with aws.clients(region, endpoint_url, timeout, "ec2", "autoscaling", "cloudwatch") as c:
        yield PoolCloud(Ec2Cloud(c["ec2"]), c["ec2"], c["autoscaling"], c["cloudwatch"])
