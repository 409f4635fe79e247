"""The thesis's cloud (sections 3.2, 4.3, 5.2 and 5.4) as one declaration, with no I/O.

The thesis set its AWS account up by hand with the AWS CLI: an IAM role trusted by EC2, a
key pair, an S3 bucket as a storage pool, a launch template, an auto-scaling group on it
(min 1, max 5, desired 1), a scale-out policy (+1) and a CPU alarm (average above 60 % for
two one-minute periods) acting on it. `declare(params)` says all of it once, in
CloudFormation's own vocabulary (resource types, property names, `Ref` and `Fn::GetAtt`),
so that:

- `template()` renders it as a CloudFormation template (`watcher infra template`) with no
  second copy, and
- the infra service (watcher/services/infra.py) applies the same resources through the
  service APIs (`watcher infra plan | apply | destroy`), resolving the references from what
  the cloud answers.

Where the thesis granted the role full EC2, S3 and CloudWatch access, the declaration holds
the watcher's own policy instead (`watcher_policy`): only the actions the watcher calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from watcher.domain.kinds.ec2_instance import THESIS_AMI

# Every resource `watcher infra` creates carries both tags; it changes or removes only
# what carries them (a resource of the same name made by hand is left alone).
OWNER_TAG = "ManagedBy"
OWNER = "watcher-infra"
STACK_TAG = "WatcherStack"
# The tag the watcher puts on everything it launches for orders (and the thesis on its
# instances): the policy lets it act only on resources that carry it.
ALLOCATED_BY = ("AllocatedBy", "TokenSystem")


@dataclass(frozen=True)
class Ref:
    """CloudFormation's `Ref`: the named resource's primary id (a name, an id or an ARN,
    by its type)."""

    target: str


@dataclass(frozen=True)
class Attr:
    """CloudFormation's `Fn::GetAtt`: one attribute of the named resource."""

    target: str
    name: str


@dataclass(frozen=True)
class Sub:
    """CloudFormation's `Fn::Sub` over the stack's pseudo parameters only
    (`${AWS::AccountId}`, `${AWS::Region}`)."""

    text: str


class ResourceType(StrEnum):
    MANAGED_POLICY = "AWS::IAM::ManagedPolicy"
    ROLE = "AWS::IAM::Role"
    INSTANCE_PROFILE = "AWS::IAM::InstanceProfile"
    KEY_PAIR = "AWS::EC2::KeyPair"
    BUCKET = "AWS::S3::Bucket"
    LAUNCH_TEMPLATE = "AWS::EC2::LaunchTemplate"
    GROUP = "AWS::AutoScaling::AutoScalingGroup"
    SCALING_POLICY = "AWS::AutoScaling::ScalingPolicy"
    ALARM = "AWS::CloudWatch::Alarm"


# The property that names each resource: its identity in the account, how `apply` finds
# what exists and `destroy` what to remove.
NAME_PROPERTY: dict[ResourceType, str] = {
    ResourceType.MANAGED_POLICY: "ManagedPolicyName",
    ResourceType.ROLE: "RoleName",
    ResourceType.INSTANCE_PROFILE: "InstanceProfileName",
    ResourceType.KEY_PAIR: "KeyName",
    ResourceType.BUCKET: "BucketName",
    ResourceType.LAUNCH_TEMPLATE: "LaunchTemplateName",
    ResourceType.GROUP: "AutoScalingGroupName",
    ResourceType.SCALING_POLICY: "PolicyName",
    ResourceType.ALARM: "AlarmName",
}

# Properties set when a resource is created and never changed by a later `apply`:
# a group's desired capacity is the alarm's to move between min and max (resetting it on
# every apply would undo a scale-out), and a key pair cannot be changed, only replaced
# (which would lock out whoever holds the old private key).
CREATE_ONLY: dict[ResourceType, frozenset[str]] = {
    ResourceType.GROUP: frozenset({"DesiredCapacity"}),
    ResourceType.KEY_PAIR: frozenset({"PublicKeyMaterial"}),
}

# Types whose CloudFormation resource takes no Tags property: their tags are set through
# the service API on `apply` only (a stack owns what it creates anyway). A scaling policy
# has no tags at all: it belongs to the group it is in, and is ours when the group is.
UNTAGGED_IN_TEMPLATE = frozenset(
    {ResourceType.MANAGED_POLICY, ResourceType.INSTANCE_PROFILE, ResourceType.SCALING_POLICY}
)


