"""Resource kinds: each module knows one kind's parameters (what the catalog may say,
what an order keeps, how a buyer reads it). A new kind is a module here, a provider behind
watcher/ports/cloud.py, and catalog entries; nothing else changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from watcher.domain.kinds import ec2_instance, scaling_pool, storage_bucket
from watcher.domain.resources import ResourceSpec


@dataclass(frozen=True)
class Kind:
    name: str
    # (plan name, the plan's table without price/kind) -> its spec; ValueError names the key.
    parse: Callable[[str, Mapping[str, Any]], ResourceSpec]
    # What a buyer reads for it ("t3.micro").
    summary: Callable[[ResourceSpec], str]
    keys: frozenset[str]
    # (vCPUs, memory in GiB) where the kind has them and they are known.
    size: Callable[[ResourceSpec], tuple[int, float] | None]
    # A sentence for a buyer choosing: what they get and how they use it.
    describe: Callable[[ResourceSpec], str]


KINDS: dict[str, Kind] = {
    module.KIND: Kind(
        module.KIND, module.parse, module.summary, module.KEYS, module.size, module.describe
    )
    for module in (ec2_instance, scaling_pool, storage_bucket)
}


def summary(spec: ResourceSpec) -> str:
    kind = KINDS.get(spec.kind)
    return kind.summary(spec) if kind is not None else spec.kind


def size(spec: ResourceSpec) -> tuple[int, float] | None:
    """(vCPUs, memory in GiB), None where the kind has none or the size is not known."""
    kind = KINDS.get(spec.kind)
    return kind.size(spec) if kind is not None else None


def describe(spec: ResourceSpec) -> str:
    kind = KINDS.get(spec.kind)
    return kind.describe(spec) if kind is not None else ""
