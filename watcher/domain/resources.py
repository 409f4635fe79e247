"""What a plan sells, resource-neutral: a kind and its parameters. The kind's own module
(watcher/domain/kinds/) knows what its parameters mean and checks them; a provider behind the
port (watcher/ports/cloud.py) makes the resource. An order keeps its specification as JSON
(orders.resource) from the moment it is paid."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def _frozen(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    kind: str
    # Sorted (name, value) pairs, lists as tuples: hashable and comparable.
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, kind: str, **params: Any) -> ResourceSpec:
        return cls(kind, tuple(sorted((k, _frozen(v)) for k, v in params.items())))

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: _thawed(v) for k, v in self.params}}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ResourceSpec:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise ValueError(f"not a resource specification: {text[:80]!r}")
        kind = data.pop("kind")
        return cls.of(kind, **data)