@dataclass(frozen=True)
class Declared:
    """One resource of the declaration: a CloudFormation logical id, type and properties
    (the tags apart), whose values may hold `Ref`, `Attr` and `Sub`."""

    logical_id: str
    type: ResourceType
    properties: Mapping[str, Any]
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> Any:
        return self.properties[NAME_PROPERTY[self.type]]

    @property
    def depends_on(self) -> frozenset[str]:
        return frozenset(_references(self.properties))


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, Ref | Attr):
        yield value.target
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _references(item)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+=,.@_-]{0,63}")
_BUCKET_PREFIX = re.compile(r"[a-z0-9][a-z0-9-]{1,40}")
_SUBNET = re.compile(r"subnet-[0-9a-f]{1,17}")
_SECURITY_GROUP = re.compile(r"sg-[0-9a-f]{1,17}")
_AMI = re.compile(r"ami-[0-9a-f]{8,17}")
_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")


@dataclass(frozen=True)
class InfraParams:
    """What an operator may change about the thesis's cloud (`[infra]` in watcher.toml);
    the defaults are the thesis's own names and numbers."""

    # The group's subnet (the thesis's was subnet-0dc4040155e2bedeb, in its own account):
    # required, since no default can be right in another account.
    subnet_id: str | None = None
    ami: str = THESIS_AMI
    instance_type: str = "t3.micro"
    security_group_ids: tuple[str, ...] = ()
    key_name: str = "ec2keypair"
    # An OpenSSH public key to import as the key pair; without one AWS makes the pair and
    # `apply` writes its private key to a file of the operator's (never to the terminal).
    public_key: str | None = None
    role_name: str = "CloudResourceManager"
    policy_name: str = "WatcherProvisioning"
    template_name: str = "TokenizedLaunchTemplate"
    group_name: str = "TokenAutoScalingGroup"
    min_size: int = 1
    max_size: int = 5
    desired_capacity: int = 1
    scaling_policy_name: str = "ScaleOutPolicy"
    scaling_adjustment: int = 1
    alarm_name: str = "ScaleOutOnHighCPU"
    cpu_threshold: int = 60
    alarm_period: int = 60
    evaluation_periods: int = 2
    # The storage pool is named `<prefix>-<account id>`, as the thesis's was.
    bucket_prefix: str = "tokenized-storage-pool"
    # Told apart by this tag, two declarations can live in one account.
    stack: str = "watcher"

    def __post_init__(self) -> None:
        for name in (
            "key_name",
            "role_name",
            "policy_name",
            "template_name",
            "group_name",
            "scaling_policy_name",
            "alarm_name",
            "stack",
        ):
            value = getattr(self, name)
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise ValueError(
                    f"infra.{name} must be 1-64 letters, digits or +=,.@_- , not {value!r}"
                )
        if not _BUCKET_PREFIX.fullmatch(self.bucket_prefix):
            raise ValueError(
                f"infra.bucket_prefix must be 2-41 lower-case letters, digits or -, "
                f"not {self.bucket_prefix!r}"
            )
        if self.subnet_id is not None and not _SUBNET.fullmatch(self.subnet_id):
            raise ValueError(
                f"infra.subnet_id must look like subnet-0123abcd, not {self.subnet_id!r}"
            )
        if not _AMI.fullmatch(self.ami):
            raise ValueError(f"infra.ami must look like ami-0123456789abcdef0, not {self.ami!r}")
        if not _INSTANCE_TYPE.fullmatch(self.instance_type):
            raise ValueError(
                f"infra.instance_type must be an EC2 type like t3.micro, not {self.instance_type!r}"
            )
        if not all(_SECURITY_GROUP.fullmatch(g) for g in self.security_group_ids):
            raise ValueError('infra.security_group_ids must be a list like ["sg-0123abcd"]')
        if self.public_key is not None and not self.public_key.startswith(
            ("ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-")
        ):
            raise ValueError("infra.public_key must be an OpenSSH public key (ssh-ed25519 ...)")
        if not 0 <= self.min_size <= self.desired_capacity <= self.max_size:
            raise ValueError(
                "infra sizes must keep 0 <= min_size <= desired_capacity <= max_size, not "
                f"{self.min_size} / {self.desired_capacity} / {self.max_size}"
            )
        if self.max_size > 1000:
            raise ValueError("infra.max_size must be at most 1000")
        if not 1 <= self.scaling_adjustment <= self.max_size:
            raise ValueError("infra.scaling_adjustment must be between 1 and max_size")
        if not 1 <= self.cpu_threshold <= 100:
            raise ValueError("infra.cpu_threshold must be a percentage between 1 and 100")
        if self.alarm_period not in (10, 30) and (self.alarm_period < 60 or self.alarm_period % 60):
            raise ValueError("infra.alarm_period must be 10, 30 or a multiple of 60 seconds")
        if not 1 <= self.evaluation_periods <= 100:
            raise ValueError("infra.evaluation_periods must be between 1 and 100")

    def require_subnet(self) -> str:
        if self.subnet_id is None:
            raise ValueError(
                "infra.subnet_id is needed: the subnet the scaling group launches into "
                '(subnet_id = "subnet-..." under [infra] in watcher.toml)'
            )
        return self.subnet_id


