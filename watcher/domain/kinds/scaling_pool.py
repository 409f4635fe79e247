"""The scaling pool kind: the thesis's auto-scaling pattern (sections 4.3 and 5.4) sold as
a product. An order gets an auto-scaling group of its own, on a launch template of its own
(the plan's image and type, the buyer's SSH key), with min / desired / max instances, a
scale-out policy and a CPU alarm acting on it.

Priced per period at its maximum size: the price pays for `max_size` instances for the
whole period whatever the alarm does. Metering instance-hours from the group's activity
would charge after the fact, and a prepaid balance can run short of what a burst already
used: the buyer would owe, or the watcher would have paid for it. At the maximum, what is
paid covers everything the pool can do, and the buyer knows the ceiling before paying.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from watcher.domain.kinds import ec2_instance
from watcher.domain.resources import ResourceSpec

KIND = "scaling_pool"
KEYS = frozenset(
    {
        "instance_type",
        "ami",
        "key_name",
        "security_group_ids",
        "subnet_id",
        "ssh_user",
        "min_size",
        "max_size",
        "desired_capacity",
        "cpu_threshold",
        "scale_out_by",
    }
)
# The thesis's numbers.
DEFAULTS = {"min_size": 1, "max_size": 5, "desired_capacity": 1, "cpu_threshold": 60}
# Most instances one pool may hold: a typo in a plan must not sell a fleet.
MAX_SIZE = 20
_SUBNET = re.compile(r"subnet-[0-9a-f]{1,17}")


def group_name(order_id: str) -> str:
    """The order's group (and launch template, alarm) name: 32 characters, the ledger's
    resource id column (the full order id is in its OrderId tag)."""
    return f"pool-{order_id[:27]}"


@dataclass(frozen=True, slots=True)
class ScalingPool:
    instance_type: str
    ami: str
    subnet_id: str
    min_size: int = 1
    max_size: int = 5
    desired_capacity: int = 1
    # Scale out by this many instances when the average CPU of the group stays above
    # `cpu_threshold` % for two one-minute periods (the thesis's alarm).
    cpu_threshold: int = 60
    scale_out_by: int = 1
    key_name: str | None = None
    security_group_ids: tuple[str, ...] = ()
    ssh_user: str = ec2_instance.DEFAULT_SSH_USER

    @classmethod
    def of(cls, spec: ResourceSpec) -> ScalingPool:
        if spec.kind != KIND:
            raise ValueError(f"not a {KIND} specification: {spec.kind}")
        return cls(
            instance_type=str(spec.get("instance_type")),
            ami=str(spec.get("ami")),
            subnet_id=str(spec.get("subnet_id")),
            min_size=int(spec.get("min_size", 1)),
            max_size=int(spec.get("max_size", 5)),
            desired_capacity=int(spec.get("desired_capacity", 1)),
            cpu_threshold=int(spec.get("cpu_threshold", 60)),
            scale_out_by=int(spec.get("scale_out_by", 1)),
            key_name=spec.get("key_name"),
            security_group_ids=tuple(spec.get("security_group_ids") or ()),
            ssh_user=str(spec.get("ssh_user") or ec2_instance.DEFAULT_SSH_USER),
        )

    def spec(self) -> ResourceSpec:
        return ResourceSpec.of(
            KIND,
            instance_type=self.instance_type,
            ami=self.ami,
            subnet_id=self.subnet_id,
            min_size=self.min_size,
            max_size=self.max_size,
            desired_capacity=self.desired_capacity,
            cpu_threshold=self.cpu_threshold,
            scale_out_by=self.scale_out_by,
            key_name=self.key_name,
            security_group_ids=list(self.security_group_ids),
            ssh_user=self.ssh_user,
        )

    def as_instance(self) -> ResourceSpec:
        """Each of its instances as an EC2 instance spec (for the image, groups, subnet
        and key pair checks)."""
        return ec2_instance.Ec2Instance(
            self.instance_type,
            self.ami,
            self.key_name,
            self.security_group_ids,
            self.subnet_id,
            self.ssh_user,
        ).spec()


def summary(spec: ResourceSpec) -> str:
    pool = ScalingPool.of(spec)
    return f"pool of {pool.min_size}-{pool.max_size} {pool.instance_type}"


def describe(spec: ResourceSpec) -> str:
    pool = ScalingPool.of(spec)
    return (
        f"A pool of {pool.instance_type} servers: {pool.desired_capacity} at first, more when "
        f"their average CPU stays above {pool.cpu_threshold} %, up to {pool.max_size} (the "
        "price pays for all of them); you log in to each with ssh and the key you give."
    )


def size(spec: ResourceSpec) -> tuple[int, float] | None:
    """At its maximum size (what the price pays for)."""
    pool = ScalingPool.of(spec)
    each = ec2_instance.SIZES.get(pool.instance_type)
    return (each[0] * pool.max_size, each[1] * pool.max_size) if each else None


def _whole(name: str, table: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = table.get(key, DEFAULTS.get(key, 1))
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"plans.{name}.{key} must be a whole number from {low} to {high}")
    return value


def parse(name: str, table: Mapping[str, Any]) -> ResourceSpec:
    """A `[plans."<name>"]` table of kind scaling_pool; ValueError names the plan and key."""
    if "instance_type" not in table:
        raise ValueError(f'plans.{name}.instance_type is needed for a pool, like "t3.micro"')
    instance = ec2_instance.Ec2Instance.of(
        ec2_instance.parse(name, {k: v for k, v in table.items() if k in ec2_instance.KEYS})
    )
    subnet = table.get("subnet_id")
    if not isinstance(subnet, str) or not _SUBNET.fullmatch(subnet):
        raise ValueError(
            f"plans.{name}.subnet_id is needed for a pool (the subnet its group launches "
            "into), like subnet-0123abcd"
        )
    max_size = _whole(name, table, "max_size", 1, MAX_SIZE)
    min_size = _whole(name, table, "min_size", 0, max_size)
    desired = _whole(name, table, "desired_capacity", max(min_size, 1), max_size)
    return ScalingPool(
        instance_type=instance.instance_type,
        ami=instance.ami,
        subnet_id=subnet,
        min_size=min_size,
        max_size=max_size,
        desired_capacity=desired,
        cpu_threshold=_whole(name, table, "cpu_threshold", 1, 100),
        scale_out_by=_whole(name, table, "scale_out_by", 1, max_size),
        key_name=instance.key_name,
        security_group_ids=instance.security_group_ids,
        ssh_user=instance.ssh_user,
    ).spec()
