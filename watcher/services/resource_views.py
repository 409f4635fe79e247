"""What an owner sees of a pool or a bucket beyond its address, read live from the cloud
when they look: a pool's instances, sizes and alarm; a bucket's objects, what is left of
its quota, and presigned links to upload and download (signed only while the lease runs).

Only ever a look: an error or a slow answer shows nothing this time (the page asks again),
never fails the owner's request and never changes an order.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from watcher.domain.kinds.storage_bucket import LINK_SECONDS
from watcher.ports.cloud import (
    Cloud,
    CloudError,
    PoolState,
    PoolViews,
    StorageViews,
    StoredObject,
    UploadForm,
)
from watcher.shared.logs import fields

log = logging.getLogger("watcher.services.resource_views")

# Objects listed (each with its link) on the owner's page; the quota counts them all.
SHOWN_OBJECTS = 50


@dataclass(frozen=True)
class StorageState:
    objects: tuple[StoredObject, ...]
    used: int
    # Presigned, while the lease runs and the quota has room: None otherwise.
    upload: UploadForm | None
    links: dict[str, str]


class ResourceViews:
    def __init__(self, cloud: Cloud, timeout: float = 5.0) -> None:
        self.cloud = cloud
        self.timeout = timeout

    async def pool(self, kind: str, resource_id: str) -> PoolState | None:
        provider = self.cloud.provider(kind)
        if not isinstance(provider, PoolViews):
            return None
        try:
            return await asyncio.wait_for(provider.pool(resource_id), self.timeout)
        except (CloudError, TimeoutError) as exc:
            log.info(fields("pool_not_read", resource=resource_id, error=str(exc)[:200]))
            return None

    async def storage(
        self, kind: str, resource_id: str, quota: int, links: bool, upload: str | None = None
    ) -> StorageState | None:
        """The bucket's objects and use; with `links`, a download link per object shown
        and, for the file named `upload`, a form capped at what is left of `quota`."""
        provider = self.cloud.provider(kind)
        if not isinstance(provider, StorageViews):
            return None
        try:
            shown, used = await asyncio.wait_for(
                provider.objects(resource_id, SHOWN_OBJECTS), self.timeout
            )
            downloads: dict[str, str] = {}
            form = None
            if links:
                if upload is not None and used < quota:
                    form = await provider.upload_form(
                        resource_id, upload, quota - used, LINK_SECONDS
                    )
                for stored in shown:
                    downloads[stored.key] = await provider.download_url(
                        resource_id, stored.key, LINK_SECONDS
                    )
        except (CloudError, TimeoutError) as exc:
            log.info(fields("storage_not_read", resource=resource_id, error=str(exc)[:200]))
            return None
        return StorageState(shown, used, form, downloads)
