"""`watcher infra plan | apply | destroy | template` on moto's server, as an operator runs
them (issue 12): exactly the thesis's resources with its numbers, read back with boto3;
apply twice changes nothing; destroy removes those and nothing else; the template passes
cfn-lint."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cloudhelpers import AWS_ENV, aws_client, subnet_and_image

WATCHER = str(Path(sys.executable).parent / "watcher")
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")
REGION = "eu-north-1"
ACCOUNT = "123456789012"


def watcher(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATCHER, *args],
        env={**os.environ, **AWS_ENV},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


class Aws:
    def __init__(self, url: str) -> None:
        def client(name: str) -> Any:
            return aws_client(url, name, REGION)

        self.ec2, self.asg, self.cw = client("ec2"), client("autoscaling"), client("cloudwatch")
        self.iam, self.s3 = client("iam"), client("s3")

    def snapshot(self) -> dict[str, Any]:
        """Everything in the account that infra could touch, without timestamps."""

        def clean(value: Any) -> Any:
            if isinstance(value, dict):
                return {
                    k: clean(v)
                    for k, v in value.items()
                    if "Date" not in k and "Time" not in k and k != "ResponseMetadata"
                }
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        roles = self.iam.list_roles()["Roles"]
        return clean(
            {
                "roles": roles,
                "attached": {
                    r["RoleName"]: self.iam.list_attached_role_policies(RoleName=r["RoleName"])
                    for r in roles
                },
                "policies": self.iam.list_policies(Scope="Local")["Policies"],
                "profiles": self.iam.list_instance_profiles()["InstanceProfiles"],
                "key_pairs": self.ec2.describe_key_pairs()["KeyPairs"],
                "buckets": [b["Name"] for b in self.s3.list_buckets()["Buckets"]],
                "templates": self.ec2.describe_launch_templates()["LaunchTemplates"],
                "groups": self.asg.describe_auto_scaling_groups()["AutoScalingGroups"],
                "scaling_policies": self.asg.describe_policies()["ScalingPolicies"],
                "alarms": self.cw.describe_alarms()["MetricAlarms"],
            }
        )


@pytest.fixture
def aws(moto: Any) -> Iterator[Aws]:
    moto.reset()
    yield Aws(moto.url)
    moto.reset()


@pytest.fixture
def operator_dir(tmp_path: Path, moto: Any, aws: Aws) -> Path:
    subnet, image = subnet_and_image(moto.url, REGION)
    (tmp_path / "watcher.toml").write_text(
        f'aws_endpoint_url = "{moto.url}"\n'
        f'aws_region = "{REGION}"\n'
        "[infra]\n"
        f'subnet_id = "{subnet}"\n'
        f'ami = "{image}"\n'
    )
    return tmp_path


def someone_elses(aws: Aws) -> dict[str, Any]:
    """What an operator already has in the account: none of it is infra's to touch."""
    subnet = aws.ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    image = aws.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    aws.iam.create_role(
        RoleName="OperatorsOwnRole",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    aws.ec2.create_key_pair(KeyName="operators-key")
    aws.s3.create_bucket(
        Bucket="operators-bucket", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    template = aws.ec2.create_launch_template(
        LaunchTemplateName="OperatorsTemplate",
        LaunchTemplateData={"ImageId": image, "InstanceType": "t3.nano"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    aws.asg.create_auto_scaling_group(
        AutoScalingGroupName="OperatorsGroup",
        LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
        MinSize=1,
        MaxSize=2,
        DesiredCapacity=1,
        VPCZoneIdentifier=subnet,
    )
    aws.cw.put_metric_alarm(
        AlarmName="OperatorsAlarm",
        MetricName="CPUUtilization",
        Namespace="AWS/EC2",
        Statistic="Average",
        Period=300,
        EvaluationPeriods=1,
        Threshold=90.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    return aws.snapshot()


def test_apply_creates_exactly_the_theses_resources_twice_changes_nothing_and_destroy(
    operator_dir: Path, aws: Aws
) -> None:
    before = someone_elses(aws)
    plan = watcher("infra", "plan", cwd=operator_dir)
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.count("+ create") == 9
    assert aws.snapshot() == before  # plan changes nothing

    applied = watcher("infra", "apply", "--key-file", "ec2keypair.pem", cwd=operator_dir)
    assert applied.returncode == 0, applied.stderr
    assert "9 create" in applied.stderr
    key_file = operator_dir / "ec2keypair.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in key_file.read_text()
    assert "PRIVATE KEY" not in applied.stdout + applied.stderr

    subnet = aws.ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    # The launch template: the image, type, key pair and the stack's tag (not AllocatedBy,
    # which marks an order's resource).
    (template,) = aws.ec2.describe_launch_templates(
        LaunchTemplateNames=["TokenizedLaunchTemplate"]
    )["LaunchTemplates"]
    data = aws.ec2.describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Default"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["InstanceType"] == "t3.micro" and data["KeyName"] == "ec2keypair"
    assert data["ImageId"].startswith("ami-")
    instance_tags = next(s for s in data["TagSpecifications"] if s["ResourceType"] == "instance")
    assert instance_tags["Tags"] == [{"Key": "WatcherStack", "Value": "watcher"}]
    # The group: 1 / 5 / 1 on the template, in the subnet.
    (group,) = aws.asg.describe_auto_scaling_groups(
        AutoScalingGroupNames=["TokenAutoScalingGroup"]
    )["AutoScalingGroups"]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (1, 5, 1)
    assert group["LaunchTemplate"]["LaunchTemplateId"] == template["LaunchTemplateId"]
    assert group["VPCZoneIdentifier"] == subnet
    # The policy: ChangeInCapacity +1.
    (policy,) = aws.asg.describe_policies(AutoScalingGroupName="TokenAutoScalingGroup")[
        "ScalingPolicies"
    ]
    assert policy["PolicyName"] == "ScaleOutPolicy"
    assert (policy["AdjustmentType"], policy["ScalingAdjustment"]) == ("ChangeInCapacity", 1)
    # The alarm: average CPUUtilization of the group above 60 for two one-minute periods,
    # acting on the policy.
    (alarm,) = aws.cw.describe_alarms(AlarmNames=["ScaleOutOnHighCPU"])["MetricAlarms"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/EC2",
        "CPUUtilization",
        "Average",
    )
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 60.0)
    assert (alarm["Period"], alarm["EvaluationPeriods"]) == (60, 2)
    assert alarm["AlarmActions"] == [policy["PolicyARN"]]
    assert alarm["Dimensions"] == [
        {"Name": "AutoScalingGroupName", "Value": "TokenAutoScalingGroup"}
    ]
    # The role, trusted by EC2, with the watcher's policy (not full access) and a profile.
    role = aws.iam.get_role(RoleName="CloudResourceManager")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    attached = aws.iam.list_attached_role_policies(RoleName="CloudResourceManager")
    assert [p["PolicyArn"] for p in attached["AttachedPolicies"]] == [
        f"arn:aws:iam::{ACCOUNT}:policy/WatcherProvisioning"
    ]
    profile = aws.iam.get_instance_profile(InstanceProfileName="CloudResourceManager")
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == ["CloudResourceManager"]
    # The key pair and the storage pool.
    assert aws.ec2.describe_key_pairs(KeyNames=["ec2keypair"])["KeyPairs"]
    aws.s3.head_bucket(Bucket=f"tokenized-storage-pool-{ACCOUNT}")
    # Exactly these: everything else in the account is as it was, plus the nine.
    after = aws.snapshot()
    assert len(after["templates"]) == len(before["templates"]) + 1
    assert len(after["groups"]) == len(before["groups"]) + 1
    assert len(after["alarms"]) == len(before["alarms"]) + 1
    assert len(after["scaling_policies"]) == len(before["scaling_policies"]) + 1
    assert len(after["key_pairs"]) == len(before["key_pairs"]) + 1
    assert len(after["buckets"]) == len(before["buckets"]) + 1
    assert len(after["roles"]) == len(before["roles"]) + 1
    assert len(after["policies"]) == len(before["policies"]) + 1
    assert len(after["profiles"]) == len(before["profiles"]) + 1

    # Apply again: nothing changes (and it needs no key file: the pair exists).
    again = watcher("infra", "apply", cwd=operator_dir)
    assert again.returncode == 0, again.stderr
    assert "9 unchanged" in again.stderr
    assert aws.snapshot() == after

    # A scale-out moved the desired capacity: apply leaves it to the alarm.
    aws.asg.set_desired_capacity(AutoScalingGroupName="TokenAutoScalingGroup", DesiredCapacity=2)
    assert "9 unchanged" in watcher("infra", "plan", cwd=operator_dir).stderr

    refused = watcher("infra", "destroy", cwd=operator_dir)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    destroyed = watcher("infra", "destroy", "--yes", cwd=operator_dir)
    assert destroyed.returncode == 0, destroyed.stderr
    assert "9 delete" in destroyed.stderr
    assert aws.snapshot() == before  # everything else is still there, as it was
    assert watcher("infra", "plan", cwd=operator_dir).stdout.count("+ create") == 9


def test_a_name_taken_by_a_resource_infra_did_not_create_is_never_touched(
    operator_dir: Path, aws: Aws
) -> None:
    aws.iam.create_role(
        RoleName="CloudResourceManager",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    before = aws.snapshot()
    plan = watcher("infra", "plan", cwd=operator_dir)
    assert plan.returncode == 1
    assert "! conflict  AWS::IAM::Role CloudResourceManager" in plan.stdout
    applied = watcher("infra", "apply", "--key-file", "k.pem", cwd=operator_dir)
    assert applied.returncode == 1
    assert applied.stderr.startswith("watcher: error: nothing applied: AWS::IAM::Role")
    assert len(applied.stderr.strip().splitlines()) == 1
    assert aws.snapshot() == before
    assert not (operator_dir / "k.pem").exists()
    destroyed = watcher("infra", "destroy", "--yes", cwd=operator_dir)
    assert destroyed.returncode == 0
    assert aws.iam.get_role(RoleName="CloudResourceManager")["Role"]["RoleName"]


def test_bad_infra_settings_get_one_line_and_change_nothing(operator_dir: Path) -> None:
    config = operator_dir / "watcher.toml"
    config.write_text(config.read_text() + "max_size = 0\n")
    result = watcher("infra", "plan", cwd=operator_dir)
    assert result.returncode == 2
    assert result.stderr.startswith("watcher: error: ")
    assert "min_size <= desired_capacity <= max_size" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    config.write_text(config.read_text().replace("max_size = 0\n", "min_sise = 1\n"))
    result = watcher("infra", "plan", cwd=operator_dir)
    assert result.returncode == 2 and "unknown key 'min_sise'" in result.stderr
    # A subnet the account does not have: said before anything is made.
    text = config.read_text().replace("min_sise = 1\n", "")
    config.write_text(re.sub(r'subnet_id = "[^"]+"', 'subnet_id = "subnet-0dead"', text))
    for command in (["plan"], ["apply", "--key-file", "k.pem"]):
        result = watcher("infra", *command, cwd=operator_dir)
        assert result.returncode in (1, 2), result.stderr
        assert "the account has no subnet subnet-0dead" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (operator_dir / "k.pem").exists()


def test_the_template_is_the_same_declaration_and_passes_cfn_lint(
    operator_dir: Path, tmp_path: Path
) -> None:
    printed = watcher("infra", "template", cwd=operator_dir)
    assert printed.returncode == 0, printed.stderr
    template = json.loads(printed.stdout)
    resources = template["Resources"]
    assert {r["Type"] for r in resources.values()} == {
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::Role",
        "AWS::IAM::InstanceProfile",
        "AWS::EC2::KeyPair",
        "AWS::S3::Bucket",
        "AWS::EC2::LaunchTemplate",
        "AWS::AutoScaling::AutoScalingGroup",
        "AWS::AutoScaling::ScalingPolicy",
        "AWS::CloudWatch::Alarm",
    }
    group = resources["ScalingGroup"]["Properties"]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == ("1", "5", "1")
    alarm = resources["HighCpuAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": "ScaleOutPolicy"}]
    assert alarm["Threshold"] == 60 and alarm["Period"] == 60
    assert alarm["EvaluationPeriods"] == 2
    path = tmp_path / "watcher.template.json"
    path.write_text(printed.stdout)
    lint = subprocess.run(
        [CFN_LINT, "--regions", REGION, "--", str(path)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # The check can fail: a property CloudFormation does not know is found.
    group["MinimumSize"] = "1"
    path.write_text(json.dumps(template))
    lint = subprocess.run(
        [CFN_LINT, "--regions", REGION, "--", str(path)], capture_output=True, text=True
    )
    assert lint.returncode != 0 and "MinimumSize" in lint.stdout
