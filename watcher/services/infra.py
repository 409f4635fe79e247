"""`watcher infra plan | apply | destroy`: the declared resources (watcher/domain/infra.py)
made real through the infrastructure port (watcher/ports/infra.py), after looking.

- `plan` reads every declared resource and says what `apply` would do: create it, change
  the properties that differ, nothing, or refuse (a resource of that name that `watcher
  infra` did not create, told by its ManagedBy and WatcherStack tags).
- `apply` plans first and refuses before acting if anything is in conflict; then goes
  through the resources in order, reading each again right before acting on it, so a
  second `apply` (or one after a crash halfway) acts only on what still differs.
- `destroy` goes backwards and removes only what carries the stack's tags; a resource
  that is absent, or not ours, is left as it is. A removal is confirmed by reading again.

An error while looking concludes nothing: the command stops and says so in one line.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from watcher.domain.errors import InvalidInput, UserError
from watcher.domain.infra import (
    CREATE_ONLY,
    NAME_PROPERTY,
    OWNER,
    OWNER_TAG,
    STACK_TAG,
    Attr,
    Declared,
    Prerequisite,
    Ref,
    ResourceType,
    Sub,
)
from watcher.ports.cloud import CloudError
from watcher.ports.infra import Infra, Observed


class InfraError(UserError):
    """The cloud refused or did not answer; what was done before is said with it."""


class Action(StrEnum):
    CREATE = "create"  #: not there: apply creates it
    UPDATE = "update"  #: ours, some property differs: apply changes it
    NONE = "unchanged"  #: ours and as declared
    CONFLICT = "conflict"  #: there, but not created by watcher infra: never touched
    DELETE = "delete"  #: ours: destroy removes it
    ABSENT = "absent"  #: nothing to remove
    KEPT = "kept"  #: ours, but it holds data that is not the declaration's to delete


_SIGN = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.NONE: "=",
    Action.CONFLICT: "!",
    Action.DELETE: "-",
    Action.ABSENT: " ",
    Action.KEPT: "!",
}


class _Unknown:
    """A value known only once what it refers to exists (a launch template's id)."""

    def __repr__(self) -> str:
        return "(known after apply)"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Change:
    resource: Declared
    name: str
    action: Action
    # "MaxSize: 5 -> 6", one per property that differs.
    differences: tuple[str, ...] = ()
    note: str = ""

    def line(self) -> str:
        text = f"{_SIGN[self.action]} {self.action.value:<9} {self.resource.type.value} {self.name}"
        if self.differences:
            text += ": " + "; ".join(self.differences)
        if self.note:
            text += f" ({self.note})"
        return text


# Refs whose value is the resource's own name, known before it exists.
_REF_IS_NAME = frozenset(
    {
        ResourceType.ROLE,
        ResourceType.INSTANCE_PROFILE,
        ResourceType.KEY_PAIR,
        ResourceType.BUCKET,
        ResourceType.GROUP,
        ResourceType.ALARM,
    }
)
# Documents compared whole (a statement or condition removed is a difference); every
# other mapping is compared on the keys the declaration gives (AWS adds its own).
_WHOLE = frozenset({"PolicyDocument", "AssumeRolePolicyDocument"})


def _covers(declared: Any, observed: Any, whole: bool = False) -> bool:
    if isinstance(declared, Mapping):
        if not isinstance(observed, Mapping):
            return False
        if whole and set(declared) != set(observed):
            return False
        return all(k in observed and _covers(v, observed[k], whole) for k, v in declared.items())
    if isinstance(declared, list | tuple):
        if not isinstance(observed, list | tuple) or len(declared) != len(observed):
            return False
        if all(isinstance(v, str) for v in declared):
            return sorted(declared) == sorted(str(v) for v in observed)
        return all(_covers(d, o, whole) for d, o in zip(declared, observed, strict=True))
    if isinstance(declared, bool) or isinstance(observed, bool):
        return declared is observed
    if isinstance(declared, int | float) and isinstance(observed, int | float):
        return float(declared) == float(observed)
    return bool(declared == observed)


def _has_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_unknown(v) for v in value)
    return False


def _diff(path: str, wanted: Any, present: Any, whole: bool) -> list[str]:
    """Where `present` falls short of `wanted`, by path ("LaunchTemplateData.InstanceType:
    t3.micro -> t3.small"): a change deep in a mapping reads as itself."""
    if _has_unknown(wanted):
        return [f"{path}: {_short(present)} -> {_short(wanted)}"]
    if _covers(wanted, present, whole):
        return []
    if isinstance(wanted, Mapping) and isinstance(present, Mapping) and not whole:
        found: list[str] = []
        for key, value in wanted.items():
            found += _diff(f"{path}.{key}", value, present.get(key), whole)
        return found or [f"{path}: {_short(present)} -> {_short(wanted)}"]
    return [f"{path}: {_short(present)} -> {_short(wanted)}"]


