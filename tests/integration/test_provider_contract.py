"""FakeProvider must answer like the EC2 adapter against moto's server over HTTP: the same
checks run against both, so provisioner tests on the fake mean something for EC2."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cloudhelpers import AWS_ENV, FaultProxy, ec2_client
from watcher.adapters.cloud.ec2 import open_ec2
from watcher.adapters.cloud.fake import FakeProvider, Fault
from watcher.domain.host_keys import parse_console
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.domain.pricing import Plan
from watcher.domain.provisioning import ErrorKind, client_token, instance_tags
from watcher.ports.cloud import (
    ENDED_STATES,
    LIVE_STATES,
    NOT_FOUND,
    CloudError,
    LaunchRequest,
    Provider,
)

PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
UNKNOWN_INSTANCE = "i-0123456789abcdef0"


@dataclass
class World:
    """A provider and what exists in it: an image, a security group, a subnet, a key pair."""

    name: str
    provider: Provider
    image: str
    security_group: str
    subnet: str
    key_name: str
    # A launch template of `image` (with the fleet tag AllocatedBy=TokenSystem).
    template: str
    # From now on every look-up answers AuthFailure (EC2) or UnauthorizedOperation (fake).
    refuse_looks: Callable[[], None]

    def plan(self, **changes: Any) -> Plan:
        spec: dict[str, Any] = {"instance_type": "t3.micro", "ami": self.image, **changes}
        return ec2_plan("t3.micro", 10, **spec)

    def request(self, order_id: str, plan: Plan | None = None, **tags: str) -> LaunchRequest:
        plan = plan or self.plan()
        return LaunchRequest(
            order_id=order_id,
            client_token=client_token(order_id),
            plan=plan,
            tags=tags or instance_tags(order_id, PAYER, "0x" + "ab" * 32, plan),
        )


@pytest.fixture(params=["fake", "ec2"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    if request.param == "fake":
        fake = FakeProvider(
            images=["ami-0fa4e0000000000a1"],
            security_groups=["sg-0fa4e0000000000a1"],
            subnets=["subnet-0fa4e0000000000a1"],
            key_pairs=["watcher-key"],
            launch_templates={"TokenizedLaunchTemplate": "ami-0fa4e0000000000a1"},
        )

        def refuse_fake() -> None:
            fake.fail("find_instance", Fault.PERMANENT, times=None)
            fake.fail("describe", Fault.PERMANENT, times=None)
            fake.fail("console_output", Fault.PERMANENT, times=None)
            fake.fail("tagged_instances", Fault.PERMANENT, times=None)

        yield World(
            "fake", fake, "ami-0fa4e0000000000a1", "sg-0fa4e0000000000a1",
            "subnet-0fa4e0000000000a1", "watcher-key", "TokenizedLaunchTemplate", refuse_fake,
        )  # fmt: skip
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    moto = request.getfixturevalue("moto")
    image = request.getfixturevalue("moto_ami")
    moto.reset()
    client = ec2_client(moto.url)
    client.create_key_pair(KeyName="watcher-key")
    client.create_launch_template(
        LaunchTemplateName="TokenizedLaunchTemplate",
        LaunchTemplateData={
            "ImageId": image,
            "InstanceType": "t3.micro",
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": "AllocatedBy", "Value": "TokenSystem"}],
                }
            ],
        },
    )
    group = client.describe_security_groups()["SecurityGroups"][0]["GroupId"]
    subnet = client.describe_subnets()["Subnets"][0]["SubnetId"]
    refuse: list[bool] = []
    proxy = await FaultProxy(moto.url, describe_fault=lambda: "auth" if refuse else None).start()
    try:
        async with open_ec2("us-east-1", proxy.url, 10) as cloud:
            yield World(
                "ec2", cloud, image, group, subnet, "watcher-key", "TokenizedLaunchTemplate",
                lambda: refuse.append(True),
            )  # fmt: skip
    finally:
        await proxy.stop()


async def running(world: World, instance_id: str) -> None:
    """Wait until the instance is visible and running (moto: at once; the fake: at the
    first describe)."""
    for _ in range(20):
        found = await world.provider.describe(instance_id)
        if found is not None and found.state == "running":
            return
    raise AssertionError(f"{instance_id} never ran")


async def test_a_launched_instance_is_found_by_its_order(world: World) -> None:
    request = world.request("order-1")
    launched = await world.provider.launch(request)
    assert launched.state in LIVE_STATES
    assert launched.instance_type == "t3.micro"
    found = await world.provider.find_instance("order-1")
    assert found is not None
    assert found.instance_id == launched.instance_id
    assert dict(found.tags) == request.tags
    assert found.instance_type == "t3.micro" and found.image == world.image
    assert found.launched_at is not None
    assert not found.ended
    assert await world.provider.find_instance("order-2") is None


async def test_an_order_launches_from_the_template_with_its_own_type(world: World) -> None:
    """The template holds the image; the order gives its type and tags (issue 12)."""
    plan = world.plan(ami="", instance_type="t3.large", launch_template=world.template)
    assert await world.provider.check_plan(plan) == []
    request = world.request("order-1", plan)
    launched = await world.provider.launch(request)
    found = await world.provider.find_instance("order-1")
    assert found is not None and found.instance_id == launched.instance_id
    assert found.instance_type == "t3.large" and found.image == world.image
    assert request.tags.items() <= dict(found.tags).items()


async def test_check_plan_names_a_missing_launch_template(world: World) -> None:
    plan = world.plan(ami="", launch_template="NoSuchTemplate")
    problems = await world.provider.check_plan(plan)
    assert len(problems) == 1 and problems[0].startswith("launch template NoSuchTemplate: ")


async def test_find_answers_a_live_instance_before_an_ended_one(world: World) -> None:
    """Whatever the ids' order: two instances for one order, the smaller id ended."""
    first = await world.provider.launch(world.request("order-1"))
    second = await world.provider.launch(world.request("order-1"))
    ended, live = sorted([first, second], key=lambda i: i.instance_id)
    await world.provider.terminate(ended.instance_id)
    found = await world.provider.find_instance("order-1")
    assert found is not None and found.instance_id == live.instance_id


