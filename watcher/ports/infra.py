"""The infrastructure port: what `watcher infra` asks of a cloud about the declared
resources (watcher/domain/infra.py), one resource at a time, by its name.

`watcher.adapters.cloud.infra_aws` is the adapter for AWS (IAM, EC2, Auto Scaling,
CloudWatch, S3); `watcher.adapters.cloud.infra_fake` an in-memory one for tests. Both
pass one contract suite (tests/integration/test_infra_contract.py).

Every property handed to the port is resolved: no `Ref`, `Attr` or `Sub` is left in it.
Errors are `CloudError`s (watcher/ports/cloud.py); `read` never answers "absent" on an
error: only the cloud's own "no such resource" is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from watcher.domain.infra import Prerequisite, ResourceType


@dataclass(frozen=True)
class Observed:
    """A resource as the cloud has it: its properties in the declaration's shape (only
    those the declaration manages), its attributes (`Ref` under "Ref", `Fn::GetAtt`
    names otherwise) and its tags."""

    properties: Mapping[str, Any]
    attributes: Mapping[str, Any]
    tags: Mapping[str, str] = field(default_factory=dict)
    # A key pair AWS made: its private key, once, at creation. Never printed or logged:
    # the infra service writes it to the operator's file (mode 0600).
    private_key: str | None = field(default=None, repr=False)


class Infra(Protocol):
    async def account_id(self) -> str:
        """The account the credentials belong to."""
        ...

    async def exists(self, what: Prerequisite, id: str) -> bool:
        """Whether the account has it; an error that is not the cloud's "no such ..."
        raises (no answer is not "missing")."""
        ...

    async def read(self, type: ResourceType, properties: Mapping[str, Any]) -> Observed | None:
        """The resource of `type` named by `properties` (its name property; a scaling
        policy's group too), None when the cloud answers that it has none."""
        ...

    async def create(
        self, type: ResourceType, properties: Mapping[str, Any], tags: Mapping[str, str]
    ) -> Observed:
        """Create it as declared (the name among the properties)."""
        ...

    async def update(
        self,
        type: ResourceType,
        properties: Mapping[str, Any],
        tags: Mapping[str, str],
        observed: Observed,
    ) -> Observed:
        """Make the existing resource as declared (create-only properties left as they
        are)."""
        ...

    async def delete(self, type: ResourceType, properties: Mapping[str, Any]) -> None:
        """Remove it (a group with its instances, policies with their versions);
        removing what is already gone is not an error."""
        ...
