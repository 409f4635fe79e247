"""The thesis's cloud as one declaration (domain/infra.py) and `watcher infra`'s rules
(services/infra.py) on the in-memory infra port."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from watcher.adapters.cloud.infra_fake import FakeInfra
from watcher.domain.errors import InvalidInput
from watcher.domain.infra import (
    ALLOCATED_BY,
    InfraParams,
    Prerequisite,
    ResourceType,
    declare,
    parse_infra,
    policy_actions,
    prerequisites,
    template,
    watcher_policy,
)
from watcher.services.infra import Action, InfraError, InfraRun

PARAMS = InfraParams(subnet_id="subnet-0fa4e0000000000a1", ami="ami-0fa4e0000000000a1")
KEYED = replace(PARAMS, public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample operator")


def run_on(fake: FakeInfra, params: InfraParams = KEYED) -> InfraRun:
    fake.existing.setdefault(Prerequisite.SUBNET, {"subnet-0fa4e0000000000a1"})
    fake.existing.setdefault(Prerequisite.IMAGE, {"ami-0fa4e0000000000a1"})
    return InfraRun(
        declare(params), fake, params.stack, prerequisites(params), settle=0.05, look_every=0.01
    )


def test_each_resource_comes_after_what_it_refers_to() -> None:
    declared = declare(PARAMS)
    seen: set[str] = set()
    for resource in declared:
        assert resource.depends_on <= seen, resource.logical_id
        seen.add(resource.logical_id)
    assert [r.type for r in declared].count(ResourceType.GROUP) == 1


def test_the_template_carries_the_theses_numbers_and_only_declared_references() -> None:
    body = template(declare(PARAMS))["Resources"]
    group = body["ScalingGroup"]["Properties"]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == ("1", "5", "1")
    assert group["LaunchTemplate"] == {
        "LaunchTemplateId": {"Ref": "LaunchTemplate"},
        "Version": {"Fn::GetAtt": ["LaunchTemplate", "LatestVersionNumber"]},
    }
    assert group["VPCZoneIdentifier"] == ["subnet-0fa4e0000000000a1"]
    policy = body["ScaleOutPolicy"]["Properties"]
    assert (policy["AdjustmentType"], policy["ScalingAdjustment"]) == ("ChangeInCapacity", 1)
    alarm = body["HighCpuAlarm"]["Properties"]
    assert (alarm["Threshold"], alarm["Period"], alarm["EvaluationPeriods"]) == (60, 60, 2)
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Statistic"] == "Average" and alarm["MetricName"] == "CPUUtilization"
    assert body["StoragePool"]["Properties"]["BucketName"] == {
        "Fn::Sub": "tokenized-storage-pool-${AWS::AccountId}"
    }
    assert body["Role"]["Properties"]["ManagedPolicyArns"] == [{"Ref": "WatcherPolicy"}]
    # Tags where CloudFormation takes them, in each type's own shape.
    assert {"Key": "ManagedBy", "Value": "watcher-infra", "PropagateAtLaunch": False} in group[
        "Tags"
    ]
    assert "Tags" not in body["WatcherPolicy"]["Properties"]


def test_the_policy_acts_only_on_its_own_resources_and_looks_anywhere() -> None:
    """Every statement that may change something is held to the watcher's tag, to its
    buckets' names, or to one narrow purpose; only looks are on everything."""
    document = watcher_policy()
    looks = ("Describe", "ListAllMyBuckets")
    for statement in document["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        assert not any("*" in a for a in actions), actions
        if all(a.split(":")[1].startswith(looks) for a in actions):
            assert "Condition" not in statement and statement["Resource"] == "*"
            continue
        if all(a.startswith("s3:") for a in actions):
            assert statement["Resource"] in ("arn:aws:s3:::watcher-*", "arn:aws:s3:::watcher-*/*")
            continue
        if statement["Sid"] == "LaunchFromWhatPlansName":
            # Not the instance: what it is launched from and into, by type.
            assert actions == ["ec2:RunInstances"] and "Condition" not in statement
            assert not any(":instance/" in r or r == "*" for r in statement["Resource"])
            continue
        if statement["Sid"] == "LaunchOnlyPoolMembers":
            assert statement["Condition"] == {"Null": {"aws:RequestTag/PoolOrderId": "false"}}
            continue
        (condition,) = statement["Condition"]["StringEquals"].items()
        assert condition in (
            (f"aws:RequestTag/{ALLOCATED_BY[0]}", ALLOCATED_BY[1]),
            (f"aws:ResourceTag/{ALLOCATED_BY[0]}", ALLOCATED_BY[1]),
            ("ec2:CreateAction", ["RunInstances", "CreateLaunchTemplate"]),
            ("iam:AWSServiceName", "autoscaling.amazonaws.com"),
        ), condition
    assert "iam:CreateServiceLinkedRole" in policy_actions(document)
    assert not any(
        a.startswith("iam:") and a != "iam:CreateServiceLinkedRole"
        for a in policy_actions(document)
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_size": 0}, "min_size <= desired_capacity <= max_size"),
        ({"min_size": 3, "desired_capacity": 2}, "min_size <= desired_capacity"),
        ({"cpu_threshold": 150}, "percentage"),
        ({"alarm_period": 45}, "multiple of 60"),
        ({"subnet_id": "subnet-XYZ"}, "subnet-0123abcd"),
        ({"ami": "ubuntu"}, "ami-0123456789abcdef0"),
        ({"group_name": "has space"}, "infra.group_name"),
        ({"bucket_prefix": "Upper"}, "infra.bucket_prefix"),
        ({"max_size": "5"}, "whole number"),
        ({"min_size": True}, "whole number"),
        ({"security_group_ids": "sg-1"}, "list like"),
        ({"public_key": "not a key"}, "OpenSSH public key"),
        ({"maxsize": 5}, "unknown key 'maxsize'"),
    ],
)
def test_bad_infra_settings_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_infra(table)