async def test_a_terminated_instance_is_still_found(world: World) -> None:
    launched = await world.provider.launch(world.request("order-1"))
    await world.provider.terminate(launched.instance_id)
    found = await world.provider.find_instance("order-1")
    assert found is not None and found.instance_id == launched.instance_id
    assert found.ended and found.state in ENDED_STATES
    assert found.state_reason == "Client.UserInitiatedShutdown"


async def test_describe_of_an_unknown_instance_is_none(world: World) -> None:
    assert await world.provider.describe(UNKNOWN_INSTANCE) is None


async def test_describe_reads_the_state(world: World) -> None:
    launched = await world.provider.launch(world.request("order-1"))
    await running(world, launched.instance_id)
    found = await world.provider.describe(launched.instance_id)
    assert found is not None and found.instance_id == launched.instance_id
    assert found.tag("OrderId") == "order-1" and found.state_reason is None


async def test_console_output_of_a_running_instance_and_of_an_unknown_one(world: World) -> None:
    """Text (moto: a sample kernel log without host keys; the fake: cloud-init's block),
    or None while there is none yet; an unknown id is NOT_FOUND, retryable (a look)."""
    launched = await world.provider.launch(world.request("order-1"))
    await running(world, launched.instance_id)
    output = await world.provider.console_output(launched.instance_id)
    assert output is None or isinstance(output, str)
    keys = parse_console(output or "")
    assert (
        keys == ()
        if world.name == "ec2"
        else [k.type for k in keys]
        == [
            "ECDSA",
            "ED25519",
            "RSA",
        ]
    )
    with pytest.raises(CloudError) as raised:
        await world.provider.console_output(UNKNOWN_INSTANCE)
    assert raised.value.code == NOT_FOUND and raised.value.kind is ErrorKind.RETRY


async def test_tagged_instances_lists_only_what_the_watcher_launched(world: World) -> None:
    ours = await world.provider.launch(world.request("order-1"))
    await world.provider.launch(world.request("order-2", OrderId="order-2", Name="someone"))
    listed = await world.provider.tagged_instances()
    assert [i.instance_id for i in listed] == [ours.instance_id]
    assert listed[0].tag("AllocatedBy") == "TokenSystem"