def _attribute_targets(value: Any) -> set[str]:
    if isinstance(value, Attr):
        return {value.target}
    if isinstance(value, Mapping):
        return set().union(*(_attribute_targets(v) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(_attribute_targets(v) for v in value))
    return set()


def _short(value: Any) -> str:
    text = repr(value) if value is UNKNOWN else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class InfraRun:
    declared: tuple[Declared, ...]
    infra: Infra
    stack: str
    # What must exist before apply (domain/infra.py prerequisites).
    prerequisites: tuple[tuple[Prerequisite, str], ...] = ()
    # How long a removal may take to show (an auto-scaling group with instances takes
    # minutes on AWS); after that, destroy says it is still going.
    settle: float = 120.0
    look_every: float = 1.0
    _attributes: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    _account: str | None = None

    def ours(self, observed: Observed) -> bool:
        return observed.tags.get(OWNER_TAG) == OWNER and observed.tags.get(STACK_TAG) == self.stack

    async def _resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            target = self._by_id(value.target)
            known = self._attributes.get(target.logical_id)
            if known is not None:
                return known["Ref"]
            if target.type in _REF_IS_NAME:
                return await self._resolve(target.name)
            if target.type is ResourceType.MANAGED_POLICY:
                return f"arn:aws:iam::{await self._account_id()}:policy/{target.name}"
            return UNKNOWN
        if isinstance(value, Attr):
            known = self._attributes.get(value.target)
            return known[value.name] if known is not None else UNKNOWN
        if isinstance(value, Sub):
            return value.text.replace("${AWS::AccountId}", await self._account_id())
        if isinstance(value, Mapping):
            return {k: await self._resolve(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [await self._resolve(v) for v in value]
        return value

    async def _account_id(self) -> str:
        if self._account is None:
            self._account = await self.infra.account_id()
        return self._account

    def _by_id(self, logical_id: str) -> Declared:
        for resource in self.declared:
            if resource.logical_id == logical_id:
                return resource
        raise ValueError(f"the declaration refers to {logical_id!r}, which it does not declare")

    def _differences(
        self, resource: Declared, properties: Mapping[str, Any], observed: Observed
    ) -> tuple[str, ...]:
        skip = CREATE_ONLY.get(resource.type, frozenset())
        found: list[str] = []
        for key, wanted in properties.items():
            if key in skip or key == NAME_PROPERTY[resource.type]:
                continue
            found += _diff(key, wanted, observed.properties.get(key), key in _WHOLE)
        missing = {k: v for k, v in resource.tags.items() if observed.tags.get(k) != v}
        if missing:
            found.append("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(missing.items())))
        return tuple(found)

    async def _look(self, resource: Declared) -> tuple[dict[str, Any], Observed | None]:
        properties = await self._resolve(dict(resource.properties))
        try:
            observed = await self.infra.read(resource.type, properties)
        except CloudError as exc:
            raise InfraError(
                f"cannot tell whether {resource.type.value} "
                f"{properties[NAME_PROPERTY[resource.type]]} exists ({exc}); nothing concluded"
            ) from None
        if observed is not None:
            self._attributes[resource.logical_id] = observed.attributes
        return properties, observed

    def _change(
        self, resource: Declared, properties: Mapping[str, Any], observed: Observed | None
    ) -> Change:
        name = str(properties[NAME_PROPERTY[resource.type]])
        if observed is None:
            return Change(resource, name, Action.CREATE)
        if not self.ours(observed):
            return Change(
                resource,
                name,
                Action.CONFLICT,
                note=f"exists without the tags {OWNER_TAG}={OWNER}, {STACK_TAG}={self.stack}: "
                "not created by watcher infra, never changed by it",
            )
        differences = self._differences(resource, properties, observed)
        return Change(resource, name, Action.UPDATE if differences else Action.NONE, differences)

    async def missing(self) -> list[str]:
        """What the declaration names that the account does not have (a subnet, an image,
        a security group): `apply` would make the rest and then fail on it."""
        found = []
        for what, id in self.prerequisites:
            try:
                if not await self.infra.exists(what, id):
                    found.append(f"{what.value} {id}")
            except CloudError as exc:
                raise InfraError(
                    f"cannot tell whether {what.value} {id} exists ({exc}); nothing concluded"
                ) from None
        return found

    async def plan(self) -> list[Change]:
        self._attributes.clear()
        changes: list[Change] = []
        changing: set[str] = set()
        for resource in self.declared:
            properties, observed = await self._look(resource)
            change = self._change(resource, properties, observed)
            follows = sorted(_attribute_targets(resource.properties) & changing)
            if change.action is Action.NONE and follows:
                # Refers to an attribute of what apply changes first (a group to its
                # template's version): it changes too, once that is known.
                change = Change(
                    resource,
                    change.name,
                    Action.UPDATE,
                    tuple(f"follows the new {self._by_id(t).name}" for t in follows),
                )
            if change.action in (Action.CREATE, Action.UPDATE):
                changing.add(resource.logical_id)
            changes.append(change)
        return changes

    async def apply(
        self, key_file: Path | None = None, report: Callable[[Change], None] = lambda c: None
    ) -> list[Change]:
        """Make the cloud as declared; what each step did, in order."""
        absent = await self.missing()
        if absent:
            raise InfraError(
                f"nothing applied: the account has no {', '.join(absent)} (fix [infra] in "
                "watcher.toml)"
            )
        planned = await self.plan()
        conflicts = [c for c in planned if c.action is Action.CONFLICT]
        if conflicts:
            raise InfraError(
                f"nothing applied: {conflicts[0].resource.type.value} {conflicts[0].name} "
                f"{conflicts[0].note}"
                + (f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else "")
            )
        creates_key = any(
            c.action is Action.CREATE
            and c.resource.type is ResourceType.KEY_PAIR
            and "PublicKeyMaterial" not in c.resource.properties
            for c in planned
        )
        reserved = False
        if creates_key:
            if key_file is None:
                raise InvalidInput(
                    "nothing applied: AWS would make the key pair, and its private key needs "
                    "a file: pass --key-file PATH, or set infra.public_key to import yours"
                )
            # Made now, empty and the owner's only, before anything is done: a key AWS
            # gives once must never be lost to a path that cannot be written.
            _reserve(key_file)
            reserved = True
        try:
            return await self._apply(key_file, report)
        finally:
            if reserved and key_file is not None:
                _release(key_file)

    async def _apply(self, key_file: Path | None, report: Callable[[Change], None]) -> list[Change]:
        self._attributes.clear()
        done: list[Change] = []
        for resource in self.declared:
            properties, observed = await self._look(resource)
            change = self._change(resource, properties, observed)
            if change.action is Action.CONFLICT:
                raise InfraError(f"stopped: {change.line()}" + self._after(done))
            try:
                if change.action is Action.CREATE:
                    result = await self.infra.create(resource.type, properties, resource.tags)
                    if result.private_key is not None:
                        assert key_file is not None
                        _write_private_key(key_file, result.private_key)
                        change = Change(
                            resource, change.name, change.action, note=f"private key in {key_file}"
                        )
                elif change.action is Action.UPDATE:
                    result = await self.infra.update(
                        resource.type, properties, resource.tags, observed or Observed({}, {})
                    )
                else:
                    done.append(change)
                    report(change)
                    continue
            except CloudError as exc:
                raise InfraError(
                    f"{change.action.value} {resource.type.value} {change.name} failed: {exc}"
                    + self._after(done)
                ) from None
            self._attributes[resource.logical_id] = result.attributes
            done.append(change)
            report(change)
        return done

    async def destroy(self, report: Callable[[Change], None] = lambda c: None) -> list[Change]:
        """Remove what the stack created, the last declared first; what each step did."""
        done: list[Change] = []
        self._attributes.clear()
        for resource in reversed(self.declared):
            properties, observed = await self._look(resource)
            name = str(properties[NAME_PROPERTY[resource.type]])
            if observed is None:
                change = Change(resource, name, Action.ABSENT)
            elif not self.ours(observed):
                change = self._change(resource, properties, observed)
            else:
                try:
                    await self.infra.delete(resource.type, properties)
                except CloudError as exc:
                    if exc.code != "BucketNotEmpty":
                        raise InfraError(
                            f"delete {resource.type.value} {name} failed: {exc}" + self._after(done)
                        ) from None
                    change = Change(
                        resource,
                        name,
                        Action.KEPT,
                        note="it holds objects: empty it, then destroy again",
                    )
                    done.append(change)
                    report(change)
                    continue
                gone = await self._gone(resource, properties)
                change = Change(
                    resource, name, Action.DELETE, note="" if gone else "still being removed"
                )
            done.append(change)
            report(change)
        return done

    async def _gone(self, resource: Declared, properties: Mapping[str, Any]) -> bool:
        """Whether the cloud no longer lists it, looked at until `settle` runs out. An
        error while looking is no answer: looked at again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle
        while True:
            try:
                if await self.infra.read(resource.type, properties) is None:
                    return True
            except CloudError:
                pass
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(self.look_every)

    @staticmethod
    def _after(done: list[Change]) -> str:
        acted = [c for c in done if c.action not in (Action.NONE, Action.ABSENT)]
        if not acted:
            return "; nothing was changed before it"
        return "; done before it: " + ", ".join(f"{c.action.value} {c.name}" for c in acted)


def _reserve(path: Path) -> None:
    """The key file, made empty and readable by its owner only; never over another file."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InfraError(
            f"nothing applied: {path} exists; the new key pair's private key is never "
            "written over another file"
        ) from None
    except OSError as exc:
        raise InfraError(
            f"nothing applied: cannot make the key file {path}: {exc.strerror}"
        ) from None
    os.close(descriptor)


def _release(path: Path) -> None:
    """The reserved key file, removed when apply ended before a key went into it."""
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def _write_private_key(path: Path, material: str) -> None:
    """Into the file reserved for it before anything was done."""
    with path.open("w") as handle:
        handle.write(material if material.endswith("\n") else material + "\n")