class Prerequisite(StrEnum):
    """What the declaration names but does not make: it must exist before `apply`."""

    SUBNET = "subnet"
    IMAGE = "image"
    SECURITY_GROUP = "security group"


def prerequisites(params: InfraParams) -> tuple[tuple[Prerequisite, str], ...]:
    return (
        (Prerequisite.SUBNET, params.require_subnet()),
        (Prerequisite.IMAGE, params.ami),
        *((Prerequisite.SECURITY_GROUP, g) for g in params.security_group_ids),
    )


def parse_infra(table: Any) -> InfraParams:
    """The `[infra]` table into InfraParams; ValueError names the key."""
    if not isinstance(table, dict):
        raise ValueError("infra must be a table ([infra] in watcher.toml)")
    known = {f.name: f for f in fields(InfraParams)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ValueError(f"infra: unknown key {key!r} (known: {', '.join(sorted(known))})")
        default = getattr(InfraParams(), key)
        if key == "security_group_ids":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError('infra.security_group_ids must be a list like ["sg-0123abcd"]')
            values[key] = tuple(value)
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"infra.{key} must be a whole number, not {value!r}")
            values[key] = value
        else:
            if not isinstance(value, str):
                raise ValueError(f"infra.{key} must be a string, not {value!r}")
            values[key] = value.strip() if key == "public_key" else value
    return InfraParams(**values)


# The one declaration.


def declare(params: InfraParams) -> tuple[Declared, ...]:
    """The thesis's resources, each after what it references (the order `apply` follows;
    `destroy` goes backwards)."""
    tags = {OWNER_TAG: OWNER, STACK_TAG: params.stack}
    # Not AllocatedBy: that tag says "launched by the watcher for an order" (the audit
    # expects an order behind each), and the pool's own instances are no order's. An order
    # launched from the template adds it with its other tags.
    instance_tags = {STACK_TAG: params.stack}
    key_pair: dict[str, Any] = {"KeyName": params.key_name}
    if params.public_key is not None:
        key_pair["PublicKeyMaterial"] = params.public_key
    template_data: dict[str, Any] = {
        "ImageId": params.ami,
        "InstanceType": params.instance_type,
        "KeyName": Ref("KeyPair"),
        "TagSpecifications": [
            {
                "ResourceType": "instance",
                "Tags": [{"Key": k, "Value": v} for k, v in sorted(instance_tags.items())],
            }
        ],
    }
    if params.security_group_ids:
        template_data["SecurityGroupIds"] = list(params.security_group_ids)
    return (
        Declared(
            "WatcherPolicy",
            ResourceType.MANAGED_POLICY,
            {
                "ManagedPolicyName": params.policy_name,
                "Description": "What the watcher calls, on what it launched (watcher infra)",
                "PolicyDocument": watcher_policy(),
            },
            tags,
        ),
        Declared(
            "Role",
            ResourceType.ROLE,
            {
                "RoleName": params.role_name,
                "AssumeRolePolicyDocument": EC2_TRUST,
                "ManagedPolicyArns": [Ref("WatcherPolicy")],
            },
            tags,
        ),
        Declared(
            "InstanceProfile",
            ResourceType.INSTANCE_PROFILE,
            {"InstanceProfileName": params.role_name, "Roles": [Ref("Role")]},
            tags,
        ),
        Declared("KeyPair", ResourceType.KEY_PAIR, key_pair, tags),
        Declared(
            "StoragePool",
            ResourceType.BUCKET,
            {
                "BucketName": Sub(f"{params.bucket_prefix}-${{AWS::AccountId}}"),
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
            },
            tags,
        ),
        Declared(
            "LaunchTemplate",
            ResourceType.LAUNCH_TEMPLATE,
            {"LaunchTemplateName": params.template_name, "LaunchTemplateData": template_data},
            tags,
        ),
        Declared(
            "ScalingGroup",
            ResourceType.GROUP,
            {
                "AutoScalingGroupName": params.group_name,
                "LaunchTemplate": {
                    "LaunchTemplateId": Ref("LaunchTemplate"),
                    "Version": Attr("LaunchTemplate", "LatestVersionNumber"),
                },
                # CloudFormation takes the sizes as strings.
                "MinSize": str(params.min_size),
                "MaxSize": str(params.max_size),
                "DesiredCapacity": str(params.desired_capacity),
                "VPCZoneIdentifier": [params.require_subnet()],
            },
            tags,
        ),
        Declared(
            "ScaleOutPolicy",
            ResourceType.SCALING_POLICY,
            {
                "PolicyName": params.scaling_policy_name,
                "AutoScalingGroupName": Ref("ScalingGroup"),
                "PolicyType": "SimpleScaling",
                "AdjustmentType": "ChangeInCapacity",
                "ScalingAdjustment": params.scaling_adjustment,
            },
        ),
        Declared(
            "HighCpuAlarm",
            ResourceType.ALARM,
            {
                "AlarmName": params.alarm_name,
                "AlarmDescription": "Scale the pool out when its average CPU stays high",
                "Namespace": "AWS/EC2",
                "MetricName": "CPUUtilization",
                "Statistic": "Average",
                "Dimensions": [{"Name": "AutoScalingGroupName", "Value": Ref("ScalingGroup")}],
                "Period": params.alarm_period,
                "EvaluationPeriods": params.evaluation_periods,
                "Threshold": params.cpu_threshold,
                "ComparisonOperator": "GreaterThanThreshold",
                "AlarmActions": [Ref("ScaleOutPolicy")],
            },
            tags,
        ),
    )