async def test_check_plan_accepts_a_plan_that_can_be_launched(world: World) -> None:
    plan = world.plan(
        key_name=world.key_name,
        security_group_ids=(world.security_group,),
        subnet_id=world.subnet,
    )
    assert await world.provider.check_plan(plan) == []
    assert await world.provider.check_plan(world.plan()) == []


async def test_check_plan_names_each_missing_part(world: World) -> None:
    plan = world.plan(
        ami="ami-0123456789abcdef0",
        key_name="nobody",
        security_group_ids=("sg-0123456789abcdef0",),
        subnet_id="subnet-0123456789abcdef0",
    )
    assert await world.provider.check_plan(plan) == [
        "image ami-0123456789abcdef0: InvalidAMIID.NotFound",
        "security groups sg-0123456789abcdef0: InvalidGroup.NotFound",
        "subnet subnet-0123456789abcdef0: InvalidSubnetID.NotFound",
        "key pair nobody: InvalidKeyPair.NotFound",
    ]
    only_key = world.plan(key_name="nobody")
    assert await world.provider.check_plan(only_key) == ["key pair nobody: InvalidKeyPair.NotFound"]


async def test_launching_an_unknown_image_is_a_permanent_error(world: World) -> None:
    request = world.request("order-1", world.plan(ami="ami-0123456789abcdef0"))
    with pytest.raises(CloudError) as raised:
        await world.provider.launch(request)
    assert raised.value.kind is ErrorKind.PERMANENT
    assert (raised.value.code or "").startswith("InvalidAMIID")
    assert await world.provider.find_instance("order-1") is None


async def test_stop_start_and_terminate_change_the_state_and_are_idempotent(
    world: World,
) -> None:
    launched = await world.provider.launch(world.request("order-1"))
    instance_id = launched.instance_id
    await running(world, instance_id)

    for _ in range(2):
        await world.provider.stop(instance_id)
        stopped = await world.provider.describe(instance_id)
        assert stopped is not None and stopped.state in ("stopping", "stopped")
        assert not stopped.ended
    for _ in range(2):
        await world.provider.start(instance_id)
        started = await world.provider.describe(instance_id)
        assert started is not None and started.state in ("pending", "running")
    for _ in range(2):
        await world.provider.terminate(instance_id)
        ended = await world.provider.describe(instance_id)
        assert ended is not None and ended.ended
        assert ended.state_reason == "Client.UserInitiatedShutdown"


@pytest.mark.parametrize("action", ["stop", "start", "terminate"])
async def test_acting_on_an_unknown_instance_is_a_permanent_not_found(
    world: World, action: str
) -> None:
    with pytest.raises(CloudError) as raised:
        await getattr(world.provider, action)(UNKNOWN_INSTANCE)
    assert raised.value.kind is ErrorKind.PERMANENT and raised.value.code == NOT_FOUND


@pytest.mark.parametrize("action", ["stop", "start"])
async def test_an_ended_instance_cannot_be_stopped_or_started(world: World, action: str) -> None:
    if world.name == "ec2":
        pytest.skip("moto's server stops and starts terminated instances; AWS answers "
                    "IncorrectInstanceState, as the fake does")  # fmt: skip
    launched = await world.provider.launch(world.request("order-1"))
    await world.provider.terminate(launched.instance_id)
    with pytest.raises(CloudError) as raised:
        await getattr(world.provider, action)(launched.instance_id)
    assert raised.value.kind is ErrorKind.PERMANENT
    assert raised.value.code == "IncorrectInstanceState"


async def test_a_refused_look_up_is_always_retryable(world: World) -> None:
    """An error while looking (AuthFailure after a credential rotation) says nothing about
    the order's instance: never an error that could end an order."""
    launched = await world.provider.launch(world.request("order-1"))
    world.refuse_looks()
    looks: list[Callable[[], Awaitable[object]]] = [
        lambda: world.provider.find_instance("order-1"),
        lambda: world.provider.describe(launched.instance_id),
        lambda: world.provider.console_output(launched.instance_id),
        world.provider.tagged_instances,
    ]
    for look in looks:
        with pytest.raises(CloudError) as raised:
            await look()
        assert raised.value.kind is ErrorKind.RETRY
