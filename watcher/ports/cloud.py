"""The provider port: what the watcher asks of a cloud, and the values and errors it speaks.

The provisioner, the audit and the start-up catalog check depend on this module only;
`watcher.adapters.cloud.ec2` is the adapter for AWS EC2 and `watcher.adapters.cloud.fake`
an in-memory provider for tests. Both pass one contract suite
(tests/integration/test_provider_contract.py), so a rule tested on the fake holds for EC2.

Errors: every failure of a provider call is a `CloudError` whose `kind` says what the caller
may do about it (`ErrorKind` of watcher/domain/provisioning.py: retry, retry a bounded number
of times, or give up). A call that only looks (find_instance, tagged_instances, describe,
check_plan, console_output) never raises anything but `ErrorKind.RETRY`: an error while
looking says nothing about the order's resource, so it must never end an order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from watcher.domain.pricing import Plan
from watcher.domain.provisioning import ErrorKind

# EC2's instance states. An instance in a live state holds (or may again hold) what the
# order paid for; an ended one never will again.
LIVE_STATES = ("pending", "running", "stopping", "stopped")
ENDED_STATES = ("shutting-down", "terminated")

# The code a provider answers for an instance id it does not know (EC2's own, which the
# fake answers as well): right after a launch it may mean "not visible yet".
NOT_FOUND = "InvalidInstanceID.NotFound"


@dataclass(frozen=True)
class Instance:
    """The handle of an order's resource, in EC2's words: an instance, or for the other
    kinds the group or bucket that stands for the order (`instance_id` is then its name),
    its state mapped onto EC2's (running, stopping, stopped, shutting-down...), so that
    the provisioner, the leases and the audit read every kind alike."""

    instance_id: str
    state: str
    instance_type: str
    launched_at: datetime | None
    # EC2's StateReason code, e.g. "Client.UserInitiatedShutdown" or
    # "Server.InsufficientInstanceCapacity": why an instance ended.
    state_reason: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    # The machine image it was launched from (EC2's ImageId).
    image: str = ""
    # Where the buyer reaches it (EC2's PublicIpAddress and PublicDnsName), once it has one.
    public_ip: str | None = None
    public_dns: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


@dataclass(frozen=True)
class LaunchRequest:
    order_id: str
    # The provider's idempotency key for this launch (EC2's ClientToken).
    client_token: str
    plan: Plan
    tags: dict[str, str]
    # OpenSSH public key lines the resource must accept logins with (the buyer's).
    ssh_keys: tuple[str, ...] = ()


class CloudError(Exception):
    """A provider call failed. `code` is the provider's error code, None when no answer
    came at all (the call may or may not have taken effect)."""

    def __init__(self, kind: ErrorKind, code: str | None, message: str) -> None:
        super().__init__(f"{code or 'no answer'}: {message}")
        self.kind = kind
        self.code = code
        self.message = message


class Provider(Protocol):
    """A cloud that creates, finds and acts on the resources orders pay for."""

    #: The resource kinds (watcher/domain/kinds/) this provider makes.
    kinds: frozenset[str]

    async def find_instance(self, order_id: str) -> Instance | None:
        """The order's instance (tag OrderId), in any state, a live one before an ended one;
        None if the provider lists none."""
        ...

    async def tagged_instances(self) -> list[Instance]:
        """Every instance the watcher launched (tag AllocatedBy=TokenSystem), complete or
        an error: a partial list must never be read as "these are all"."""
        ...

    async def check_plan(self, plan: Plan) -> list[str]:
        """What the plan names that the provider does not have (image, security groups,
        subnet, key pair), one line each; empty when the plan can be launched."""
        ...

    async def launch(self, request: LaunchRequest) -> Instance:
        """Create the order's instance, tagged with `request.tags`."""
        ...

    async def describe(self, instance_id: str) -> Instance | None:
        """The instance's current state; None when the provider answers that it does not
        know the id (which right after a launch may only mean "not visible yet")."""
        ...

    async def console_output(self, instance_id: str) -> str | None:
        """What the instance has printed to its console (cloud-init writes the SSH host
        key fingerprints there), None while there is nothing yet; a CloudError with code
        NOT_FOUND for an id the provider does not know. Only looks."""
        ...

    async def stop(self, instance_id: str) -> None:
        """Stop the instance; stopping a stopped (or stopping) one is not an error."""
        ...

    async def start(self, instance_id: str) -> None:
        """Start a stopped instance; starting a running (or pending) one is not an error."""
        ...

    async def terminate(self, instance_id: str) -> None:
        """End the instance for good; terminating an ended one is not an error."""
        ...


class Cloud:
    """The providers a watcher runs with, by the resource kinds they make. The provisioner
    asks the one that makes an order's kind; the catalog check asks the one that makes a
    plan's kind; the audit and the sweep ask them all. A new kind is a provider added where
    the runtime builds this (runtime/service.py), not a change to any service."""

    def __init__(self, *providers: Provider) -> None:
        self._by_kind: dict[str, Provider] = {}
        for provider in providers:
            for kind in provider.kinds:
                if kind in self._by_kind:
                    raise ValueError(f"two providers make {kind!r} resources")
                self._by_kind[kind] = provider
        self.providers: tuple[Provider, ...] = providers

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._by_kind)

    def provider(self, kind: str) -> Provider | None:
        """The provider of `kind`, None when no provider here makes it."""
        return self._by_kind.get(kind)

    async def check_plan(self, plan: Plan) -> list[str]:
        provider = self.provider(plan.spec.kind)
        if provider is None:
            return [f"no provider here makes {plan.spec.kind!r} resources"]
        return await provider.check_plan(plan)

    async def tagged_instances(self) -> list[Instance]:
        """Every provider's tagged instances (each list complete, or an error)."""
        found: list[Instance] = []
        for provider in self.providers:
            found += await provider.tagged_instances()
        return found


# What some kinds show their owner beyond an address: read live, only ever looking.


@dataclass(frozen=True)
class PoolMember:
    instance_id: str
    state: str
    public_ip: str | None = None


@dataclass(frozen=True)
class PoolState:
    """A scaling pool as its owner sees it: its instances, its sizes and its alarm."""

    members: tuple[PoolMember, ...]
    min_size: int
    desired_capacity: int
    max_size: int
    # CloudWatch's: OK, ALARM or INSUFFICIENT_DATA (None: no alarm found).
    alarm_state: str | None


@runtime_checkable
class PoolViews(Protocol):
    async def pool(self, resource_id: str) -> PoolState | None:
        """The pool's members and sizes; None when the provider has no such group."""
        ...


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


@dataclass(frozen=True)
class UploadForm:
    """A presigned POST: the form's URL and fields; the file goes in a field `file`."""

    url: str
    fields: dict[str, str]
    max_bytes: int


@runtime_checkable
class StorageViews(Protocol):
    async def objects(self, resource_id: str, limit: int) -> tuple[tuple[StoredObject, ...], int]:
        """Up to `limit` objects, and the bytes the whole bucket holds (a full listing:
        the quota is measured by it)."""
        ...

    async def upload_form(
        self, resource_id: str, key: str, max_bytes: int, seconds: int
    ) -> UploadForm:
        """A form that uploads the object `key`, of at most `max_bytes`, valid for
        `seconds`."""
        ...

    async def download_url(self, resource_id: str, key: str, seconds: int) -> str:
        """A link that reads one object, valid for `seconds`."""
        ...