EC2_TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def watcher_policy() -> dict[str, Any]:
    """The watcher's IAM policy: the actions its providers call (watcher/adapters/cloud/)
    and nothing else, acting only on resources tagged AllocatedBy=TokenSystem.

    Looks (Describe*) cannot be restricted by resource on EC2, so they are on `*`. Every
    action that changes something is on `*` with a tag condition (attribute-based control,
    AWS's way for EC2): RunInstances only with the tag in the request (for the instance;
    the image, subnet, groups, volumes and template it uses are allowed by their types),
    CreateTags only as part of a launch, and stop, start, terminate and the console only
    on instances that carry the tag. (`*` rather than instance ARNs also keeps the policy
    checkable on moto's server, whose IAM matches EC2 resources only against `*`.)

    Scaling pools: each order's launch template, group, policy and alarm are created only
    with the tag in the request and changed or removed only when they carry it; the first
    group of an account needs Auto Scaling's service-linked role. Storage: S3 conditions on
    bucket tags are not honoured for every bucket action, so the buckets are held to their
    names (`watcher-*`, storage_bucket.bucket_name) instead.
    """
    key, value = ALLOCATED_BY
    tagged_request = {"StringEquals": {f"aws:RequestTag/{key}": value}}
    tagged_resource = {"StringEquals": {f"aws:ResourceTag/{key}": value}}
    buckets = "arn:aws:s3:::watcher-*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "LookAtInstancesAndWhatPlansName",
                "Effect": "Allow",
                "Action": [
                    "ec2:DescribeImages",
                    "ec2:DescribeInstances",
                    "ec2:DescribeKeyPairs",
                    "ec2:DescribeLaunchTemplates",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSubnets",
                ],
                "Resource": "*",
            },
            {
                # EC2 checks RunInstances against every resource of the launch, one by
                # one: the instance must carry the tag (below), what it is launched from
                # and into (which no request tags) is allowed by its type.
                "Sid": "LaunchFromWhatPlansName",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": [
                    "arn:aws:ec2:*::image/*",
                    "arn:aws:ec2:*:*:subnet/*",
                    "arn:aws:ec2:*:*:security-group/*",
                    "arn:aws:ec2:*:*:network-interface/*",
                    "arn:aws:ec2:*:*:volume/*",
                    "arn:aws:ec2:*:*:key-pair/*",
                    "arn:aws:ec2:*:*:launch-template/*",
                ],
            },
            {
                "Sid": "LaunchOnlyTaggedInstances",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": "*",
                "Condition": {"StringEquals": {f"aws:RequestTag/{key}": value}},
            },
            {
                # A pool's group launches its members from the order's template, whose
                # instances carry PoolOrderId (AllocatedBy marks an order's own resource):
                # Auto Scaling checks the caller may launch them when the group is made.
                "Sid": "LaunchOnlyPoolMembers",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": "*",
                "Condition": {"Null": {"aws:RequestTag/PoolOrderId": "false"}},
            },
            {
                "Sid": "TagOnlyAtLaunch",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateLaunchTemplate"]}
                },
            },
            {
                "Sid": "ActOnlyOnItsInstances",
                "Effect": "Allow",
                "Action": [
                    "ec2:GetConsoleOutput",
                    "ec2:StartInstances",
                    "ec2:StopInstances",
                    "ec2:TerminateInstances",
                ],
                "Resource": "*",
                "Condition": tagged_resource,
            },
            {
                "Sid": "LookAtPools",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribePolicies",
                    "cloudwatch:DescribeAlarms",
                ],
                "Resource": "*",
            },
            {
                "Sid": "MakeOnlyTaggedPools",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:CreateAutoScalingGroup",
                    "cloudwatch:PutMetricAlarm",
                    "cloudwatch:TagResource",
                    "ec2:CreateLaunchTemplate",
                ],
                "Resource": "*",
                "Condition": tagged_request,
            },
            {
                "Sid": "ChangeOnlyItsPools",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DeleteAutoScalingGroup",
                    "autoscaling:PutScalingPolicy",
                    "autoscaling:UpdateAutoScalingGroup",
                    "cloudwatch:DeleteAlarms",
                    "ec2:DeleteLaunchTemplate",
                ],
                "Resource": "*",
                "Condition": tagged_resource,
            },
            {
                "Sid": "AutoScalingsOwnRole",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:AWSServiceName": "autoscaling.amazonaws.com"}},
            },
            {
                "Sid": "ListBuckets",
                "Effect": "Allow",
                "Action": "s3:ListAllMyBuckets",
                "Resource": "*",
            },
            {
                "Sid": "OnlyOrdersBuckets",
                "Effect": "Allow",
                "Action": [
                    "s3:CreateBucket",
                    "s3:DeleteBucket",
                    "s3:DeleteBucketPolicy",
                    "s3:GetBucketPolicy",
                    "s3:GetBucketTagging",
                    "s3:ListBucket",
                    "s3:ListBucketMultipartUploads",
                    "s3:PutBucketPolicy",
                    "s3:PutBucketPublicAccessBlock",
                    "s3:PutBucketTagging",
                    "s3:PutEncryptionConfiguration",
                    "s3:PutLifecycleConfiguration",
                ],
                "Resource": buckets,
            },
            {
                # The owner's links are signed by the watcher: they act as it.
                "Sid": "OnlyOrdersObjects",
                "Effect": "Allow",
                "Action": [
                    "s3:AbortMultipartUpload",
                    "s3:DeleteObject",
                    "s3:GetObject",
                    "s3:PutObject",
                ],
                "Resource": f"{buckets}/*",
            },
        ],
    }


