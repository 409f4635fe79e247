"""The plan catalog: what a price buys. Read from `[plans."<name>"]` tables in watcher.toml.

default_plan = "t3.micro"

[plans."t3.micro"]
price = "10"              # CTK, as a string or an integer: never a float
instance_type = "t3.micro"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from watcher.domain.amounts import parse_amount
from watcher.domain.errors import InvalidInput
from watcher.domain.kinds import KINDS, ec2_instance
from watcher.domain.kinds.ec2_instance import THESIS_AMI, ec2_plan
from watcher.domain.pricing import Plan

# The thesis's plan: a t3.micro from its AMI (eu-north-1) for 10 CTK.
THESIS_PLAN = ec2_plan("t3.micro", 10 * 10**18, "t3.micro", THESIS_AMI)


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


def parse_plans(table: Any) -> dict[str, Plan]:
    """`[plans.*]` tables into Plans: a price, a `kind` (default `ec2_instance`) and that
    kind's keys; raises ValueError naming the plan and the key."""
    if not isinstance(table, dict) or not table:
        raise ValueError('plans must be a table of [plans."<name>"] tables')
    plans: dict[str, Plan] = {}
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise ValueError(f"plans.{name} must be a table with a price")
        kind_name = spec.get("kind", ec2_instance.KIND)
        kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            known = ", ".join(sorted(KINDS))
            raise ValueError(f"plans.{name}.kind must be one of {known}, not {kind_name!r}")
        unknown = set(spec) - {"price", "kind"} - kind.keys
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
        params = {k: v for k, v in spec.items() if k not in ("price", "kind")}
        plans[name] = Plan(name=name, price=units, spec=kind.parse(name, params))
    return plans
