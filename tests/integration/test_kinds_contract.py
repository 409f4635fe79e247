"""The scaling pool and storage providers (issue 12): FakePool and FakeStorage must answer
like PoolCloud and StorageCloud against moto's server over HTTP, the same checks on both,
so that services tested on the fakes hold on AWS."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.cloudhelpers import AWS_ENV, aws_client, subnet_and_image
from watcher.adapters.cloud.fake_kinds import FakePool, FakeStorage
from watcher.adapters.cloud.pool import open_pools
from watcher.adapters.cloud.storage import open_storage
from watcher.domain.kinds import scaling_pool, storage_bucket
from watcher.domain.pricing import Plan
from watcher.domain.provisioning import ErrorKind, client_token, instance_tags
from watcher.domain.resources import ResourceSpec
from watcher.ports.cloud import (
    CloudError,
    LaunchRequest,
    PoolViews,
    Provider,
    StorageViews,
    UploadForm,
)

PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
REGION = "us-east-1"
ORDER = "ab" * 16
OTHER_ORDER = "cd" * 16


def request(plan: Plan, order_id: str = ORDER) -> LaunchRequest:
    return LaunchRequest(
        order_id=order_id,
        client_token=client_token(order_id),
        plan=plan,
        tags=instance_tags(order_id, PAYER, "0x" + "ab" * 32, plan),
        ssh_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuyerKey",),
    )


# The fixtures' own `request` (pytest's) hides the function above inside them.
launch_of = request


@dataclass
class PoolWorld:
    provider: Any  # Provider and PoolViews
    image: str
    subnet: str
    # A launch of ORDER killed after its group was made, before its alarm.
    cut_short: Callable[[Plan], Awaitable[None]]

    def plan(self, **changes: Any) -> Plan:
        table = {"instance_type": "t3.micro", "ami": self.image, "subnet_id": self.subnet}
        table.update(changes)
        return Plan("pool", 30, scaling_pool.parse("pool", table))


@pytest.fixture(params=["fake", "aws"])
async def pools(request: pytest.FixtureRequest) -> AsyncIterator[PoolWorld]:
    if request.param == "fake":
        fake = FakePool(images=["ami-0fa4e0000000000a1"], subnets=["subnet-0fa4e0000000000a1"])

        async def cut_fake(plan: Plan) -> None:
            fake.cut_short()
            with pytest.raises(CloudError):
                await fake.launch(launch_of(plan))

        yield PoolWorld(fake, "ami-0fa4e0000000000a1", "subnet-0fa4e0000000000a1", cut_fake)
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    moto = request.getfixturevalue("moto")
    moto.reset()
    subnet, image = subnet_and_image(moto.url, REGION)
    async with open_pools(REGION, moto.url, 10) as cloud:

        async def cut_aws(plan: Plan) -> None:
            await cloud.launch(launch_of(plan))
            cw = aws_client(moto.url, "cloudwatch", REGION)
            cw.delete_alarms(AlarmNames=[f"{scaling_pool.group_name(ORDER)}-cpu"])

        yield PoolWorld(cloud, image, subnet, cut_aws)


async def test_a_pool_is_the_orders_group_running_its_desired_instances(pools: PoolWorld) -> None:
    provider: Provider = pools.provider
    plan = pools.plan(min_size=1, desired_capacity=2, max_size=4)
    assert await provider.check_plan(plan) == []
    launched = await provider.launch(request(plan))
    assert launched.instance_id == scaling_pool.group_name(ORDER)
    found = await provider.find_instance(ORDER)
    assert found is not None and found.instance_id == launched.instance_id
    assert found.state == "running" and found.tag("OrderId") == ORDER
    assert await provider.find_instance(OTHER_ORDER) is None
    views: PoolViews = pools.provider
    state = await views.pool(launched.instance_id)
    assert state is not None
    assert (state.min_size, state.desired_capacity, state.max_size) == (1, 2, 4)
    assert len(state.members) == 2
    assert state.alarm_state is not None
    # A second launch (an answer lost) finishes nothing twice: still one group.
    again = await provider.launch(request(plan))
    assert again.instance_id == launched.instance_id
    assert [i.instance_id for i in await provider.tagged_instances()] == [launched.instance_id]


async def test_a_pool_is_stopped_to_zero_started_to_its_sizes_and_terminated(
    pools: PoolWorld,
) -> None:
    provider: Provider = pools.provider
    views: PoolViews = pools.provider
    plan = pools.plan(min_size=1, desired_capacity=1, max_size=3)
    name = (await provider.launch(request(plan))).instance_id
    await provider.stop(name)
    stopped = await provider.describe(name)
    assert stopped is not None and stopped.state == "stopped"
    state = await views.pool(name)
    assert state is not None and (state.desired_capacity, state.max_size) == (0, 0)
    assert state.members == ()
    await provider.stop(name)  # stopping a stopped pool is not an error
    await provider.start(name)
    started = await provider.describe(name)
    assert started is not None and started.state == "running"
    state = await views.pool(name)
    assert state is not None
    assert (state.min_size, state.desired_capacity, state.max_size) == (1, 1, 3)
    await provider.terminate(name)
    assert await provider.describe(name) is None
    assert await provider.find_instance(ORDER) is None
    assert await views.pool(name) is None
    await provider.terminate(name)  # terminating what is gone is not an error
    assert await provider.tagged_instances() == []


async def test_a_group_of_the_orders_name_that_is_not_its_is_never_used(
    pools: PoolWorld,
) -> None:
    provider: Provider = pools.provider
    plan = pools.plan()
    await provider.launch(request(plan, OTHER_ORDER))
    # The same name, as if someone else's group had it (order ids that share 27 digits).
    name = scaling_pool.group_name(ORDER)
    squatter = LaunchRequest(ORDER, client_token(ORDER), plan, {"OrderId": "someone"})
    if isinstance(pools.provider, FakePool):
        pools.provider.groups[name] = pools.provider.groups.pop(
            scaling_pool.group_name(OTHER_ORDER)
        )
        pools.provider.groups[name].tags = {"OrderId": "someone"}
    else:
        await provider.launch(squatter)
    assert await provider.find_instance(ORDER) is None
    with pytest.raises(CloudError) as refused:
        await provider.launch(request(plan))
    assert refused.value.kind is ErrorKind.PERMANENT
    assert "is not this order's" in refused.value.message


async def test_check_plan_names_a_pools_missing_image(pools: PoolWorld) -> None:
    problems = await pools.provider.check_plan(pools.plan(ami="ami-0000000000000dead"))
    assert len(problems) == 1 and problems[0].startswith("image ami-0000000000000dead")


@dataclass
class StorageWorld:
    provider: Any  # Provider and StorageViews
    # Carries out an upload form with one file, and reads a link: as the owner's browser.
    post: Callable[[UploadForm, str, bytes], int]
    get: Callable[[str], bytes | None]
    # The largest upload the form's signed policy lets through, as S3 reads it (moto's
    # server does not hold POSTs to their policy's conditions; AWS does).
    cap: Callable[[UploadForm], int]
    # A launch of ORDER killed right after the bucket was made, before it was tagged.
    cut_short: Callable[[Plan], Awaitable[None]]


def storage_plan(quota: str = "1MiB", **more: Any) -> Plan:
    return Plan("box", 10, storage_bucket.parse("box", {"quota": quota, **more}))


@pytest.fixture(params=["fake", "aws"])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[StorageWorld]:
    if request.param == "fake":
        fake = FakeStorage()

        def post_fake(form: UploadForm, filename: str, data: bytes) -> int:
            if len(data) > form.max_bytes:
                return 400
            bucket = form.url.removeprefix("https://").split(".")[0]
            fake.put(bucket, form.fields["key"], data)
            return 204

        def get_fake(url: str) -> bytes | None:
            bucket, rest = url.removeprefix("https://").split(".s3.fake.invalid/")
            key = rest.split("?")[0]
            found = fake.buckets.get(bucket)
            return found.objects.get(key) if found is not None else None

        def cap_fake(form: UploadForm) -> int:
            return int(form.fields["policy"].split(";")[0].removeprefix("max="))

        async def cut_fake(plan: Plan) -> None:
            fake.cut_short()
            with pytest.raises(CloudError):
                await fake.launch(launch_of(plan))

        yield StorageWorld(fake, post_fake, get_fake, cap_fake, cut_fake)
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    moto = request.getfixturevalue("moto")
    moto.reset()

    def post_s3(form: UploadForm, filename: str, data: bytes) -> int:
        answer = httpx.post(form.url, data=form.fields, files={"file": (filename, data)})
        return answer.status_code

    def get_s3(url: str) -> bytes | None:
        answer = httpx.get(url)
        return answer.content if answer.status_code == 200 else None

    def cap_s3(form: UploadForm) -> int:
        policy = json.loads(base64.b64decode(form.fields["policy"]))
        (low, high) = next(
            c[1:]
            for c in policy["conditions"]
            if isinstance(c, list) and c[0] == "content-length-range"
        )
        assert low == 0
        return int(high)

    async def cut_s3(plan: Plan) -> None:
        s3 = aws_client(moto.url, "s3", REGION)
        s3.create_bucket(Bucket=storage_bucket.bucket_name(ORDER, "123456789012"))

    async with open_storage(REGION, moto.url, 10) as cloud:
        yield StorageWorld(cloud, post_s3, get_s3, cap_s3, cut_s3)


async def test_a_bucket_is_the_orders_with_its_owners_links(storage: StorageWorld) -> None:
    provider: Provider = storage.provider
    views: StorageViews = storage.provider
    plan = storage_plan("1MiB", expire_days=30)
    assert await provider.check_plan(plan) == []
    launched = await provider.launch(request(plan))
    assert launched.instance_id == storage_bucket.bucket_name(ORDER, "123456789012")
    assert launched.state == "running"
    found = await provider.find_instance(ORDER)
    assert found is not None and found.tag("OrderId") == ORDER
    assert await provider.find_instance(OTHER_ORDER) is None
    assert (await provider.launch(request(plan))).instance_id == launched.instance_id
    assert [i.instance_id for i in await provider.tagged_instances()] == [launched.instance_id]

    form = await views.upload_form(launched.instance_id, "notes.txt", 1000, 60)
    assert form.max_bytes == 1000 and form.fields["key"] == "notes.txt"
    assert storage.post(form, "notes.txt", b"hello, pool") in (200, 201, 204)
    assert storage.cap(form) == 1000  # what S3 holds a POST of this form to
    shown, total = await views.objects(launched.instance_id, 10)
    assert [(o.key, o.size) for o in shown] == [("notes.txt", 11)] and total == 11
    url = await views.download_url(launched.instance_id, "notes.txt", 60)
    assert storage.get(url) == b"hello, pool"


async def test_a_bucket_is_stopped_started_and_emptied_when_terminated(
    storage: StorageWorld,
) -> None:
    provider: Provider = storage.provider
    views: StorageViews = storage.provider
    name = (await provider.launch(request(storage_plan()))).instance_id
    form = await views.upload_form(name, "kept.txt", 1000, 60)
    assert storage.post(form, "kept.txt", b"kept through grace") in (200, 201, 204)
    await provider.stop(name)
    stopped = await provider.describe(name)
    assert stopped is not None and stopped.state == "stopped"
    shown, _ = await views.objects(name, 10)
    assert [o.key for o in shown] == ["kept.txt"]  # the data is kept while stopped
    await provider.start(name)
    started = await provider.describe(name)
    assert started is not None and started.state == "running"
    await provider.terminate(name)
    assert await provider.describe(name) is None
    assert await provider.find_instance(ORDER) is None
    await provider.terminate(name)  # gone already: not an error
    assert await provider.tagged_instances() == []


def test_storage_plans_are_checked() -> None:
    assert storage_bucket.StorageBucket.of(storage_plan("10GiB").spec).quota == 10 * 2**30
    for table, message in (
        ({}, "quota is needed"),
        ({"quota": "10GB"}, "size like"),
        ({"quota": "0MiB"}, "more than 0"),
        ({"quota": "1GiB", "expire_days": 0}, "expire_days"),
    ):
        with pytest.raises(ValueError, match=message):
            storage_bucket.parse("box", table)
    assert ResourceSpec.from_json(storage_plan().spec.to_json()) == storage_plan().spec


# A launch cut short (the process killed between two of its calls) is finished by the
# next launch, which the provisioner makes only after find_instance answers None.


async def test_a_pool_launch_cut_short_is_finished_and_nothing_made_twice(
    pools: PoolWorld,
) -> None:
    provider: Provider = pools.provider
    plan = pools.plan()
    await pools.cut_short(plan)
    assert await provider.find_instance(ORDER) is None  # not whole: the launch goes on
    again = await provider.launch(request(plan))
    assert again.instance_id == scaling_pool.group_name(ORDER)
    found = await provider.find_instance(ORDER)
    assert found is not None and found.instance_id == again.instance_id
    assert [i.instance_id for i in await provider.tagged_instances()] == [again.instance_id]


async def test_a_bucket_launch_cut_short_is_finished(storage: StorageWorld) -> None:
    provider: Provider = storage.provider
    await storage.cut_short(storage_plan())
    assert await provider.find_instance(ORDER) is None  # untagged: not whole yet
    assert await provider.tagged_instances() == []
    launched = await provider.launch(request(storage_plan()))
    assert launched.tag("OrderId") == ORDER
    assert await provider.find_instance(ORDER) is not None
    assert [i.instance_id for i in await provider.tagged_instances()] == [launched.instance_id]
