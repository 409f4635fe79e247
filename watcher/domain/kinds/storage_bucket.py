"""The storage kind (the thesis's storage pool, future work's S3): an S3 bucket per order
with the plan's quota and lifecycle, emptied and removed after the lease's grace.

Its owner reaches it through presigned links the watcher signs on request: an upload form
(a presigned POST whose policy caps each upload at what is left of the quota) and a
download link per object, each valid for minutes. Why not scoped credentials (STS with a
policy per bucket): they need a role the watcher may assume and pass on, they live on
after the lease stops unless made short, and S3 has no quota of its own to hold a holder
of credentials to. A link is signed by the watcher only while the lease runs and only for
what fits, and a stopped lease's bucket denies every read and write by its policy, so a
link given out before the stop is worth nothing after it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from watcher.domain.resources import ResourceSpec

KIND = "s3_bucket"
KEYS = frozenset({"quota", "expire_days"})
_SIZE = re.compile(r"([0-9]+)\s*(B|KiB|MiB|GiB|TiB)")
_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
# A bucket sold here holds at most this much (a typo must not sell a petabyte).
MAX_QUOTA = 100 * 2**40
# How long a link stays valid.
LINK_SECONDS = 900


def bucket_name(order_id: str, account: str) -> str:
    """The order's bucket: 32 characters (the ledger's resource id column), lower case, as
    S3 wants; the full order id is in its OrderId tag. Bucket names are one namespace for
    all of S3, and an order id can be computed from the chain by anyone: a name from the
    order id alone could be taken first by a stranger's bucket. Hashed with the account's
    id, it cannot be known before the watcher makes it (and every call also says whose
    bucket it expects)."""
    digest = hashlib.sha256(f"{account}:{order_id}".encode()).hexdigest()
    return f"watcher-{digest[:24]}"


def parse_size(text: str, what: str) -> int:
    found = _SIZE.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise ValueError(f'{what} must be a size like "10GiB" or "500MiB", not {text!r}')
    return int(found.group(1)) * _UNITS[found.group(2)]


def format_size(size: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]} {unit}"
    return f"{size} B"


@dataclass(frozen=True, slots=True)
class StorageBucket:
    quota: int
    # Objects are deleted this many days after upload (None: kept until the lease ends).
    expire_days: int | None = None

    @classmethod
    def of(cls, spec: ResourceSpec) -> StorageBucket:
        if spec.kind != KIND:
            raise ValueError(f"not an {KIND} specification: {spec.kind}")
        days = spec.get("expire_days")
        return cls(quota=int(spec.get("quota")), expire_days=int(days) if days else None)

    def spec(self) -> ResourceSpec:
        return ResourceSpec.of(KIND, quota=self.quota, expire_days=self.expire_days)


def summary(spec: ResourceSpec) -> str:
    return f"{format_size(StorageBucket.of(spec).quota)} storage"


def describe(spec: ResourceSpec) -> str:
    bucket = StorageBucket.of(spec)
    kept = (
        f"; files are deleted {bucket.expire_days} days after upload" if bucket.expire_days else ""
    )
    return (
        f"A private bucket of {format_size(bucket.quota)}: upload and download in your browser "
        f"or with curl, through links made for you{kept}."
    )


def size(spec: ResourceSpec) -> tuple[int, float] | None:
    return None  # no vCPUs or memory


def parse(name: str, table: Mapping[str, Any]) -> ResourceSpec:
    """A `[plans."<name>"]` table of kind s3_bucket; ValueError names the plan and key."""
    if "quota" not in table:
        raise ValueError(f'plans.{name}.quota is needed for storage, like "10GiB"')
    quota = parse_size(table["quota"], f"plans.{name}.quota")
    if not 0 < quota <= MAX_QUOTA:
        raise ValueError(f"plans.{name}.quota must be more than 0 and at most 100 TiB")
    days = table.get("expire_days")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650
    ):
        raise ValueError(f"plans.{name}.expire_days must be a whole number of days, 1 to 3650")
    return StorageBucket(quota, days).spec()
