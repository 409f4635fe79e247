"""The provider port for storage (watcher/domain/kinds/storage_bucket.py) on S3: a bucket
per order, named after it (`storage_bucket.bucket_name`) and tagged with it, private
(public access blocked), encrypted at rest, with the plan's lifecycle.

Its handle (`Instance`) is the bucket, in EC2's states: running while its owner may read
and write; stopped once the lease's stop put the bucket policy that denies every read and
write of its objects (the data is kept through the grace, and links given out before are
worth nothing); a start takes the policy away. Terminating empties it and removes it; a
removed bucket is not listed at all.

Links for its owner (StorageViews) are presigned with the watcher's own credentials: no
per-order credentials exist to leak or revoke.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from watcher.adapters.cloud import aws
from watcher.domain.kinds import storage_bucket
from watcher.domain.kinds.storage_bucket import StorageBucket, bucket_name
from watcher.domain.pricing import Plan
from watcher.domain.provisioning import ErrorKind
from watcher.ports.cloud import (
    CloudError,
    Instance,
    LaunchRequest,
    Provider,
    StorageViews,
    StoredObject,
    UploadForm,
)

# The statement of a stopped lease's bucket policy.
STOPPED_SID = "WatcherLeaseStopped"
_MISSING = frozenset({"NoSuchBucket"})
PREFIX = "watcher-"


def stopped_policy(bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": STOPPED_SID,
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": ["s3:GetObject", "s3:PutObject"],
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
    )


class StorageCloud:
    """Buckets on S3, through one client that also signs the links (with whatever
    credentials the chain has now: an instance role's are refreshed)."""

    kinds = frozenset({storage_bucket.KIND})

    def __init__(self, s3: Any, region: str, account: str) -> None:
        self._s3 = s3
        self._region = region
        # Every call on a bucket says it expects this account's: a bucket of the same
        # name in another account answers 403 and is never taken for the order's.
        self._account = account
        self._own = {"ExpectedBucketOwner": account}

    async def _look(self, name: str) -> Instance | None:
        try:
            # GetBucketTagging answers NoSuchBucket for a bucket that is not there: no
            # HeadBucket before it (one call fewer per bucket at every look and sweep).
            tagging = await self._read(self._s3.get_bucket_tagging, Bucket=name, **self._own)
        except CloudError as exc:
            if exc.code in _MISSING:
                return None
            if exc.code == "NoSuchTagSet":
                # Ours are tagged when created; untagged, it is no order's (yet).
                return Instance(name, "pending", "", None)
            raise
        tags = {t["Key"]: t["Value"] for t in tagging.get("TagSet", [])}
        state = "running"
        try:
            policy = await self._read(self._s3.get_bucket_policy, Bucket=name, **self._own)
            if STOPPED_SID in str(policy.get("Policy", "")):
                state = "stopped"
        except CloudError as exc:
            if exc.code != "NoSuchBucketPolicy":
                raise
        return Instance(name, state, "", None, tags=tuple(sorted(tags.items())))

    async def find_instance(self, order_id: str) -> Instance | None:
        """The order's bucket once it is tagged as the order's. An untagged one of its name
        (a launch cut short right after CreateBucket) answers None, so that the launch
        before which the provisioner looks finishes it (CreateBucket then answers
        BucketAlreadyOwnedByYou, and the rest is put again)."""
        found = await self._look(bucket_name(order_id, self._account))
        if found is None or found.tag("OrderId") != order_id:
            return None
        return found

    async def tagged_instances(self) -> list[Instance]:
        answer = await self._read(self._s3.list_buckets)
        found: list[Instance] = []
        for bucket in answer.get("Buckets", []):
            name = bucket["Name"]
            if not name.startswith(PREFIX):
                continue
            seen = await self._look(name)
            if seen is not None and seen.tag("AllocatedBy") == "TokenSystem":
                found.append(seen)
        return found

    async def check_plan(self, plan: Plan) -> list[str]:
        StorageBucket.of(plan.spec)
        return []  # a bucket names nothing that must exist first

    async def launch(self, request: LaunchRequest) -> Instance:
        spec = StorageBucket.of(request.plan.spec)
        name = bucket_name(request.order_id, self._account)
        arguments: dict[str, Any] = {"Bucket": name}  # (CreateBucket takes no owner)
        if self._region != "us-east-1":  # S3 refuses us-east-1 as a location constraint
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            await aws.call(self._s3.create_bucket, **arguments)
        except CloudError as exc:
            # Made by an earlier try whose answer was lost: go on with it.
            if exc.code != "BucketAlreadyOwnedByYou":
                raise
        await aws.call(
            self._s3.put_public_access_block,
            Bucket=name,
            **self._own,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        await aws.call(
            self._s3.put_bucket_encryption,
            Bucket=name,
            **self._own,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        rules: list[dict[str, Any]] = [
            {
                "ID": "abort-incomplete-uploads",
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }
        ]
        if spec.expire_days:
            rules.append(
                {
                    "ID": "expire-objects",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": spec.expire_days},
                }
            )
        await aws.call(
            self._s3.put_bucket_lifecycle_configuration,
            Bucket=name,
            **self._own,
            LifecycleConfiguration={"Rules": rules},
        )
        # Tagged last: a tagged bucket is a whole one (the look-up before a launch finds it
        # as the order's only then, and a launch cut short before is done again).
        await aws.call(
            self._s3.put_bucket_tagging,
            Bucket=name,
            **self._own,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(request.tags.items())]},
        )
        found = await self._look(name)
        if found is None:
            raise CloudError(ErrorKind.RETRY, None, f"bucket {name} not listed yet")
        return found

    async def describe(self, instance_id: str) -> Instance | None:
        return await self._look(instance_id)

    async def console_output(self, instance_id: str) -> str | None:
        return None  # a bucket has no console

    async def stop(self, instance_id: str) -> None:
        await self._must_exist(instance_id)
        await aws.call(
            self._s3.put_bucket_policy,
            Bucket=instance_id,
            **self._own,
            Policy=stopped_policy(instance_id),
        )

    async def start(self, instance_id: str) -> None:
        await self._must_exist(instance_id)
        await aws.call(self._s3.delete_bucket_policy, Bucket=instance_id, **self._own)

    async def terminate(self, instance_id: str) -> None:
        """Every object (and unfinished upload) deleted, then the bucket; a repeat after a
        crash does what is left, and a bucket already gone is done."""
        try:
            await self._empty(instance_id)
            await aws.call(self._s3.delete_bucket, Bucket=instance_id, **self._own)
        except CloudError as exc:
            if exc.code not in _MISSING:
                raise

    async def _empty(self, name: str) -> None:
        uploads = await aws.call(self._s3.list_multipart_uploads, Bucket=name, **self._own)
        for upload in uploads.get("Uploads", []):
            await aws.call(
                self._s3.abort_multipart_upload,
                Bucket=name,
                **self._own,
                Key=upload["Key"],
                UploadId=upload["UploadId"],
            )
        token: str | None = None
        while True:
            arguments: dict[str, Any] = {"Bucket": name, "MaxKeys": 1000, **self._own}
            if token:
                arguments["ContinuationToken"] = token
            listing = await aws.call(self._s3.list_objects_v2, **arguments)
            keys = [{"Key": o["Key"]} for o in listing.get("Contents", [])]
            if keys:
                await aws.call(
                    self._s3.delete_objects,
                    Bucket=name,
                    **self._own,
                    Delete={"Objects": keys, "Quiet": True},
                )
            token = listing.get("NextContinuationToken")
            if not token:
                return

    async def _must_exist(self, name: str) -> None:
        if await self._look(name) is None:
            raise CloudError(ErrorKind.PERMANENT, "IncorrectInstanceState", f"no bucket {name}")

    async def objects(self, resource_id: str, limit: int) -> tuple[tuple[StoredObject, ...], int]:
        shown: list[StoredObject] = []
        total = 0
        token: str | None = None
        while True:
            arguments: dict[str, Any] = {"Bucket": resource_id, "MaxKeys": 1000, **self._own}
            if token:
                arguments["ContinuationToken"] = token
            listing = await self._read(self._s3.list_objects_v2, **arguments)
            for item in listing.get("Contents", []):
                total += int(item.get("Size", 0))
                if len(shown) < limit:
                    shown.append(StoredObject(item["Key"], int(item.get("Size", 0))))
            token = listing.get("NextContinuationToken")
            if not token:
                return tuple(shown), total

    async def upload_form(
        self, resource_id: str, key: str, max_bytes: int, seconds: int
    ) -> UploadForm:
        # For this one key (boto puts it in the signed policy): used again, the form only
        # replaces that file, so what it can add is capped at `max_bytes`.
        post = await self._s3.generate_presigned_post(
            Bucket=resource_id,
            Key=key,
            Conditions=[["content-length-range", 0, max_bytes]],
            ExpiresIn=seconds,
        )
        return UploadForm(str(post["url"]), dict(post["fields"]), max_bytes)

    async def download_url(self, resource_id: str, key: str, seconds: int) -> str:
        return str(
            await self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": resource_id, "Key": key}, ExpiresIn=seconds
            )
        )

    async def _read(self, method: Any, **arguments: Any) -> Any:
        # S3's own "no such ..." answers are for the caller.
        return await aws.look(method, ("NoSuch",), **arguments)


if TYPE_CHECKING:  # mypy checks that the adapter implements the whole port
    _port: type[Provider] = StorageCloud
    _views: type[StorageViews] = StorageCloud


@asynccontextmanager
async def open_storage(
    region: str, endpoint_url: str | None, timeout: float
) -> AsyncIterator[StorageCloud]:
    async with aws.clients(region, endpoint_url, timeout, "s3", "sts") as found:
        # GetCallerIdentity needs no permission; no answer now stops the start (retried
        # by whoever runs the watcher), never a guess.
        identity = await aws.call(found["sts"].get_caller_identity)
        yield StorageCloud(found["s3"], region, str(identity["Account"]))