def test_the_group_needs_a_subnet() -> None:
    with pytest.raises(ValueError, match=r"infra\.subnet_id is needed"):
        declare(InfraParams())


async def test_plan_apply_apply_plan() -> None:
    fake = FakeInfra()
    run = run_on(fake)
    assert [c.action for c in await run.plan()] == [Action.CREATE] * 9
    assert fake.acted == []
    await run.apply()
    assert len(fake.acted) == 9
    assert [c.action for c in await run.apply()] == [Action.NONE] * 9
    assert len(fake.acted) == 9  # the second apply acted on nothing


async def test_an_error_while_looking_concludes_nothing() -> None:
    fake = FakeInfra()
    await run_on(fake).apply()
    fake.fail("read")
    with pytest.raises(InfraError, match="nothing concluded"):
        await run_on(fake).plan()
    fake.fail("read")
    acted = list(fake.acted)
    with pytest.raises(InfraError, match="nothing concluded"):
        await run_on(fake).destroy()
    assert fake.acted == acted


async def test_an_apply_stopped_halfway_goes_on_where_it_stopped() -> None:
    fake = FakeInfra()
    run = run_on(fake)
    original = fake.create
    calls = 0

    async def create_failing_fifth(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 5:
            fake.fail("create")
        return await original(*args, **kwargs)

    fake.create = create_failing_fifth  # type: ignore[method-assign]
    with pytest.raises(InfraError, match=r"failed: no answer.*done before it: create"):
        await run.apply()
    assert len(fake.acted) == 4
    fake.create = original  # type: ignore[method-assign]
    await run_on(fake).apply()
    created = [(kind, name) for action, kind, name in fake.acted if action == "create"]
    assert len(created) == len(set(created)) == 9  # nothing made twice


async def test_a_name_infra_did_not_create_stops_everything_before_acting() -> None:
    fake = FakeInfra()
    other = run_on(fake, replace(KEYED, stack="someone-else"))
    await other.apply()
    acted = list(fake.acted)
    with pytest.raises(InfraError, match=r"nothing applied: .* \(and 8 more\)"):
        await run_on(fake).apply()
    assert fake.acted == acted
    # ...and destroy leaves them too.
    changes = await run_on(fake).destroy()
    assert {c.action for c in changes} == {Action.CONFLICT}
    assert fake.acted == acted


async def test_a_changed_template_moves_the_group_to_its_new_version() -> None:
    fake = FakeInfra()
    await run_on(fake).apply()
    changed = run_on(fake, replace(KEYED, instance_type="t3.small"))
    plan = {c.resource.logical_id: c for c in await changed.plan()}
    assert plan["LaunchTemplate"].action is Action.UPDATE
    # The group follows it (its Version is the template's): the plan says so.
    assert plan["ScalingGroup"].action is Action.UPDATE
    assert plan["ScalingGroup"].differences == ("follows the new TokenizedLaunchTemplate",)
    assert plan["LaunchTemplate"].differences == (
        "LaunchTemplateData.InstanceType: t3.micro -> t3.small",
    )
    await changed.apply()
    group = fake.resources[(ResourceType.GROUP, "TokenAutoScalingGroup")]
    assert group.properties["LaunchTemplate"]["Version"] == "2"
    assert [c.action for c in await changed.plan()] == [Action.NONE] * 9


async def test_apply_leaves_the_desired_capacity_to_the_alarm() -> None:
    fake = FakeInfra()
    await run_on(fake).apply()
    fake.resources[(ResourceType.GROUP, "TokenAutoScalingGroup")].properties["DesiredCapacity"] = (
        "3"
    )
    assert [c.action for c in await run_on(fake).plan()] == [Action.NONE] * 9
    bigger = run_on(fake, replace(KEYED, max_size=8))
    await bigger.apply()
    group = fake.resources[(ResourceType.GROUP, "TokenAutoScalingGroup")].properties
    assert (group["MaxSize"], group["DesiredCapacity"]) == ("8", "3")


async def test_a_made_key_pair_needs_a_new_file_and_is_written_for_its_owner_only(
    tmp_path: Path,
) -> None:
    fake = FakeInfra()
    run = run_on(fake, PARAMS)
    with pytest.raises(InvalidInput, match="pass --key-file"):
        await run.apply()
    taken = tmp_path / "taken.pem"
    taken.write_text("someone's\n")
    with pytest.raises(InfraError, match="never written over another file"):
        await run.apply(taken)
    assert fake.acted == [] and taken.read_text() == "someone's\n"
    key_file = tmp_path / "ec2keypair.pem"
    changes = await run.apply(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in key_file.read_text()
    (pair,) = [c for c in changes if c.resource.type is ResourceType.KEY_PAIR]
    assert "PRIVATE KEY" not in pair.line() and str(key_file) in pair.line()
    # The pair exists now: a second apply needs no file.
    assert [c.action for c in await run.apply()] == [Action.NONE] * 9


async def test_destroy_removes_what_it_made_backwards_and_keeps_a_bucket_with_data() -> None:
    fake = FakeInfra()
    await run_on(fake).apply()
    fake.objects["tokenized-storage-pool-123456789012"] = {"thesis-data.csv"}
    changes = await run_on(fake).destroy()
    kept = [c for c in changes if c.action is Action.KEPT]
    assert [c.name for c in kept] == ["tokenized-storage-pool-123456789012"]
    assert "holds objects" in kept[0].line()
    # Everything else is gone; only the bucket with data is left.
    assert list(fake.resources) == [(ResourceType.BUCKET, "tokenized-storage-pool-123456789012")]
    fake.objects.clear()
    changes = await run_on(fake).destroy()
    assert [c.action for c in changes].count(Action.DELETE) == 1
    assert fake.resources == {}
    deleted = [name for action, _, name in fake.acted if action == "delete"]
    # The last declared first; the bucket at the end, once it was empty.
    assert deleted[0] == "ScaleOutOnHighCPU" and deleted[-2] == "WatcherProvisioning"
    assert deleted[-1] == "tokenized-storage-pool-123456789012"


async def test_what_the_account_lacks_stops_apply_before_anything_is_made() -> None:
    fake = FakeInfra()
    run = run_on(fake)
    fake.existing[Prerequisite.SUBNET] = set()
    assert await run.missing() == ["subnet subnet-0fa4e0000000000a1"]
    with pytest.raises(InfraError, match="the account has no subnet subnet-0fa4e0000000000a1"):
        await run.apply()
    assert fake.acted == []


async def test_an_unwritable_key_file_stops_apply_before_anything_is_made(tmp_path: Path) -> None:
    fake = FakeInfra()
    run = run_on(fake, PARAMS)
    with pytest.raises(InfraError, match="cannot make the key file"):
        await run.apply(tmp_path / "no" / "such" / "folder" / "k.pem")
    assert fake.acted == []
    # Reserved, then apply fails before the key pair: the empty file does not stay behind.
    fake.fail("create")
    with pytest.raises(InfraError):
        await run.apply(tmp_path / "k.pem")
    assert not (tmp_path / "k.pem").exists()
