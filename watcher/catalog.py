"""The plan catalog: what a price buys. Read from `[plans."<name>"]` tables in watcher.toml.

default_plan = "t3.micro"

[plans."t3.micro"]
price = "10"              # CTK, as a string or an integer: never a float
instance_type = "t3.micro"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from watcher.amounts import parse_amount
from watcher.core.pricing import Plan
from watcher.errors import InvalidInput

# The thesis's plan: a t3.micro from its AMI (eu-north-1) for 10 CTK.
THESIS_PLAN = Plan(
    name="t3.micro", price=10 * 10**18, instance_type="t3.micro", ami="ami-09278528675a8d54e"
)


@dataclass(frozen=True)
class Catalog:
    plans: Mapping[str, Plan] = field(default_factory=lambda: {THESIS_PLAN.name: THESIS_PLAN})
    default: str = THESIS_PLAN.name

    def __post_init__(self) -> None:
        if self.default not in self.plans:
            known = ", ".join(sorted(self.plans)) or "none"
            raise ValueError(
                f"default plan {self.default!r} is not in the catalog (plans: {known})"
            )

    @property
    def default_plan(self) -> Plan:
        return self.plans[self.default]

    def plan(self, name: str) -> Plan:
        """A payer's plan; one that was removed from the catalog falls back to the default."""
        return self.plans.get(name, self.default_plan)


_PLAN_KEYS = {"price", "instance_type", "ami", "key_name", "security_group_ids", "subnet_id"}
_AMI = re.compile(r"ami-[0-9a-f]{8,17}")
_SECURITY_GROUP = re.compile(r"sg-[0-9a-f]{1,17}")
_SUBNET = re.compile(r"subnet-[0-9a-f]{1,17}")


def parse_plans(table: Any) -> dict[str, Plan]:
    """`[plans.*]` tables into Plans; raises ValueError naming the plan and the key."""
    if not isinstance(table, dict) or not table:
        raise ValueError('plans must be a table of [plans."<name>"] tables')
    plans: dict[str, Plan] = {}
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise ValueError(f"plans.{name} must be a table with a price")
        unknown = set(spec) - _PLAN_KEYS
        if unknown:
            raise ValueError(f"plans.{name}: unknown key {sorted(unknown)[0]!r}")
        price = spec.get("price")
        if isinstance(price, (float, bool)):
            raise ValueError(
                f"plans.{name}.price must be a string or integer of CTK "
                f'(e.g. "12.5"), not {price!r}'
            )
        if not isinstance(price, (str, int)):
            raise ValueError(f"plans.{name}.price is missing")
        try:
            units = parse_amount(str(price))
        except InvalidInput as exc:
            raise ValueError(f"plans.{name}.price: {exc}") from None
        instance_type = spec.get("instance_type", name)
        if not isinstance(instance_type, str) or not instance_type:
            raise ValueError(f"plans.{name}.instance_type must be a non-empty string")
        ami = spec.get("ami", THESIS_PLAN.ami)
        if not isinstance(ami, str) or not _AMI.fullmatch(ami):
            raise ValueError(f"plans.{name}.ami must look like ami-0123456789abcdef0, not {ami!r}")
        key_name = spec.get("key_name")
        if key_name is not None and (not isinstance(key_name, str) or not key_name):
            raise ValueError(f"plans.{name}.key_name must be a non-empty string")
        groups = spec.get("security_group_ids", [])
        if not isinstance(groups, list) or not all(
            isinstance(g, str) and _SECURITY_GROUP.fullmatch(g) for g in groups
        ):
            raise ValueError(f'plans.{name}.security_group_ids must be a list like ["sg-0123abcd"]')
        subnet = spec.get("subnet_id")
        if subnet is not None and (not isinstance(subnet, str) or not _SUBNET.fullmatch(subnet)):
            raise ValueError(
                f"plans.{name}.subnet_id must look like subnet-0123abcd, not {subnet!r}"
            )
        plans[name] = Plan(
            name=name,
            price=units,
            instance_type=instance_type,
            ami=ami,
            key_name=key_name,
            security_group_ids=tuple(groups),
            subnet_id=subnet,
        )
    return plans
