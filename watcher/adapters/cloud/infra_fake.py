"""FakeInfra: the infrastructure port in memory, for fast tests of `watcher infra`.

It answers like the AWS adapter against moto's server (tests/integration/
test_infra_contract.py runs the same checks against both): resources by type and name,
attributes as AWS gives them (a launch template's id and version numbers, ARNs), a
scaling policy that lives in its group and goes with it, a bucket that refuses to be
removed while it holds objects. `fail` makes the next calls of one operation raise, as a
cloud that does not answer. Nothing at run time imports it.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watcher.domain.infra import CREATE_ONLY, NAME_PROPERTY, Prerequisite, ResourceType
from watcher.domain.provisioning import ErrorKind
from watcher.ports.cloud import CloudError
from watcher.ports.infra import Infra, Observed

ACCOUNT = "123456789012"


@dataclass
class _Stored:
    properties: dict[str, Any]
    attributes: dict[str, Any]
    tags: dict[str, str]


@dataclass
class FakeInfra:
    region: str = "us-east-1"
    # What exists before any declaration: subnets, images, security groups, by id.
    existing: dict[Prerequisite, set[str]] = field(default_factory=dict)
    resources: dict[tuple[ResourceType, str], _Stored] = field(default_factory=dict)
    # Objects in buckets, by bucket name (a bucket that holds any is not removed).
    objects: dict[str, set[str]] = field(default_factory=dict)
    # Every call that acted, in order: ("create", type, name).
    acted: list[tuple[str, ResourceType, str]] = field(default_factory=list)
    _faults: dict[str, int] = field(default_factory=dict)
    _serial: int = 0

    def fail(self, operation: str, times: int = 1) -> None:
        """The next `times` calls of `operation` (read, create, update, delete) get no
        answer."""
        self._faults[operation] = times

    def _maybe_fail(self, operation: str) -> None:
        if self._faults.get(operation, 0) > 0:
            self._faults[operation] -= 1
            raise CloudError(ErrorKind.RETRY, None, f"{operation}: no answer (injected)")

    @staticmethod
    def _key(type: ResourceType, properties: Mapping[str, Any]) -> tuple[ResourceType, str]:
        name = str(properties[NAME_PROPERTY[type]])
        if type is ResourceType.SCALING_POLICY:
            name = f"{properties['AutoScalingGroupName']}/{name}"
        return type, name

    async def account_id(self) -> str:
        return ACCOUNT

    async def exists(self, what: Prerequisite, id: str) -> bool:
        self._maybe_fail("read")
        return id in self.existing.get(what, set())

    async def read(self, type: ResourceType, properties: Mapping[str, Any]) -> Observed | None:
        self._maybe_fail("read")
        stored = self.resources.get(self._key(type, properties))
        if stored is None:
            return None
        tags = stored.tags
        if type is ResourceType.SCALING_POLICY:
            group = self.resources.get(
                (ResourceType.GROUP, str(properties["AutoScalingGroupName"]))
            )
            tags = group.tags if group is not None else {}
        return Observed(copy.deepcopy(stored.properties), dict(stored.attributes), dict(tags))

    async def create(
        self, type: ResourceType, properties: Mapping[str, Any], tags: Mapping[str, str]
    ) -> Observed:
        self._maybe_fail("create")
        key = self._key(type, properties)
        if key in self.resources and type not in (
            ResourceType.SCALING_POLICY,
            ResourceType.ALARM,
        ):  # PutScalingPolicy and PutMetricAlarm create or replace; the others refuse
            raise CloudError(ErrorKind.PERMANENT, "EntityAlreadyExists", f"{key[1]} exists")
        if (
            type is ResourceType.SCALING_POLICY
            and (
                ResourceType.GROUP,
                str(properties["AutoScalingGroupName"]),
            )
            not in self.resources
        ):
            raise CloudError(ErrorKind.PERMANENT, "ValidationError", "no such group")
        self._serial += 1
        stored_properties = copy.deepcopy(dict(properties))
        private_key = None
        if type is ResourceType.KEY_PAIR and not stored_properties.pop("PublicKeyMaterial", None):
            private_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n"
        self.resources[key] = _Stored(
            stored_properties, self._attributes(type, key[1], 1), dict(tags)
        )
        self.acted.append(("create", type, key[1]))
        seen = await self.read(type, properties)
        assert seen is not None
        return Observed(seen.properties, seen.attributes, seen.tags, private_key)

    def _attributes(self, type: ResourceType, name: str, version: int) -> dict[str, Any]:
        digest = hashlib.sha256(f"{type}{name}{self._serial}".encode()).hexdigest()
        if type is ResourceType.MANAGED_POLICY:
            arn = f"arn:aws:iam::{ACCOUNT}:policy/{name}"
            return {"Ref": arn, "PolicyArn": arn}
        if type is ResourceType.ROLE:
            arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
            return {"Ref": name, "Arn": arn, "RoleId": digest[:20]}
        if type is ResourceType.INSTANCE_PROFILE:
            return {"Ref": name, "Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{name}"}
        if type is ResourceType.KEY_PAIR:
            return {"Ref": name, "KeyPairId": f"key-{digest[:17]}", "KeyFingerprint": digest[:32]}
        if type is ResourceType.BUCKET:
            return {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        if type is ResourceType.LAUNCH_TEMPLATE:
            return {
                "Ref": f"lt-{digest[:17]}",
                "LatestVersionNumber": str(version),
                "DefaultVersionNumber": str(version),
            }
        if type is ResourceType.GROUP:
            return {"Ref": name, "Instances": 0, "Status": ""}
        if type is ResourceType.SCALING_POLICY:
            group, policy = name.split("/", 1)
            arn = (
                f"arn:aws:autoscaling:{self.region}:{ACCOUNT}:scalingPolicy:{digest[:8]}:"
                f"autoScalingGroupName/{group}:policyName/{policy}"
            )
            return {"Ref": arn, "Arn": arn}
        arn = f"arn:aws:cloudwatch:{self.region}:{ACCOUNT}:alarm:{name}"
        return {"Ref": name, "Arn": arn, "StateValue": "INSUFFICIENT_DATA"}

    async def update(
        self,
        type: ResourceType,
        properties: Mapping[str, Any],
        tags: Mapping[str, str],
        observed: Observed,
    ) -> Observed:
        self._maybe_fail("update")
        key = self._key(type, properties)
        stored = self.resources.get(key)
        if stored is None:
            raise CloudError(ErrorKind.PERMANENT, "NoSuchEntity", f"{key[1]} does not exist")
        keep = CREATE_ONLY.get(type, frozenset())
        updated = {k: v for k, v in copy.deepcopy(dict(properties)).items() if k not in keep}
        if type is ResourceType.LAUNCH_TEMPLATE and updated.get(
            "LaunchTemplateData"
        ) != stored.properties.get("LaunchTemplateData"):
            version = int(stored.attributes["LatestVersionNumber"]) + 1
            stored.attributes["LatestVersionNumber"] = str(version)
            stored.attributes["DefaultVersionNumber"] = str(version)
        stored.properties.update(updated)
        stored.properties.pop("PublicKeyMaterial", None)
        if type is not ResourceType.SCALING_POLICY:
            stored.tags.update(tags)
        self.acted.append(("update", type, key[1]))
        seen = await self.read(type, properties)
        assert seen is not None
        return seen

    async def delete(self, type: ResourceType, properties: Mapping[str, Any]) -> None:
        self._maybe_fail("delete")
        key = self._key(type, properties)
        if key not in self.resources:
            return
        if type is ResourceType.BUCKET and self.objects.get(key[1]):
            raise CloudError(
                ErrorKind.PERMANENT,
                "BucketNotEmpty",
                f"bucket {key[1]} holds objects: empty it first, then destroy again",
            )
        del self.resources[key]
        if type is ResourceType.GROUP:
            for other in [k for k in self.resources if k[0] is ResourceType.SCALING_POLICY]:
                if other[1].startswith(f"{key[1]}/"):
                    del self.resources[other]
        self.acted.append(("delete", type, key[1]))


if TYPE_CHECKING:  # mypy checks that the fake implements the whole port
    _port: type[Infra] = FakeInfra
