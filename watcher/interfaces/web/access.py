"""How the owner reaches what they bought: for an instance the public address, the SSH user
of the plan's image, a ready-to-copy `ssh` command and their key's fingerprint; for a
scaling pool its instances (each with its ssh command), sizes and alarm; for storage its
bucket, what it holds of its quota, an upload form and download links. Only the signed-in
wallet that paid for the order reads them (403 for another wallet, 401 signed out);
anyone else sees what the chain shows, through /api/orders."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger import queries
from watcher.adapters.ledger.signin import Session
from watcher.domain.errors import InvalidInput
from watcher.domain.kinds import ec2_instance, scaling_pool, size, storage_bucket, summary
from watcher.domain.leases import LeaseTerms, period_words
from watcher.domain.resources import ResourceSpec
from watcher.domain.ssh_keys import parse_ssh_public_key
from watcher.interfaces.web.signin import SignedIn
from watcher.services.host_keys import HostKeys
from watcher.services.resource_views import ResourceViews


class HostKeyOut(BaseModel):
    type: str = Field(description="ED25519, ECDSA or RSA.")
    fingerprint: str = Field(description="SHA256:..., as ssh shows it on first login.")
    bits: int


class PoolMemberOut(BaseModel):
    instance_id: str
    state: str = Field(description="Auto Scaling's: Pending, InService, Terminating...")
    public_ip: str | None
    ssh_command: str | None


class PoolOut(BaseModel):
    group: str = Field(description="The pool's auto-scaling group.")
    min_size: int
    desired_capacity: int = Field(description="How many it runs now (the alarm moves it).")
    max_size: int = Field(description="What the price pays for.")
    cpu_threshold: int = Field(description="Scales out when the average CPU stays above.")
    alarm_state: str | None = Field(description="OK, ALARM or INSUFFICIENT_DATA.")
    instances: list[PoolMemberOut]


class StoredObjectOut(BaseModel):
    key: str
    size: int
    url: str | None = Field(description="A download link, valid for minutes.")


class UploadOut(BaseModel):
    url: str = Field(description="POST a multipart form here: the fields, then `file`.")
    fields: dict[str, str]
    max_bytes: int = Field(description="The largest file it takes: what is left of the quota.")
    expires_in: int = Field(description="Seconds the form is valid.")


class StorageOut(BaseModel):
    bucket: str
    quota_bytes: int
    used_bytes: int
    open: bool = Field(description="Whether files can be uploaded and read now (its lease runs).")
    objects: list[StoredObjectOut] = Field(description="The first objects, by key.")
    upload: UploadOut | None = Field(
        description="A form for the one file named by ?upload=NAME, capped at what is left "
        "of the quota; null without it, while its lease is not running or when it is full."
    )


class AccessOut(BaseModel):
    order_id: str
    state: str
    kind: str = Field(default=ec2_instance.KIND, description="ec2_instance, scaling_pool...")
    summary: str = Field(description="What the plan is, e.g. t3.micro.")
    resource: dict[str, object] | None = Field(description="The plan's specification.")
    periods: int | None
    name: str | None
    instance_id: str | None = Field(description="The cloud's id of the instance, once launched.")
    region: str | None = Field(description="The cloud region it runs in.")
    vcpus: int | None = Field(description="vCPUs, where the plan's type is known here.")
    memory_gib: float | None = Field(description="Memory in GiB, where known.")
    public_ip: str | None = Field(description="Null until the instance runs.")
    public_dns: str | None
    ssh_user: str | None = Field(description="The login user of the plan's image.")
    ssh_command: str | None = Field(description="Ready to copy, once the instance runs.")
    ssh_key_fingerprint: str | None = Field(
        description="SHA256 fingerprint of the key put on the instance (drafted orders)."
    )
    host_keys: list[HostKeyOut] = Field(
        default_factory=list,
        description="The instance's SSH host key fingerprints, read from its console (where "
        "cloud-init prints them a few minutes after boot): compare with what ssh shows on "
        "the first login. Empty until the cloud shows them.",
    )
    lease_state: str | None = Field(
        default=None, description="Its lease (see /api/orders); null: sold without an end."
    )
    paid_until: datetime | None = Field(default=None, description="When its paid time ends.")
    grace_until: datetime | None = Field(
        default=None, description="Stopped after its paid time: when it is removed."
    )
    unit: str = Field(default="hour", description='What one period is ("hour").')
    units: str = Field(default="hours", description='Several periods ("hours").')
    next_step: str = Field(description="What happens next, in words.")
    pool: PoolOut | None = Field(default=None, description="A scaling pool's live state.")
    storage: StorageOut | None = Field(default=None, description="A bucket's, with links.")


_LEASE_STEPS = {
    "stopping": "Its paid time is over: it is being stopped; its disk is kept for a while.",
    "stopped": "Stopped: its paid time is over. Its disk is kept until the end of the grace "
    "period, then it is removed.",
    "starting": "Extended: it is being started again.",
    "terminating": "It is being removed.",
    "terminated": "Its lease has ended and it has been removed.",
    "cancelled": "Cancelled and removed.",
}


# A pool's and a bucket's words where an instance's do not fit.
_KIND_STEPS = {
    (scaling_pool.KIND, "stopped"): "Stopped: its paid time is over and its instances are "
    "gone; the pool itself is kept until the end of the grace period, then removed. Extend "
    "to start it again.",
    (scaling_pool.KIND, "stopping"): "Its paid time is over: its instances are being stopped.",
    (scaling_pool.KIND, "running"): "It runs: log in to any of its instances with its ssh "
    "command and the key you gave. More start when its CPU stays high, up to its maximum.",
    (storage_bucket.KIND, "stopped"): "Stopped: its paid time is over. Nothing can be read or "
    "written; what it holds is kept until the end of the grace period, then deleted. Extend "
    "to use it again.",
    (storage_bucket.KIND, "stopping"): "Its paid time is over: it is being closed.",
    (storage_bucket.KIND, "running"): "Choose a file and upload it; download with the links "
    "below (each is valid for 15 minutes, and this page makes new ones).",
}


def _next_step(
    state: str, reachable: bool, lease_state: str | None = None, kind: str = ec2_instance.KIND
) -> str:
    if state in ("queued", "launching", "launched") and kind == scaling_pool.KIND:
        return "Paid; the pool is being made. Its instances appear here when they run."
    if state in ("queued", "launching", "launched") and kind == storage_bucket.KIND:
        return "Paid; the bucket is being made. Its upload form appears here when it is ready."
    if state == "terminated" and kind != ec2_instance.KIND:
        return "It has ended and been removed."
    if state == "running" and kind != ec2_instance.KIND:
        key = "running" if lease_state in (None, "active", "expiring") else lease_state
        if (kind, key) in _KIND_STEPS:
            return _KIND_STEPS[kind, key]
    if state == "running" and lease_state in _LEASE_STEPS:
        return _LEASE_STEPS[lease_state]
    if state == "running" and reachable:
        return "It runs: log in with the ssh command and the key you gave."
    if state in ("queued", "launching", "launched"):
        return "Paid; the instance is being started. Its address appears here when it runs."
    if state == "failed":
        return "It could not be started; its price is back in your credit."
    if state == "terminated":
        return "The instance has ended."
    return (
        "It runs without a public address (the plan's subnet assigns none): reach it from "
        "inside its network, or ask the operator."
    )


def access_routes(
    engine: AsyncEngine,
    chain_id: int,
    signed_in: SignedIn,
    region: str | None = None,
    host_keys: HostKeys | None = None,
    views: ResourceViews | None = None,
) -> APIRouter:
    router = APIRouter(prefix="/api/orders", tags=["orders"])
    session_of = Depends(signed_in)

    @router.get(
        "/{order_id}/access", response_model=AccessOut, responses={401: {}, 403: {}, 404: {}}
    )
    async def access(
        order_id: str = Path(pattern=r"^[0-9a-f]{32}$"),
        upload: str | None = Query(
            default=None,
            min_length=1,
            max_length=255,
            # No control characters, and not a path from the root.
            pattern=r"^[^\x00-\x1f\x7f/][^\x00-\x1f\x7f]*$",
            description="A bucket's: the name of a file to upload, for a form made for it.",
        ),
        session: Session = session_of,
    ) -> AccessOut:
        """How to reach and use the order's resource: for the wallet that paid for it
        only."""
        found = await queries.order_access(engine, chain_id, order_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no order {order_id}")
        if found.payer != session.address:
            raise HTTPException(status_code=403, detail="this order belongs to another wallet")
        spec = ResourceSpec.from_json(found.resource) if found.resource else None
        kind = spec.kind if spec is not None else ec2_instance.KIND
        ssh_user = None
        if spec is not None and kind == ec2_instance.KIND:
            ssh_user = ec2_instance.Ec2Instance.of(spec).ssh_user
        elif spec is not None and kind == scaling_pool.KIND:
            ssh_user = scaling_pool.ScalingPool.of(spec).ssh_user
        host = found.public_dns or found.public_ip
        fingerprint = None
        if found.ssh_key:
            try:
                fingerprint = parse_ssh_public_key(found.ssh_key).fingerprint
            except InvalidInput:
                fingerprint = None  # checked when drafted; an edited row shows none
        # Running, and within its paid time (or sold without an end).
        running = found.state == "running" and found.lease_state in (None, "active", "expiring")
        terms = LeaseTerms.from_json(found.lease_terms) if found.lease_terms else LeaseTerms()
        words = period_words(terms.period)
        known = size(spec) if spec is not None else None
        keys = await host_keys.of(found) if host_keys is not None and running else ()
        pool = storage = None
        if views is not None and spec is not None and found.instance_id is not None:
            if kind == scaling_pool.KIND and found.state == "running":
                pool = await _pool(views, spec, found.instance_id, ssh_user)
            elif kind == storage_bucket.KIND and found.state == "running":
                storage = await _storage(views, spec, found.instance_id, running, upload)
        return AccessOut(
            kind=kind,
            pool=pool,
            storage=storage,
            order_id=found.order_id,
            state=found.state,
            summary=summary(spec) if spec is not None else found.plan,
            resource=spec.as_dict() if spec is not None else None,
            periods=found.periods,
            name=found.name,
            instance_id=found.instance_id,
            region=region,
            vcpus=known[0] if known else None,
            memory_gib=known[1] if known else None,
            public_ip=found.public_ip if running else None,
            public_dns=found.public_dns if running else None,
            ssh_user=ssh_user,
            ssh_command=f"ssh {ssh_user}@{host}" if running and host and ssh_user else None,
            ssh_key_fingerprint=fingerprint,
            host_keys=[
                HostKeyOut(type=k.type, fingerprint=k.fingerprint, bits=k.bits) for k in keys
            ],
            next_step=_next_step(
                found.state, running and host is not None, found.lease_state, kind
            ),
            lease_state=found.lease_state,
            paid_until=found.paid_until,
            grace_until=found.grace_until,
            unit=words[0],
            units=words[1],
        )

    return router


async def _pool(
    views: ResourceViews, spec: ResourceSpec, group: str, ssh_user: str | None
) -> PoolOut | None:
    state = await views.pool(spec.kind, group)
    if state is None:
        return None
    sold = scaling_pool.ScalingPool.of(spec)
    return PoolOut(
        group=group,
        min_size=state.min_size,
        desired_capacity=state.desired_capacity,
        max_size=state.max_size,
        cpu_threshold=sold.cpu_threshold,
        alarm_state=state.alarm_state,
        instances=[
            PoolMemberOut(
                instance_id=m.instance_id,
                state=m.state,
                public_ip=m.public_ip,
                ssh_command=f"ssh {ssh_user}@{m.public_ip}" if m.public_ip and ssh_user else None,
            )
            for m in state.members
        ],
    )


async def _storage(
    views: ResourceViews, spec: ResourceSpec, bucket: str, running: bool, upload: str | None
) -> StorageOut | None:
    quota = storage_bucket.StorageBucket.of(spec).quota
    state = await views.storage(spec.kind, bucket, quota, links=running, upload=upload)
    if state is None:
        return None
    form = state.upload
    return StorageOut(
        bucket=bucket,
        quota_bytes=quota,
        used_bytes=state.used,
        open=running,
        objects=[
            StoredObjectOut(key=o.key, size=o.size, url=state.links.get(o.key))
            for o in state.objects
        ],
        upload=UploadOut(
            url=form.url,
            fields=form.fields,
            max_bytes=form.max_bytes,
            expires_in=storage_bucket.LINK_SECONDS,
        )
        if form is not None
        else None,
    )
