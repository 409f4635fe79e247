"""FakeProvider: the provider port in memory, for fast and deterministic tests.

It answers like the EC2 adapter against moto's server (tests/integration/
test_provider_contract.py runs the same checks against both), and adds on demand what a
real cloud does only when it pleases: answers that lag behind a launch, throttling, no
capacity, calls that never answer or whose answer is lost, instances ended by EC2 itself.
It lives in the package so that every service built on the port can test its rules on
it; nothing at run time imports it.

Like moto, it ignores a launch's client token: the provisioner's look-up by tag before
every launch is what makes a retry safe, and tests on the fake must show that.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Literal

from watcher.domain.kinds import ec2_instance
from watcher.domain.kinds.ec2_instance import Ec2Instance
from watcher.domain.pricing import Plan
from watcher.domain.provisioning import ErrorKind
from watcher.ports.cloud import NOT_FOUND, CloudError, Instance, LaunchRequest, Provider

Operation = Literal[
    "find_instance",
    "tagged_instances",
    "check_plan",
    "launch",
    "describe",
    "console_output",
    "stop",
    "start",
    "terminate",
]
# Calls that only look: whatever goes wrong in them is retryable (as in the EC2 adapter).
_READS = frozenset(
    {"find_instance", "tagged_instances", "check_plan", "describe", "console_output"}
)

# EC2's StateReason codes: for an instance stopped or terminated through the API, and for
# one EC2 ended because it had no capacity to run it.
USER_SHUTDOWN = "Client.UserInitiatedShutdown"
NO_CAPACITY = "Server.InsufficientInstanceCapacity"
INCORRECT_STATE = "IncorrectInstanceState"


class Fault(Enum):
    """What an injected failure looks like, with the error codes EC2 answers."""

    #: EC2 throttles the account: retry after a backoff.
    THROTTLING = "throttling"
    #: no capacity for the instance type now: retried a bounded number of times.
    CAPACITY = "capacity"
    #: a refusal that trying again cannot change (an unauthorized operation).
    PERMANENT = "permanent"
    #: the call never reached the provider: nothing happened.
    NO_ANSWER = "no answer"
    #: the call took effect, but its answer never came back (a timeout after sending).
    ANSWER_LOST = "answer lost"

    def error(self) -> CloudError:
        if self is Fault.THROTTLING:
            return CloudError(ErrorKind.RETRY, "RequestLimitExceeded", "Request limit exceeded.")
        if self is Fault.CAPACITY:
            return CloudError(
                ErrorKind.CAPACITY,
                "InsufficientInstanceCapacity",
                "We currently do not have sufficient capacity in the Availability Zone.",
            )
        if self is Fault.PERMANENT:
            return CloudError(
                ErrorKind.PERMANENT,
                "UnauthorizedOperation",
                "You are not authorized to perform this operation.",
            )
        return CloudError(ErrorKind.RETRY, None, "ReadTimeoutError: Read timeout on endpoint URL")


@dataclass(frozen=True)
class _Held:
    """An instance as the fake keeps it, with what it still hides from callers."""

    instance: Instance
    # How many more DescribeInstances by id answer NotFound (eventual consistency).
    hidden_for: int = 0
    # How many more looks at it (describe, find, list) answer "pending" before "running".
    booting_for: int = 0


class FakeProvider:
    """An in-memory cloud. Knobs:

    - `images`, `security_groups`, `subnets`, `key_pairs`: what exists, for check_plan
      and launch (an unknown image fails a launch as EC2 does: InvalidAMIID.NotFound);
      `launch_templates`: templates by name, each with its image;
    - `describe_lag`: each new instance answers NotFound to its first N describes;
    - `pending_reads`: each new instance reads `pending` N times, then `running`;
    - `fail(operation, fault, times)`: injected errors per call;
    - `end(instance_id, reason)`, `forget(instance_id)` and `after_launch`: instances ended
      by EC2 or a person, or no longer listed at all (AWS forgets ended ones after an hour).
    """

    kinds = frozenset({ec2_instance.KIND})

    def __init__(
        self,
        *,
        images: Iterable[str] = (),
        security_groups: Iterable[str] = (),
        subnets: Iterable[str] = (),
        key_pairs: Iterable[str] = (),
        launch_templates: Mapping[str, str] | None = None,
        describe_lag: int = 0,
        pending_reads: int = 0,
        after_launch: Callable[[FakeProvider, Instance], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.images = set(images)
        self.security_groups = set(security_groups)
        self.subnets = set(subnets)
        self.key_pairs = set(key_pairs)
        self.launch_templates = dict(launch_templates or {})
        self.describe_lag = describe_lag
        self.pending_reads = pending_reads
        # Called with each instance right after it is launched (before the answer): a test
        # ends or forgets it there to act as EC2 or a person would.
        self.after_launch = after_launch
        self._clock = clock or _fixed_clock()
        self.calls: Counter[str] = Counter()
        self.launches: list[LaunchRequest] = []
        self._held: dict[str, _Held] = {}
        self._faults: dict[str, deque[Fault | CloudError]] = {}
        self._always: dict[str, Fault | CloudError] = {}

    # --- knobs ---

    def fail(self, operation: Operation, fault: Fault | CloudError, times: int | None = 1) -> None:
        """The next `times` calls of `operation` fail with `fault` (every call from now on
        when `times` is None, until `heal`). Queued failures come before an always-failure."""
        if times is None:
            self._always[operation] = fault
        else:
            self._faults.setdefault(operation, deque()).extend([fault] * times)

    def heal(self, operation: Operation) -> None:
        self._faults.pop(operation, None)
        self._always.pop(operation, None)

    def end(self, instance_id: str, reason: str, state: str = "terminated") -> None:
        """The instance ends now, for `reason` (an EC2 StateReason code)."""
        held = self._held[instance_id]
        self._held[instance_id] = replace(
            held,
            instance=replace(held.instance, state=state, state_reason=reason),
            booting_for=0,
        )

    def forget(self, instance_id: str) -> None:
        """The provider no longer lists the instance at all."""
        del self._held[instance_id]

    def instances(self) -> list[Instance]:
        """Every instance the fake lists, as it is now (no lag, no faults): for asserts."""
        return [self._held[key].instance for key in sorted(self._held)]

    # --- the port ---

    async def find_instance(self, order_id: str) -> Instance | None:
        self._enter("find_instance")
        found = [
            self._read(key) for key in sorted(self._held) if self._tag(key, "OrderId") == order_id
        ]
        if not found:
            return None
        return min(found, key=lambda i: (i.ended, i.instance_id))

    async def tagged_instances(self) -> list[Instance]:
        self._enter("tagged_instances")
        return [
            self._read(key)
            for key in sorted(self._held)
            if self._tag(key, "AllocatedBy") == "TokenSystem"
        ]

    async def check_plan(self, plan: Plan) -> list[str]:
        self._enter("check_plan")
        return self._missing(plan)

    async def launch(self, request: LaunchRequest) -> Instance:
        lost = self._enter("launch")
        missing = self._missing(request.plan, launching=True)
        if missing:
            raise CloudError(ErrorKind.PERMANENT, missing[0], "the plan names what does not exist")
        plan = Ec2Instance.of(request.plan.spec)
        instance = Instance(
            instance_id=f"i-{len(self.launches) + 1:017x}",
            state="pending",
            instance_type=plan.instance_type,
            launched_at=self._clock(),
            tags=tuple(sorted(request.tags.items())),
            image=plan.ami or self.launch_templates.get(plan.launch_template, ""),
        )
        self.launches.append(request)
        self._held[instance.instance_id] = _Held(
            instance, hidden_for=self.describe_lag, booting_for=self.pending_reads
        )
        if self.after_launch is not None:
            self.after_launch(self, instance)
        if lost is not None:
            raise lost
        return instance

    async def describe(self, instance_id: str) -> Instance | None:
        self._enter("describe")
        held = self._held.get(instance_id)
        if held is None:
            return None
        if held.hidden_for > 0:
            self._held[instance_id] = replace(held, hidden_for=held.hidden_for - 1)
            return None
        return self._read(instance_id)

    async def console_output(self, instance_id: str) -> str | None:
        """Nothing until the instance runs; then what cloud-init prints on Ubuntu, with
        host key fingerprints derived from the instance id (stable, as real ones are)."""
        self._enter("console_output")
        held = self._held.get(instance_id)
        if held is None:
            raise CloudError(
                ErrorKind.RETRY, NOT_FOUND, f"The instance ID '{instance_id}' does not exist"
            )
        if held.instance.state != "running":
            return None
        lines = ["-----BEGIN SSH HOST KEY FINGERPRINTS-----"]
        for bits, kind in ((256, "ECDSA"), (256, "ED25519"), (3072, "RSA")):
            digest = hashlib.sha256(f"{instance_id}:{kind}".encode()).digest()
            fingerprint = base64.b64encode(digest).decode().rstrip("=")
            lines.append(f"{bits} SHA256:{fingerprint} root@{instance_id} ({kind})")
        lines.append("-----END SSH HOST KEY FINGERPRINTS-----")
        return "\n".join(lines) + "\n"

    async def stop(self, instance_id: str) -> None:
        lost = self._enter("stop")
        held = self._acting_on(instance_id)
        self._set(held, "stopped", USER_SHUTDOWN)
        if lost is not None:
            raise lost

    async def start(self, instance_id: str) -> None:
        lost = self._enter("start")
        held = self._acting_on(instance_id)
        self._set(held, "running", None)
        if lost is not None:
            raise lost

    async def terminate(self, instance_id: str) -> None:
        lost = self._enter("terminate")
        held = self._acting_on(instance_id, ended_ok=True)
        if not held.instance.ended:
            self._set(held, "terminated", USER_SHUTDOWN)
        if lost is not None:
            raise lost

    # --- inside ---

    def _enter(self, operation: Operation) -> CloudError | None:
        """Count the call and raise its injected failure, if any. An ANSWER_LOST fault is
        returned instead, for the call to raise after it took effect (on a call that only
        looks it is the same as no answer)."""
        self.calls[operation] += 1
        queued = self._faults.get(operation)
        fault = queued.popleft() if queued else self._always.get(operation)
        if fault is None:
            return None
        error = fault.error() if isinstance(fault, Fault) else fault
        if operation in _READS and error.kind is not ErrorKind.RETRY:
            # As the EC2 adapter: an error while looking says nothing about the resource.
            error = CloudError(ErrorKind.RETRY, error.code, error.message)
        if fault is Fault.ANSWER_LOST and operation not in _READS:
            return error
        raise error

    def _tag(self, instance_id: str, key: str) -> str | None:
        return self._held[instance_id].instance.tag(key)

    def _read(self, instance_id: str) -> Instance:
        """The instance as a look at it answers: a new one boots as it is looked at."""
        held = self._held[instance_id]
        instance = held.instance
        if instance.state == "pending":
            if held.booting_for > 0:
                self._held[instance_id] = replace(held, booting_for=held.booting_for - 1)
                return instance
            # A public address from TEST-NET-2 (RFC 5737), as EC2 gives one when it runs.
            number = int(instance_id.removeprefix("i-"), 16)
            address = f"198.51.100.{number % 254 + 1}"
            instance = replace(
                instance,
                state="running",
                public_ip=address,
                public_dns=f"ec2-{address.replace('.', '-')}.compute-1.amazonaws.com",
            )
            self._held[instance_id] = replace(held, instance=instance)
        return instance

    def _acting_on(self, instance_id: str, ended_ok: bool = False) -> _Held:
        held = self._held.get(instance_id)
        if held is None:
            raise CloudError(
                ErrorKind.PERMANENT, NOT_FOUND, f"The instance ID '{instance_id}' does not exist"
            )
        if held.instance.ended and not ended_ok:
            # EC2's answer (moto's server starts and stops ended instances, AWS does not).
            raise CloudError(
                ErrorKind.PERMANENT,
                INCORRECT_STATE,
                f"The instance '{instance_id}' is not in a state from which it can be changed.",
            )
        return held

    def _set(self, held: _Held, state: str, reason: str | None) -> None:
        instance = replace(held.instance, state=state, state_reason=reason)
        self._held[instance.instance_id] = replace(held, instance=instance, booting_for=0)

    def _missing(self, sold: Plan, launching: bool = False) -> list[str]:
        plan = Ec2Instance.of(sold.spec)
        """check_plan's findings, worded as the EC2 adapter words them; when launching,
        the error codes EC2 answers RunInstances with."""
        problems: list[tuple[str, str]] = []
        if (plan.ami or not plan.launch_template) and plan.ami not in self.images:
            problems.append(("InvalidAMIID.NotFound", f"image {plan.ami}"))
        if plan.launch_template and plan.launch_template not in self.launch_templates:
            problems.append(
                (
                    "InvalidLaunchTemplateName.NotFoundException",
                    f"launch template {plan.launch_template}",
                )
            )
        if not set(plan.security_group_ids) <= self.security_groups:
            problems.append(
                ("InvalidGroup.NotFound", "security groups " + ", ".join(plan.security_group_ids))
            )
        if plan.subnet_id and plan.subnet_id not in self.subnets:
            problems.append(("InvalidSubnetID.NotFound", f"subnet {plan.subnet_id}"))
        if plan.key_name and plan.key_name not in self.key_pairs:
            problems.append(("InvalidKeyPair.NotFound", f"key pair {plan.key_name}"))
        if launching:
            return [code for code, _ in problems]
        return [f"{what}: {code}" for code, what in problems]


def _fixed_clock() -> Callable[[], datetime]:
    """Launch times one second apart from a fixed moment: the same in every run."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = iter(range(1_000_000_000))
    return lambda: start + timedelta(seconds=next(ticks))


if TYPE_CHECKING:  # mypy checks that the fake implements the whole port
    _port: type[Provider] = FakeProvider
