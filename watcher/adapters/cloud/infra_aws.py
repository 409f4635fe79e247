"""The infrastructure port (watcher/ports/infra.py) on AWS: each declared resource type
read, created, updated and deleted through its service's API (IAM, EC2, Auto Scaling,
CloudWatch, S3), since moto's CloudFormation implements neither scaling policies, alarms
nor key pairs and an operator without stacks gets the same resources.

Each `read` answers in the declaration's shape (CloudFormation's property names) so that
the infra service compares like with like; only the cloud's own "no such resource" is
None, any other error raises.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from watcher.adapters.cloud import aws
from watcher.domain.infra import NAME_PROPERTY, Prerequisite, ResourceType
from watcher.domain.provisioning import ErrorKind
from watcher.ports.cloud import CloudError
from watcher.ports.infra import Infra, Observed

# The codes with which each service says that a named resource does not exist.
_MISSING = frozenset(
    {
        "NoSuchEntity",
        "InvalidKeyPair.NotFound",
        "InvalidLaunchTemplateName.NotFoundException",
        "InvalidLaunchTemplateId.NotFound",
        "NoSuchBucket",
        "404",
        "ResourceNotFound",
    }
)
# IAM keeps at most this many versions of a managed policy.
_POLICY_VERSIONS = 5


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _tag_map(tags: Any) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


class AwsInfra:
    """The infrastructure port on AWS's service APIs."""

    def __init__(self, clients: Mapping[str, Any], region: str) -> None:
        self._iam = clients["iam"]
        self._ec2 = clients["ec2"]
        self._asg = clients["autoscaling"]
        self._cw = clients["cloudwatch"]
        self._s3 = clients["s3"]
        self._sts = clients["sts"]
        self._region = region
        self._account: str | None = None

    async def account_id(self) -> str:
        if self._account is None:
            answer = await aws.call(self._sts.get_caller_identity)
            self._account = str(answer["Account"])
        return self._account

    async def exists(self, what: Prerequisite, id: str) -> bool:
        method, argument, field = {
            Prerequisite.SUBNET: (self._ec2.describe_subnets, "SubnetIds", "Subnets"),
            Prerequisite.IMAGE: (self._ec2.describe_images, "ImageIds", "Images"),
            Prerequisite.SECURITY_GROUP: (
                self._ec2.describe_security_groups,
                "GroupIds",
                "SecurityGroups",
            ),
        }[what]
        try:
            answer = await aws.call(method, **{argument: [id]})
        except CloudError as exc:
            if exc.code and exc.code.endswith((".NotFound", ".Malformed")):
                return False
            if exc.code and exc.code.startswith("InvalidAMIID"):
                return False
            raise
        return bool(answer.get(field))

    async def read(self, type: ResourceType, properties: Mapping[str, Any]) -> Observed | None:
        name = str(properties[NAME_PROPERTY[type]])
        try:
            observed: Observed | None = await getattr(self, f"_read_{type.name.lower()}")(
                name, properties
            )
            return observed
        except CloudError as exc:
            if exc.code in _MISSING:
                return None
            raise

    async def create(
        self, type: ResourceType, properties: Mapping[str, Any], tags: Mapping[str, str]
    ) -> Observed:
        created: Observed | None = await getattr(self, f"_create_{type.name.lower()}")(
            properties, tags
        )
        seen = await self._confirm(type, properties)
        if created is not None and created.private_key is not None:
            return Observed(seen.properties, seen.attributes, seen.tags, created.private_key)
        return seen

    async def update(
        self,
        type: ResourceType,
        properties: Mapping[str, Any],
        tags: Mapping[str, str],
        observed: Observed,
    ) -> Observed:
        await getattr(self, f"_update_{type.name.lower()}")(properties, tags, observed)
        return await self._confirm(type, properties)

    async def delete(self, type: ResourceType, properties: Mapping[str, Any]) -> None:
        try:
            await getattr(self, f"_delete_{type.name.lower()}")(properties)
        except CloudError as exc:
            if exc.code not in _MISSING:
                raise

    async def _confirm(self, type: ResourceType, properties: Mapping[str, Any]) -> Observed:
        seen = await self.read(type, properties)
        if seen is None:
            # Eventually consistent services (IAM) may not list it yet: no answer about
            # it, to be looked at again, never read as "not made".
            name = properties[NAME_PROPERTY[type]]
            raise CloudError(ErrorKind.RETRY, None, f"{type.value} {name} not listed yet")
        return seen

    # AWS::IAM::ManagedPolicy

    async def _policy_arn(self, name: str) -> str:
        return f"arn:aws:iam::{await self.account_id()}:policy/{name}"

    async def _read_managed_policy(self, name: str, _: Mapping[str, Any]) -> Observed:
        arn = await self._policy_arn(name)
        policy = (await aws.call(self._iam.get_policy, PolicyArn=arn))["Policy"]
        version = await aws.call(
            self._iam.get_policy_version, PolicyArn=arn, VersionId=policy["DefaultVersionId"]
        )
        document = version["PolicyVersion"]["Document"]
        if isinstance(document, str):
            document = json.loads(document)
        tags = await aws.call(self._iam.list_policy_tags, PolicyArn=arn)
        return Observed(
            {
                "ManagedPolicyName": name,
                "Description": policy.get("Description", ""),
                "PolicyDocument": document,
            },
            {"Ref": arn, "PolicyArn": arn},
            _tag_map(tags.get("Tags")),
        )

    async def _create_managed_policy(self, p: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        await aws.call(
            self._iam.create_policy,
            PolicyName=p["ManagedPolicyName"],
            Description=p.get("Description", ""),
            PolicyDocument=json.dumps(p["PolicyDocument"]),
            Tags=_tag_list(tags),
        )

    async def _update_managed_policy(
        self, p: Mapping[str, Any], tags: Mapping[str, str], observed: Observed
    ) -> None:
        arn = observed.attributes["Ref"]
        if observed.properties.get("PolicyDocument") != p["PolicyDocument"]:
            versions = (await aws.call(self._iam.list_policy_versions, PolicyArn=arn))["Versions"]
            # IAM keeps at most five versions of a policy: the oldest that is not the
            # default makes room.
            if len(versions) >= _POLICY_VERSIONS:
                oldest = min(
                    (v for v in versions if not v["IsDefaultVersion"]),
                    key=lambda v: v["CreateDate"],
                )
                await aws.call(
                    self._iam.delete_policy_version, PolicyArn=arn, VersionId=oldest["VersionId"]
                )
            await aws.call(
                self._iam.create_policy_version,
                PolicyArn=arn,
                PolicyDocument=json.dumps(p["PolicyDocument"]),
                SetAsDefault=True,
            )
        if dict(observed.tags) != {**observed.tags, **tags}:
            await aws.call(self._iam.tag_policy, PolicyArn=arn, Tags=_tag_list(tags))

    async def _delete_managed_policy(self, p: Mapping[str, Any]) -> None:
        arn = await self._policy_arn(p["ManagedPolicyName"])
        versions = (await aws.call(self._iam.list_policy_versions, PolicyArn=arn))["Versions"]
        for version in versions:
            if not version["IsDefaultVersion"]:
                await aws.call(
                    self._iam.delete_policy_version, PolicyArn=arn, VersionId=version["VersionId"]
                )
        # Still attached to a user or role of the operator's: DeleteConflict, said as it is.
        await aws.call(self._iam.delete_policy, PolicyArn=arn)

    # AWS::IAM::Role

    async def _read_role(self, name: str, _: Mapping[str, Any]) -> Observed:
        role = (await aws.call(self._iam.get_role, RoleName=name))["Role"]
        document = role.get("AssumeRolePolicyDocument", {})
        if isinstance(document, str):
            document = json.loads(document)
        attached = await aws.call(self._iam.list_attached_role_policies, RoleName=name)
        tags = await aws.call(self._iam.list_role_tags, RoleName=name)
        return Observed(
            {
                "RoleName": name,
                "AssumeRolePolicyDocument": document,
                "ManagedPolicyArns": sorted(a["PolicyArn"] for a in attached["AttachedPolicies"]),
            },
            {"Ref": name, "Arn": role["Arn"], "RoleId": role["RoleId"]},
            _tag_map(tags.get("Tags")),
        )

    async def _create_role(self, p: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        await aws.call(
            self._iam.create_role,
            RoleName=p["RoleName"],
            AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
            Tags=_tag_list(tags),
        )
        for arn in p.get("ManagedPolicyArns", []):
            await aws.call(self._iam.attach_role_policy, RoleName=p["RoleName"], PolicyArn=arn)

    async def _update_role(
        self, p: Mapping[str, Any], tags: Mapping[str, str], observed: Observed
    ) -> None:
        name = p["RoleName"]
        if observed.properties.get("AssumeRolePolicyDocument") != p["AssumeRolePolicyDocument"]:
            await aws.call(
                self._iam.update_assume_role_policy,
                RoleName=name,
                PolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
            )
        wanted = set(p.get("ManagedPolicyArns", []))
        present = set(observed.properties.get("ManagedPolicyArns", []))
        for arn in sorted(wanted - present):
            await aws.call(self._iam.attach_role_policy, RoleName=name, PolicyArn=arn)
        for arn in sorted(present - wanted):
            await aws.call(self._iam.detach_role_policy, RoleName=name, PolicyArn=arn)
        await aws.call(self._iam.tag_role, RoleName=name, Tags=_tag_list(tags))

    async def _delete_role(self, p: Mapping[str, Any]) -> None:
        name = p["RoleName"]
        attached = await aws.call(self._iam.list_attached_role_policies, RoleName=name)
        for policy in attached["AttachedPolicies"]:
            await aws.call(
                self._iam.detach_role_policy, RoleName=name, PolicyArn=policy["PolicyArn"]
            )
        profiles = await aws.call(self._iam.list_instance_profiles_for_role, RoleName=name)
        for profile in profiles["InstanceProfiles"]:
            await aws.call(
                self._iam.remove_role_from_instance_profile,
                InstanceProfileName=profile["InstanceProfileName"],
                RoleName=name,
            )
        await aws.call(self._iam.delete_role, RoleName=name)

    # AWS::IAM::InstanceProfile

    async def _read_instance_profile(self, name: str, _: Mapping[str, Any]) -> Observed:
        answer = await aws.call(self._iam.get_instance_profile, InstanceProfileName=name)
        profile = answer["InstanceProfile"]
        return Observed(
            {
                "InstanceProfileName": name,
                "Roles": sorted(r["RoleName"] for r in profile.get("Roles", [])),
            },
            {"Ref": name, "Arn": profile["Arn"]},
            _tag_map(profile.get("Tags")),
        )

    async def _create_instance_profile(self, p: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        name = p["InstanceProfileName"]
        await aws.call(
            self._iam.create_instance_profile, InstanceProfileName=name, Tags=_tag_list(tags)
        )
        for role in p.get("Roles", []):
            await aws.call(
                self._iam.add_role_to_instance_profile, InstanceProfileName=name, RoleName=role
            )

    async def _update_instance_profile(
        self, p: Mapping[str, Any], tags: Mapping[str, str], observed: Observed
    ) -> None:
        name = p["InstanceProfileName"]
        wanted, present = set(p.get("Roles", [])), set(observed.properties.get("Roles", []))
        for role in sorted(present - wanted):
            await aws.call(
                self._iam.remove_role_from_instance_profile,
                InstanceProfileName=name,
                RoleName=role,
            )
        for role in sorted(wanted - present):
            await aws.call(
                self._iam.add_role_to_instance_profile, InstanceProfileName=name, RoleName=role
            )
        await aws.call(
            self._iam.tag_instance_profile, InstanceProfileName=name, Tags=_tag_list(tags)
        )

    async def _delete_instance_profile(self, p: Mapping[str, Any]) -> None:
        name = p["InstanceProfileName"]
        answer = await aws.call(self._iam.get_instance_profile, InstanceProfileName=name)
        for role in answer["InstanceProfile"].get("Roles", []):
            await aws.call(
                self._iam.remove_role_from_instance_profile,
                InstanceProfileName=name,
                RoleName=role["RoleName"],
            )
        await aws.call(self._iam.delete_instance_profile, InstanceProfileName=name)

    # AWS::EC2::KeyPair

    async def _read_key_pair(self, name: str, _: Mapping[str, Any]) -> Observed | None:
        answer = await aws.call(self._ec2.describe_key_pairs, KeyNames=[name])
        pairs = answer.get("KeyPairs", [])
        if not pairs:
            return None
        pair = pairs[0]
        return Observed(
            {"KeyName": name},
            {
                "Ref": name,
                "KeyPairId": pair.get("KeyPairId", ""),
                "KeyFingerprint": pair.get("KeyFingerprint", ""),
            },
            _tag_map(pair.get("Tags")),
        )

    async def _create_key_pair(self, p: Mapping[str, Any], tags: Mapping[str, str]) -> Observed:
        specification = [{"ResourceType": "key-pair", "Tags": _tag_list(tags)}]
        if p.get("PublicKeyMaterial"):
            await aws.call(
                self._ec2.import_key_pair,
                KeyName=p["KeyName"],
                PublicKeyMaterial=str(p["PublicKeyMaterial"]).encode(),
                TagSpecifications=specification,
            )
            return Observed({}, {})
        answer = await aws.call(
            self._ec2.create_key_pair, KeyName=p["KeyName"], TagSpecifications=specification
        )
        return Observed({}, {}, private_key=answer["KeyMaterial"])

    async def _update_key_pair(
        self, p: Mapping[str, Any], tags: Mapping[str, str], observed: Observed
    ) -> None:
        await aws.call(
            self._ec2.create_tags,
            Resources=[observed.attributes["KeyPairId"]],
            Tags=_tag_list(tags),
        )

    async def _delete_key_pair(self, p: Mapping[str, Any]) -> None:
        await aws.call(self._ec2.delete_key_pair, KeyName=p["KeyName"])

    # AWS::S3::Bucket

    async def _read_bucket(self, name: str, _: Mapping[str, Any]) -> Observed:
        await aws.call(self._s3.head_bucket, Bucket=name)
        try:
            tagging = await aws.call(self._s3.get_bucket_tagging, Bucket=name)
            tags = _tag_map(tagging.get("TagSet"))
        except CloudError as exc:
            if exc.code != "NoSuchTagSet":
                raise
            tags = {}
        properties: dict[str, Any] = {"BucketName": name}
        try:
            block = await aws.call(self._s3.get_public_access_block, Bucket=name)
            properties["PublicAccessBlockConfiguration"] = dict(
                block["PublicAccessBlockConfiguration"]
            )
        except CloudError as exc:
            if exc.code != "NoSuchPublicAccessBlockConfiguration":
                raise
        return Observed(properties, {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}, tags)

    async def _create_bucket(self, p: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        arguments: dict[str, Any] = {"Bucket": p["BucketName"]}
        if self._region != "us-east-1":  # S3 refuses us-east-1 as a location constraint
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        await aws.call(self._s3.create_bucket, **arguments)
        await self._update_bucket(p, tags, Observed({}, {}, {}))

    async def _update_bucket(
        self, p: Mapping[str, Any], tags: Mapping[str, str], observed: Observed
    ) -> None:
        name = p["BucketName"]
        if "PublicAccessBlockConfiguration" in p:
            await aws.call(
                self._s3.put_public_access_block,
                Bucket=name,
                PublicAccessBlockConfiguration=dict(p["PublicAccessBlockConfiguration"]),
            )
        # PutBucketTagging replaces the whole set: keep the operator's own tags.
        merged = {**observed.tags, **tags}
        await aws.call(
            self._s3.put_bucket_tagging, Bucket=name, Tagging={"TagSet": _tag_list(merged)}
        )

    async def _delete_bucket(self, p: Mapping[str, Any]) -> None:
        name = p["BucketName"]
        listing = await aws.call(self._s3.list_objects_v2, Bucket=name, MaxKeys=1)
        if listing.get("KeyCount", 0):
            # What is stored is not the declaration's to delete.
            raise CloudError(
                ErrorKind.PERMANENT,
                "BucketNotEmpty",
                f"bucket {name} holds objects: empty it first, then destroy again",
            )
        await aws.call(self._s3.delete_bucket, Bucket=name)

    # AWS::EC2::LaunchTemplate

    async def _read_launch_template(self, name: str, _: Mapping[str, Any]) -> Observed | None:
        answer = await aws.call(self._ec2.describe_launch_templates, LaunchTemplateNames=[name])
        templates = answer.get("LaunchTemplates", [])
        if not templates:
            return None
        found = templates[0]
        versions = await aws.call(
            self._ec2.describe_launch_template_versions,
            LaunchTemplateId=found["LaunchTemplateId"],
            Versions=["$Default"],
        )
        data = dict(versions["LaunchTemplateVersions"][0].get("LaunchTemplateData", {}))
        # Only what the declaration says of the instances it launches; moto lists the
        # template's own tags among them too.
        specifications = [
            {"ResourceType": s["ResourceType"], "Tags": sorted(s["Tags"], key=lambda t: t["Key"])}
            for s in data.get("TagSpecifications", [])
            if s.get("ResourceType") == "instance"
        ]
        if specifications:
            data["TagSpecifications"] = specifications
        return Observed(
            {"LaunchTemplateName": name, "LaunchTemplateData": data},
            {
                "Ref": found["LaunchTemplateId"],
                "LatestVersionNumber": str(found["LatestVersionNumber"]),
                "DefaultVersionNumber": str(found["DefaultVersionNumber"]),
            },
            _tag_map(found.get("Tags")),
        )

    async def _create_launch_template(self, p: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        await aws.call(
            self._ec2.create_launch_template,
            LaunchTemplateName=p["LaunchTemplateName"],
            LaunchTemplateData=dict(p["LaunchTemplateData"]),
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": _tag_list(tags)}],
        )

    async def _update_launch_template(
        self, p: Mapping[str, Any], tags: Mapping[str, str], observed: Observed
    ) -> None:
        template_id = observed.attributes["Ref"]
        if observed.properties.get("LaunchTemplateData") != p["LaunchTemplateData"]:
            # A template is changed by a new version made its default; the group follows
            # it by its Version (the template's latest).
            answer = await aws.call(
                self._ec2.create_launch_template_version,
                LaunchTemplateId=template_id,
                LaunchTemplateData=dict(p["LaunchTemplateData"]),
            )
            number = answer["LaunchTemplateVersion"]["VersionNumber"]
            await aws.call(
                self._ec2.modify_launch_template,
                LaunchTemplateId=template_id,
                DefaultVersion=str(number),
            )
        await aws.call(self._ec2.create_tags, Resources=[template_id], Tags=_tag_list(tags))

    async def _delete_launch_template(self, p: Mapping[str, Any]) -> None:
        await aws.call(self._ec2.delete_launch_template, LaunchTemplateName=p["LaunchTemplateName"])

    # AWS::AutoScaling::AutoScalingGroup

    async def _read_group(self, name: str, _: Mapping[str, Any]) -> Observed | None:
        answer = await aws.call(
            self._asg.describe_auto_scaling_groups, AutoScalingGroupNames=[name]
        )
        groups = answer.get("AutoScalingGroups", [])
        if not groups:
            return None
        group = groups[0]
        template = group.get("LaunchTemplate") or {}
        subnets = [s for s in str(group.get("VPCZoneIdentifier") or "").split(",") if s]
        return Observed(
            {
                "AutoScalingGroupName": name,
                "LaunchTemplate": {
                    "LaunchTemplateId": template.get("LaunchTemplateId"),
                    "Version": template.get("Version"),
                },
                "MinSize": str(group["MinSize"]),
                "MaxSize": str(group["MaxSize"]),
                "DesiredCapacity": str(group["DesiredCapacity"]),
                "VPCZoneIdentifier": sorted(subnets),
            },
            {
                "Ref": name,
                "Instances": len(group.get("Instances", [])),
                "Status": group.get("Status") or "",
            },
            _tag_map(group.get("Tags")),
        )

    async def _create_group(self, p: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        name = p["AutoScalingGroupName"]
        await aws.call(
            self._asg.create_auto_scaling_group,
            AutoScalingGroupName=name,
            LaunchTemplate=dict(p["LaunchTemplate"]),
            MinSize=int(p["MinSize"]),
            MaxSize=int(p["MaxSize"]),
            DesiredCapacity=int(p["DesiredCapacity"]),
            VPCZoneIdentifier=",".join(p["VPCZoneIdentifier"]),
            Tags=self._group_tags(name, tags),
        )

    @staticmethod
    def _group_tags(name: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "ResourceId": name,
                "ResourceType": "auto-scaling-group",
                "Key": k,
                "Value": v,
                "PropagateAtLaunch": False,
            }
            for k, v in sorted(tags.items())
        ]

    async def _update_group(
        self, p: Mapping[str, Any], tags: Mapping[str, str], observed: Observed
    ) -> None:
        name = p["AutoScalingGroupName"]
        await aws.call(
            self._asg.update_auto_scaling_group,
            AutoScalingGroupName=name,
            LaunchTemplate=dict(p["LaunchTemplate"]),
            MinSize=int(p["MinSize"]),
            MaxSize=int(p["MaxSize"]),
            VPCZoneIdentifier=",".join(p["VPCZoneIdentifier"]),
        )
        await aws.call(self._asg.create_or_update_tags, Tags=self._group_tags(name, tags))

    async def _delete_group(self, p: Mapping[str, Any]) -> None:
        name = p["AutoScalingGroupName"]
        found = await self._read_group(name, p)
        if found is None or found.attributes.get("Status") == "Delete in progress":
            return  # gone, or going (a second destroy while AWS removes its instances)
        # With its instances: they are the pool's, launched from the declared template.
        await aws.call(
            self._asg.delete_auto_scaling_group, AutoScalingGroupName=name, ForceDelete=True
        )

    # AWS::AutoScaling::ScalingPolicy: no tags of its own; it is in a group, and ours
    # when the group is (its tags are the group's).

    async def _read_scaling_policy(self, name: str, p: Mapping[str, Any]) -> Observed | None:
        group = await self._read_group(str(p["AutoScalingGroupName"]), p)
        if group is None:
            return None
        answer = await aws.call(
            self._asg.describe_policies,
            AutoScalingGroupName=p["AutoScalingGroupName"],
            PolicyNames=[name],
        )
        policies = answer.get("ScalingPolicies", [])
        if not policies:
            return None
        policy = policies[0]
        return Observed(
            {
                "PolicyName": name,
                "AutoScalingGroupName": policy["AutoScalingGroupName"],
                "PolicyType": policy.get("PolicyType", "SimpleScaling"),
                "AdjustmentType": policy.get("AdjustmentType"),
                "ScalingAdjustment": policy.get("ScalingAdjustment"),
            },
            {"Ref": policy["PolicyARN"], "Arn": policy["PolicyARN"]},
            group.tags,
        )

    async def _create_scaling_policy(self, p: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        # PutScalingPolicy creates or replaces; moto's answer lacks the ARN, so the
        # confirming read is what returns it.
        await aws.call(
            self._asg.put_scaling_policy,
            AutoScalingGroupName=p["AutoScalingGroupName"],
            PolicyName=p["PolicyName"],
            PolicyType=p["PolicyType"],
            AdjustmentType=p["AdjustmentType"],
            ScalingAdjustment=int(p["ScalingAdjustment"]),
        )

    async def _update_scaling_policy(
        self, p: Mapping[str, Any], tags: Mapping[str, str], observed: Observed
    ) -> None:
        await self._create_scaling_policy(p, tags)

    async def _delete_scaling_policy(self, p: Mapping[str, Any]) -> None:
        if await self._read_group(str(p["AutoScalingGroupName"]), p) is None:
            return  # deleted with its group
        await aws.call(
            self._asg.delete_policy,
            AutoScalingGroupName=p["AutoScalingGroupName"],
            PolicyName=p["PolicyName"],
        )

    # AWS::CloudWatch::Alarm

    _ALARM_KEYS = (
        "AlarmName",
        "AlarmDescription",
        "Namespace",
        "MetricName",
        "Statistic",
        "Dimensions",
        "Period",
        "EvaluationPeriods",
        "Threshold",
        "ComparisonOperator",
        "AlarmActions",
    )

    async def _read_alarm(self, name: str, _: Mapping[str, Any]) -> Observed | None:
        answer = await aws.call(self._cw.describe_alarms, AlarmNames=[name])
        alarms = answer.get("MetricAlarms", [])
        if not alarms:
            return None
        alarm = alarms[0]
        tags = await aws.call(self._cw.list_tags_for_resource, ResourceARN=alarm["AlarmArn"])
        properties = {k: alarm[k] for k in self._ALARM_KEYS if k in alarm}
        properties["Dimensions"] = [
            {"Name": d["Name"], "Value": d["Value"]} for d in alarm.get("Dimensions", [])
        ]
        return Observed(
            properties,
            {"Ref": name, "Arn": alarm["AlarmArn"], "StateValue": alarm.get("StateValue")},
            _tag_map(tags.get("Tags")),
        )

    async def _create_alarm(self, p: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        # PutMetricAlarm creates or replaces the alarm whole.
        await aws.call(
            self._cw.put_metric_alarm,
            **{k: p[k] for k in self._ALARM_KEYS if k in p},
            Tags=_tag_list(tags),
        )

    async def _update_alarm(
        self, p: Mapping[str, Any], tags: Mapping[str, str], observed: Observed
    ) -> None:
        await self._create_alarm(p, tags)
        await aws.call(
            self._cw.tag_resource, ResourceARN=observed.attributes["Arn"], Tags=_tag_list(tags)
        )

    async def _delete_alarm(self, p: Mapping[str, Any]) -> None:
        await aws.call(self._cw.delete_alarms, AlarmNames=[p["AlarmName"]])


if TYPE_CHECKING:  # mypy checks that the adapter implements the whole port
    _port: type[Infra] = AwsInfra

SERVICES = ("iam", "ec2", "autoscaling", "cloudwatch", "s3", "sts")


@asynccontextmanager
async def open_infra(
    region: str, endpoint_url: str | None, timeout: float
) -> AsyncIterator[AwsInfra]:
    """The services `watcher infra` uses, on the standard AWS credential chain."""
    async with aws.clients(region, endpoint_url, timeout, *SERVICES) as found:
        yield AwsInfra(found, region)
