"""The plan catalog: what a price buys. Read from `[plans."<name>"]` tables in watcher.toml.

default_plan = "t3.micro"

[plans."t3.micro"]
price = "10"              # CTK, as a string or an integer: never a float
instance_type = "t3.micro"
period = "1h"             # what the price buys (s, m, h, d)
grace = "24h"             # stopped, disk kept, after paid time ends; then terminated
warn = ["24h", "1h"]      # warnings before the end (at most half the period)
refund = "unused-periods" # on cancel: whole periods not begun come back ("none": nothing)
max_prepaid = 24          # auto-renew never pays more periods ahead than this
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from watcher.domain.amounts import parse_amount
from watcher.domain.errors import InvalidInput
from watcher.domain.kinds import KINDS, ec2_instance
from watcher.domain.kinds.ec2_instance import THESIS_AMI, ec2_plan
from watcher.domain.leases import LeaseTerms, Refund, parse_duration
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
        unknown = set(spec) - {"price", "kind"} - LEASE_KEYS - kind.keys
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
        params = {k: v for k, v in spec.items() if k not in {"price", "kind", *LEASE_KEYS}}
        plans[name] = Plan(
            name=name,
            price=units,
            spec=kind.parse(name, params),
            lease=parse_lease_terms(name, spec),
        )
    return plans


LEASE_KEYS = frozenset({"period", "grace", "warn", "refund", "max_prepaid"})


def parse_lease_terms(name: str, spec: Mapping[str, Any]) -> LeaseTerms:
    """A plan's lease keys (defaults: LeaseTerms'); ValueError names the plan and key."""
    default = LeaseTerms()
    period = parse_duration(spec.get("period", "1h"), f"plans.{name}.period")
    grace = parse_duration(spec.get("grace", "24h"), f"plans.{name}.grace")
    warn = spec.get("warn", ["24h", "1h"])
    if not isinstance(warn, list):
        raise ValueError(f'plans.{name}.warn must be a list like ["24h", "1h"]')
    warnings = tuple(parse_duration(w, f"plans.{name}.warn") for w in warn)
    refund = spec.get("refund", default.refund.value)
    if refund not in {r.value for r in Refund}:
        choices = " or ".join(f'"{r.value}"' for r in Refund)
        raise ValueError(f"plans.{name}.refund must be {choices}, not {refund!r}")
    max_prepaid = spec.get("max_prepaid", default.max_prepaid)
    if isinstance(max_prepaid, bool) or not isinstance(max_prepaid, int) or max_prepaid < 1:
        raise ValueError(f"plans.{name}.max_prepaid must be a whole number of periods, 1 or more")
    try:
        return LeaseTerms(period, grace, warnings, Refund(refund), max_prepaid)
    except ValueError as exc:
        raise ValueError(f"plans.{name}: {exc}") from None