def policy_actions(document: Mapping[str, Any]) -> frozenset[str]:
    """Every action a policy document allows."""
    found: set[str] = set()
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        found.update([actions] if isinstance(actions, str) else actions)
    return frozenset(found)


# The template.


def _cfn(value: Any) -> Any:
    if isinstance(value, Ref):
        return {"Ref": value.target}
    if isinstance(value, Attr):
        return {"Fn::GetAtt": [value.target, value.name]}
    if isinstance(value, Sub):
        return {"Fn::Sub": value.text}
    if isinstance(value, Mapping):
        return {k: _cfn(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cfn(v) for v in value]
    return value


def _template_tags(resource: Declared) -> dict[str, Any]:
    tags = [{"Key": k, "Value": v} for k, v in sorted(resource.tags.items())]
    if not tags or resource.type in UNTAGGED_IN_TEMPLATE:
        return {}
    if resource.type is ResourceType.GROUP:
        return {"Tags": [{**t, "PropagateAtLaunch": False} for t in tags]}
    if resource.type is ResourceType.LAUNCH_TEMPLATE:
        return {"TagSpecifications": [{"ResourceType": "launch-template", "Tags": tags}]}
    return {"Tags": tags}


def template(resources: tuple[Declared, ...]) -> dict[str, Any]:
    """The declaration as a CloudFormation template (JSON-ready)."""
    body: dict[str, Any] = {}
    for resource in resources:
        body[resource.logical_id] = {
            "Type": resource.type.value,
            "Properties": {**_cfn(dict(resource.properties)), **_template_tags(resource)},
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            "watcher: the thesis's cloud (role, key pair, storage pool, launch template, "
            "scaling group, scale-out policy, CPU alarm) with the watcher's least-privilege "
            "policy. Generated by `watcher infra template`: edit watcher.toml, not this."
        ),
        "Resources": body,
        "Outputs": {
            "WatcherPolicyArn": {"Value": {"Ref": "WatcherPolicy"}},
            "LaunchTemplateId": {"Value": {"Ref": "LaunchTemplate"}},
            "ScalingGroupName": {"Value": {"Ref": "ScalingGroup"}},
            "StoragePoolName": {"Value": {"Ref": "StoragePool"}},
        },
    }
