"""FakeInfra must answer like the AWS adapter against moto's server over HTTP: the same
checks run against both, so the infra service's tests on the fake mean something on AWS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from tests.cloudhelpers import AWS_ENV, aws_client, subnet_and_image
from tests.keyhelpers import new_ssh_key
from watcher.adapters.cloud.infra_aws import open_infra
from watcher.adapters.cloud.infra_fake import FakeInfra
from watcher.domain.infra import (
    Declared,
    InfraParams,
    Prerequisite,
    ResourceType,
    declare,
    prerequisites,
)
from watcher.ports.cloud import CloudError
from watcher.ports.infra import Infra
from watcher.services.infra import Action, InfraRun

REGION = "eu-north-1"
# The operator's own key, imported: no private key to keep.
OPERATOR_KEY = new_ssh_key("operator@example")


@dataclass
class World:
    name: str
    infra: Infra
    params: InfraParams
    # Puts one object into the named bucket.
    put_object: Callable[[str], None]

    def declared(self, **changes: Any) -> tuple[Declared, ...]:
        return declare(replace(self.params, **changes))

    def run(self, **changes: Any) -> InfraRun:
        params = replace(self.params, **changes)
        return InfraRun(declare(params), self.infra, params.stack, prerequisites(params), settle=5)

    async def read(self, logical_id: str, **changes: Any) -> Any:
        run = self.run(**changes)
        resource = next(r for r in run.declared if r.logical_id == logical_id)
        properties, observed = await run._look(resource)
        return properties, observed


@pytest.fixture(params=["fake", "aws"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    if request.param == "fake":
        fake = FakeInfra(
            region=REGION,
            existing={
                Prerequisite.SUBNET: {"subnet-0fa4e0000000000a1"},
                Prerequisite.IMAGE: {"ami-0fa4e0000000000a1"},
            },
        )
        params = InfraParams(
            subnet_id="subnet-0fa4e0000000000a1",
            ami="ami-0fa4e0000000000a1",
            public_key=OPERATOR_KEY,
        )

        def put_fake(bucket: str) -> None:
            fake.objects.setdefault(bucket, set()).add("data.bin")

        yield World("fake", fake, params, put_fake)
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    moto = request.getfixturevalue("moto")
    moto.reset()
    subnet, image = subnet_and_image(moto.url, REGION)

    def put_s3(bucket: str) -> None:
        s3 = aws_client(moto.url, "s3", REGION)
        s3.put_object(Bucket=bucket, Key="data.bin", Body=b"kept")

    async with open_infra(REGION, moto.url, 10) as infra:
        yield World(
            "aws", infra, InfraParams(subnet_id=subnet, ami=image, public_key=OPERATOR_KEY), put_s3
        )


async def test_nothing_declared_exists_at_first(world: World) -> None:
    for resource in world.declared():
        _, observed = await world.read(resource.logical_id)
        assert observed is None, resource.logical_id


async def test_what_is_created_reads_back_as_declared_with_its_tags(world: World) -> None:
    # Created one by one through the port, each read back as declared.
    run = world.run(public_key=None)
    for resource in run.declared:
        properties = await run._resolve(dict(resource.properties))
        created = await world.infra.create(resource.type, properties, resource.tags)
        run._attributes[resource.logical_id] = created.attributes
        if resource.type is ResourceType.KEY_PAIR:
            assert created.private_key is not None and "PRIVATE KEY" in created.private_key
        else:
            assert created.private_key is None
        seen = await world.infra.read(resource.type, properties)
        assert seen is not None, resource.logical_id
        assert run.ours(seen), resource.logical_id
        assert run._differences(resource, properties, seen) == (), resource.logical_id
        assert "Ref" in seen.attributes
    assert [c.action for c in await run.plan()] == [Action.NONE] * len(run.declared)


async def test_an_imported_key_pair_gives_no_private_key(world: World) -> None:
    run = world.run()
    pair = next(r for r in run.declared if r.type is ResourceType.KEY_PAIR)
    properties = await run._resolve(dict(pair.properties))
    created = await world.infra.create(pair.type, properties, pair.tags)
    assert created.private_key is None
    assert created.attributes["Ref"] == "ec2keypair"


async def test_an_update_changes_what_differs(world: World) -> None:
    await world.run().apply()
    changed = world.run(max_size=7, cpu_threshold=75, instance_type="t3.small")
    plan = {c.resource.logical_id: c for c in await changed.plan()}
    assert plan["ScalingGroup"].action is Action.UPDATE
    assert plan["HighCpuAlarm"].action is Action.UPDATE
    assert plan["LaunchTemplate"].action is Action.UPDATE
    await changed.apply()
    _, group = await world.read("ScalingGroup")
    assert group.properties["MaxSize"] == "7"
    _, template = await world.read("LaunchTemplate")
    assert template.properties["LaunchTemplateData"]["InstanceType"] == "t3.small"
    assert template.attributes["LatestVersionNumber"] == "2"
    assert group.properties["LaunchTemplate"]["Version"] == "2"
    _, alarm = await world.read("HighCpuAlarm")
    assert float(alarm.properties["Threshold"]) == 75.0
    assert [c.action for c in await changed.plan()] == [Action.NONE] * len(changed.declared)


async def test_deleting_a_group_takes_its_scaling_policy_and_absent_is_no_error(
    world: World,
) -> None:
    run = world.run()
    await run.apply()
    group = next(r for r in run.declared if r.type is ResourceType.GROUP)
    properties = await run._resolve(dict(group.properties))
    await world.infra.delete(group.type, properties)
    _, policy = await world.read("ScaleOutPolicy")
    assert policy is None
    for _ in range(3):  # gone already: deleting again is not an error
        await world.infra.delete(group.type, properties)


async def test_a_bucket_holding_objects_is_not_removed(world: World) -> None:
    run = world.run()
    await run.apply()
    bucket = next(r for r in run.declared if r.type is ResourceType.BUCKET)
    properties = await run._resolve(dict(bucket.properties))
    world.put_object(properties["BucketName"])
    with pytest.raises(CloudError) as refused:
        await world.infra.delete(bucket.type, properties)
    assert refused.value.code == "BucketNotEmpty"
    assert await world.infra.read(bucket.type, properties) is not None


async def test_the_account_is_the_credentials_one(world: World) -> None:
    assert await world.infra.account_id() == "123456789012"


async def test_what_the_account_has_and_lacks(world: World) -> None:
    for what, id in prerequisites(world.params):
        assert await world.infra.exists(what, id), (what, id)
    assert not await world.infra.exists(Prerequisite.SUBNET, "subnet-0000000000000dead")
    assert not await world.infra.exists(Prerequisite.IMAGE, "ami-0000000000000dead")
    assert not await world.infra.exists(Prerequisite.SECURITY_GROUP, "sg-0000000000000dead")
