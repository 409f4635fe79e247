"""The EC2 instance kind (the thesis's product): its parameters and their rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from watcher.domain.pricing import Plan
from watcher.domain.resources import ResourceSpec

KIND = "ec2_instance"
KEYS = frozenset(
    {
        "instance_type",
        "ami",
        "key_name",
        "security_group_ids",
        "subnet_id",
        "ssh_user",
        "launch_template",
    }
)
# The login user of Amazon Linux images (the thesis's AMI); Ubuntu's is "ubuntu".
DEFAULT_SSH_USER = "ec2-user"
_SSH_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# The thesis's AMI (eu-north-1), when a plan names none.
THESIS_AMI = "ami-09278528675a8d54e"
_AMI = re.compile(r"ami-[0-9a-f]{8,17}")
_SECURITY_GROUP = re.compile(r"sg-[0-9a-f]{1,17}")
_SUBNET = re.compile(r"subnet-[0-9a-f]{1,17}")
# EC2's rule for launch template names.
_TEMPLATE = re.compile(r"[a-zA-Z0-9().\-/_]{3,128}")


@dataclass(frozen=True, slots=True)
class Ec2Instance:
    """An EC2 instance of this type, launched from this image with this key pair, security
    groups and subnet (AWS defaults where unset); or from a launch template (the thesis's
    TokenizedLaunchTemplate, made by `watcher infra apply`), which then holds the image,
    security groups and fleet tags in one place, the order giving only what is its own:
    the type, the buyer's key and the order's tags (and whatever else the plan names)."""

    instance_type: str
    ami: str = ""
    key_name: str | None = None
    security_group_ids: tuple[str, ...] = ()
    subnet_id: str | None = None
    # Who logs in over SSH on this image (the buyer's key is authorized for this user).
    ssh_user: str = DEFAULT_SSH_USER
    # Launched from this template's default version ("" = no template).
    launch_template: str = ""

    @classmethod
    def of(cls, spec: ResourceSpec) -> Ec2Instance:
        if spec.kind != KIND:
            raise ValueError(f"not an {KIND} specification: {spec.kind}")
        instance_type = spec.get("instance_type")
        if not isinstance(instance_type, str) or not instance_type:
            raise ValueError(f"the {KIND} specification names no instance_type")
        return cls(
            instance_type=instance_type,
            ami=str(spec.get("ami") or ""),
            key_name=spec.get("key_name"),
            security_group_ids=tuple(spec.get("security_group_ids") or ()),
            subnet_id=spec.get("subnet_id"),
            ssh_user=str(spec.get("ssh_user") or DEFAULT_SSH_USER),
            launch_template=str(spec.get("launch_template") or ""),
        )

    def spec(self) -> ResourceSpec:
        return ResourceSpec.of(
            KIND,
            instance_type=self.instance_type,
            ami=self.ami,
            key_name=self.key_name,
            security_group_ids=list(self.security_group_ids),
            subnet_id=self.subnet_id,
            ssh_user=self.ssh_user,
            # Absent when unset, so that specifications kept before templates read the same.
            **({"launch_template": self.launch_template} if self.launch_template else {}),
        )


def summary(spec: ResourceSpec) -> str:
    return str(spec.get("instance_type") or KIND)


# vCPUs and memory (GiB) of the instance types a catalog is likely to sell, as AWS
# publishes them (DescribeInstanceTypes; they do not change for a type). A buyer compares
# plans by these; a type not listed shows its name only, never a guess.
SIZES: dict[str, tuple[int, float]] = {
    "t2.nano": (1, 0.5),
    "t2.micro": (1, 1),
    "t2.small": (1, 2),
    "t2.medium": (2, 4),
    "t2.large": (2, 8),
    "t2.xlarge": (4, 16),
    "t2.2xlarge": (8, 32),
    "t3.nano": (2, 0.5),
    "t3.micro": (2, 1),
    "t3.small": (2, 2),
    "t3.medium": (2, 4),
    "t3.large": (2, 8),
    "t3.xlarge": (4, 16),
    "t3.2xlarge": (8, 32),
    "t4g.micro": (2, 1),
    "t4g.small": (2, 2),
    "t4g.medium": (2, 4),
    "t4g.large": (2, 8),
    "m5.large": (2, 8),
    "m5.xlarge": (4, 16),
    "m5.2xlarge": (8, 32),
    "c5.large": (2, 4),
    "c5.xlarge": (4, 8),
    "r5.large": (2, 16),
    "r5.xlarge": (4, 32),
}


def describe(spec: ResourceSpec) -> str:
    return "A server of your own: you log in with ssh and the key you give."


def size(spec: ResourceSpec) -> tuple[int, float] | None:
    """(vCPUs, memory in GiB) of the spec's instance type, None if not known here."""
    return SIZES.get(str(spec.get("instance_type") or ""))


def parse(name: str, table: Mapping[str, Any]) -> ResourceSpec:
    """A `[plans."<name>"]` table's EC2 keys; ValueError names the plan and the key."""
    instance_type = table.get("instance_type", name)
    if not isinstance(instance_type, str) or not instance_type:
        raise ValueError(f"plans.{name}.instance_type must be a non-empty string")
    template = table.get("launch_template", "")
    if not isinstance(template, str) or (template and not _TEMPLATE.fullmatch(template)):
        raise ValueError(
            f"plans.{name}.launch_template must be a launch template's name "
            f"(3-128 letters, digits or ().-/_), not {template!r}"
        )
    # From a template, the image is the template's unless the plan names one.
    ami = table.get("ami", "" if template else THESIS_AMI)
    if not isinstance(ami, str) or ((ami or not template) and not _AMI.fullmatch(ami)):
        raise ValueError(f"plans.{name}.ami must look like ami-0123456789abcdef0, not {ami!r}")
    key_name = table.get("key_name")
    if key_name is not None and (not isinstance(key_name, str) or not key_name):
        raise ValueError(f"plans.{name}.key_name must be a non-empty string")
    groups = table.get("security_group_ids", [])
    if not isinstance(groups, list) or not all(
        isinstance(g, str) and _SECURITY_GROUP.fullmatch(g) for g in groups
    ):
        raise ValueError(f'plans.{name}.security_group_ids must be a list like ["sg-0123abcd"]')
    subnet = table.get("subnet_id")
    if subnet is not None and (not isinstance(subnet, str) or not _SUBNET.fullmatch(subnet)):
        raise ValueError(f"plans.{name}.subnet_id must look like subnet-0123abcd, not {subnet!r}")
    ssh_user = table.get("ssh_user", DEFAULT_SSH_USER)
    if not isinstance(ssh_user, str) or not _SSH_USER.fullmatch(ssh_user):
        raise ValueError(f"plans.{name}.ssh_user must be a login name like ec2-user or ubuntu")
    return Ec2Instance(
        instance_type, ami, key_name, tuple(groups), subnet, ssh_user, template
    ).spec()


def ec2_plan(
    name: str,
    price: int,
    instance_type: str,
    ami: str = "",
    key_name: str | None = None,
    security_group_ids: tuple[str, ...] = (),
    subnet_id: str | None = None,
    launch_template: str = "",
) -> Plan:
    """A plan selling an EC2 instance (the catalog's default kind)."""
    spec = Ec2Instance(
        instance_type,
        ami,
        key_name,
        tuple(security_group_ids),
        subnet_id,
        launch_template=launch_template,
    ).spec()
    return Plan(name=name, price=price, spec=spec)
