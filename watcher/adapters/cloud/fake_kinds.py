"""FakePool and FakeStorage: the provider port for scaling pools and storage in memory,
for fast tests. They answer like PoolCloud and StorageCloud against moto's server
(tests/integration/test_kinds_contract.py runs the same checks against both): the
order's group or bucket named after it, EC2's states for it, stop / start / terminate,
and the owner's views. `fail(operation, times)` makes calls get no answer. Nothing at run
time imports them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from watcher.domain.kinds import scaling_pool, storage_bucket
from watcher.domain.kinds.scaling_pool import ScalingPool, group_name
from watcher.domain.kinds.storage_bucket import StorageBucket, bucket_name
from watcher.domain.pricing import Plan
from watcher.domain.provisioning import ErrorKind
from watcher.ports.cloud import (
    CloudError,
    Instance,
    LaunchRequest,
    PoolMember,
    PoolState,
    PoolViews,
    Provider,
    StorageViews,
    StoredObject,
    UploadForm,
)

# The account the fake's buckets belong to (moto's default, as the adapter reads it).
ACCOUNT = "123456789012"
_NOT_THERE = CloudError(ErrorKind.PERMANENT, "IncorrectInstanceState", "no such resource")


class _Faults:
    def __init__(self) -> None:
        self._left: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def fail(self, operation: str, times: int = 1) -> None:
        self._left[operation] = times

    def enter(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        if self._left.get(operation, 0) > 0:
            self._left[operation] -= 1
            raise CloudError(ErrorKind.RETRY, None, f"{operation}: no answer (injected)")


@dataclass
class _Group:
    tags: dict[str, str]
    sizes: tuple[int, int, int]  # min, desired, max: now
    sold: tuple[int, int, int]  # as sold (a start restores them)
    instance_type: str
    members: list[str] = field(default_factory=list)
    alarm_state: str = "INSUFFICIENT_DATA"
    # Made last by a launch: a group without it is a launch cut short.
    alarm: bool = True
    created: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))


class FakePool:
    """Knobs: `images`, `subnets`, `security_groups`, `key_pairs` (what exists for
    check_plan); `fail(operation, times)`; `cut_short()`: the next launch makes the
    group, not its alarm, and gets no answer (a process killed halfway); `groups` to
    look at or change."""

    kinds = frozenset({scaling_pool.KIND})

    def __init__(
        self,
        *,
        images: Iterable[str] = (),
        subnets: Iterable[str] = (),
        security_groups: Iterable[str] = (),
        key_pairs: Iterable[str] = (),
    ) -> None:
        self.images, self.subnets = set(images), set(subnets)
        self.security_groups, self.key_pairs = set(security_groups), set(key_pairs)
        self.groups: dict[str, _Group] = {}
        self.launches: list[LaunchRequest] = []
        self._faults = _Faults()
        self._serial = 0
        self._cut = False

    @property
    def calls(self) -> dict[str, int]:
        return self._faults.calls

    def fail(self, operation: str, times: int = 1) -> None:
        self._faults.fail(operation, times)

    def cut_short(self) -> None:
        self._cut = True

    def _members(self, count: int) -> list[str]:
        found = []
        for _ in range(count):
            self._serial += 1
            found.append(f"i-{self._serial:017x}")
        return found

    def _handle(self, name: str) -> Instance:
        group = self.groups[name]
        low, desired, high = group.sizes
        if high == 0 and desired == 0:
            state = "stopping" if group.members else "stopped"
        elif len(group.members) >= max(low, 1):
            state = "running"
        else:
            state = "pending"
        return Instance(
            name,
            state,
            group.instance_type if group.members else "",
            group.created,
            tags=tuple(sorted(group.tags.items())),
        )

    async def find_instance(self, order_id: str) -> Instance | None:
        self._faults.enter("find_instance")
        name = group_name(order_id)
        group = self.groups.get(name)
        if group is None or group.tags.get("OrderId") != order_id or not group.alarm:
            return None  # none, not the order's, or not whole yet: the launch finishes it
        return self._handle(name)

    async def tagged_instances(self) -> list[Instance]:
        self._faults.enter("tagged_instances")
        return [
            self._handle(name)
            for name, group in sorted(self.groups.items())
            if group.tags.get("AllocatedBy") == "TokenSystem" and "OrderId" in group.tags
        ]

    async def check_plan(self, plan: Plan) -> list[str]:
        self._faults.enter("check_plan")
        pool = ScalingPool.of(plan.spec)
        problems = []
        if pool.ami not in self.images:
            problems.append(f"image {pool.ami}: not found")
        if not set(pool.security_group_ids) <= self.security_groups:
            problems.append("security groups " + ", ".join(pool.security_group_ids) + ": not found")
        if pool.subnet_id not in self.subnets:
            problems.append(f"subnet {pool.subnet_id}: not found")
        if pool.key_name and pool.key_name not in self.key_pairs:
            problems.append(f"key pair {pool.key_name}: not found")
        return problems

    async def launch(self, request: LaunchRequest) -> Instance:
        self._faults.enter("launch")
        pool = ScalingPool.of(request.plan.spec)
        if pool.ami not in self.images:
            raise CloudError(ErrorKind.PERMANENT, "InvalidAMIID.NotFound", pool.ami)
        name = group_name(request.order_id)
        found = self.groups.get(name)
        if found is not None and found.tags.get("OrderId") != request.order_id:
            raise CloudError(
                ErrorKind.PERMANENT,
                "AlreadyExists",
                f"a group named {name} exists and is not this order's",
            )
        self.launches.append(request)
        if name not in self.groups:
            sizes = (pool.min_size, pool.desired_capacity, pool.max_size)
            self.groups[name] = _Group(
                {**request.tags, "PoolSizes": "/".join(str(n) for n in sizes)},
                sizes,
                sizes,
                pool.instance_type,
                self._members(pool.desired_capacity),
                alarm=False,
            )
        if self._cut:
            self._cut = False
            raise CloudError(ErrorKind.RETRY, None, "launch: no answer (cut short)")
        self.groups[name].alarm = True
        return self._handle(name)

    async def describe(self, instance_id: str) -> Instance | None:
        self._faults.enter("describe")
        return self._handle(instance_id) if instance_id in self.groups else None

    async def console_output(self, instance_id: str) -> str | None:
        self._faults.enter("console_output")
        return None

    async def stop(self, instance_id: str) -> None:
        self._faults.enter("stop")
        group = self.groups.get(instance_id)
        if group is None:
            raise _NOT_THERE
        group.sizes, group.members = (0, 0, 0), []

    async def start(self, instance_id: str) -> None:
        self._faults.enter("start")
        group = self.groups.get(instance_id)
        if group is None:
            raise _NOT_THERE
        group.sizes = group.sold
        if len(group.members) < group.sold[1]:
            group.members += self._members(group.sold[1] - len(group.members))

    async def terminate(self, instance_id: str) -> None:
        self._faults.enter("terminate")
        self.groups.pop(instance_id, None)

    async def pool(self, resource_id: str) -> PoolState | None:
        self._faults.enter("pool")
        group = self.groups.get(resource_id)
        if group is None:
            return None
        low, desired, high = group.sizes
        return PoolState(
            tuple(PoolMember(m, "InService") for m in group.members),
            low,
            desired,
            high,
            group.alarm_state,
        )


@dataclass
class _Bucket:
    tags: dict[str, str]
    objects: dict[str, bytes] = field(default_factory=dict)
    stopped: bool = False
    # Tagged last by a launch: an untagged bucket is a launch cut short.
    tagged: bool = True


class FakeStorage:
    """Knobs: `fail(operation, times)`; `put(bucket, key, data)` as an owner's upload;
    `cut_short()`: the next launch makes the bucket, not its tags, and gets no answer."""

    kinds = frozenset({storage_bucket.KIND})

    def __init__(self) -> None:
        self.buckets: dict[str, _Bucket] = {}
        self.launches: list[LaunchRequest] = []
        self._faults = _Faults()
        self._cut = False

    def cut_short(self) -> None:
        self._cut = True

    @property
    def calls(self) -> dict[str, int]:
        return self._faults.calls

    def fail(self, operation: str, times: int = 1) -> None:
        self._faults.fail(operation, times)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.buckets[bucket].objects[key] = data

    def _handle(self, name: str) -> Instance:
        bucket = self.buckets[name]
        return Instance(
            name,
            "stopped" if bucket.stopped else "running",
            "",
            None,
            tags=tuple(sorted(bucket.tags.items())),
        )

    async def find_instance(self, order_id: str) -> Instance | None:
        self._faults.enter("find_instance")
        name = bucket_name(order_id, ACCOUNT)
        bucket = self.buckets.get(name)
        if bucket is None or not bucket.tagged or bucket.tags.get("OrderId") != order_id:
            return None
        return self._handle(name)

    async def tagged_instances(self) -> list[Instance]:
        self._faults.enter("tagged_instances")
        return [
            self._handle(name)
            for name, bucket in sorted(self.buckets.items())
            if bucket.tagged and bucket.tags.get("AllocatedBy") == "TokenSystem"
        ]

    async def check_plan(self, plan: Plan) -> list[str]:
        self._faults.enter("check_plan")
        StorageBucket.of(plan.spec)
        return []

    async def launch(self, request: LaunchRequest) -> Instance:
        self._faults.enter("launch")
        StorageBucket.of(request.plan.spec)
        name = bucket_name(request.order_id, ACCOUNT)
        self.launches.append(request)
        if name not in self.buckets:
            self.buckets[name] = _Bucket({}, tagged=False)
        if self._cut:
            self._cut = False
            raise CloudError(ErrorKind.RETRY, None, "launch: no answer (cut short)")
        self.buckets[name].tags = dict(request.tags)
        self.buckets[name].tagged = True
        return self._handle(name)

    async def describe(self, instance_id: str) -> Instance | None:
        self._faults.enter("describe")
        return self._handle(instance_id) if instance_id in self.buckets else None

    async def console_output(self, instance_id: str) -> str | None:
        self._faults.enter("console_output")
        return None

    async def stop(self, instance_id: str) -> None:
        self._faults.enter("stop")
        if instance_id not in self.buckets:
            raise _NOT_THERE
        self.buckets[instance_id].stopped = True

    async def start(self, instance_id: str) -> None:
        self._faults.enter("start")
        if instance_id not in self.buckets:
            raise _NOT_THERE
        self.buckets[instance_id].stopped = False

    async def terminate(self, instance_id: str) -> None:
        self._faults.enter("terminate")
        self.buckets.pop(instance_id, None)

    async def objects(self, resource_id: str, limit: int) -> tuple[tuple[StoredObject, ...], int]:
        self._faults.enter("objects")
        bucket = self.buckets.get(resource_id)
        if bucket is None:
            raise CloudError(ErrorKind.RETRY, "NoSuchBucket", resource_id)
        found = [StoredObject(k, len(v)) for k, v in sorted(bucket.objects.items())]
        return tuple(found[:limit]), sum(o.size for o in found)

    async def upload_form(
        self, resource_id: str, key: str, max_bytes: int, seconds: int
    ) -> UploadForm:
        return UploadForm(
            f"https://{resource_id}.s3.fake.invalid/",
            {"key": key, "policy": f"max={max_bytes};expires={seconds}"},
            max_bytes,
        )

    async def download_url(self, resource_id: str, key: str, seconds: int) -> str:
        return f"https://{resource_id}.s3.fake.invalid/{key}?expires={seconds}"


if TYPE_CHECKING:  # mypy checks that the fakes implement the whole port
    _pool: type[Provider] = FakePool
    _pool_views: type[PoolViews] = FakePool
    _storage: type[Provider] = FakeStorage
    _storage_views: type[StorageViews] = FakeStorage
