"""An order's SSH host key fingerprints for its owner: the ledger's copy, or, while there
is none, a look at the instance's console (cloud-init prints them there a few minutes
after boot), kept in the ledger once found.

Looked up when the owner reads the order's access details, not by the provisioner: the
console has them only minutes after the instance runs, and an order nobody looks at needs
no console read. A look per order at most every `look_every` seconds, whoever asks; an
error or a slow answer shows none this time (the next look tries again), never fails the
owner's request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger.jobs import record_host_keys
from watcher.adapters.ledger.queries import OrderAccess
from watcher.domain.host_keys import HostKey, from_json, parse_console, to_json
from watcher.domain.resources import ResourceSpec
from watcher.ports.cloud import Cloud, CloudError
from watcher.shared.logs import fields

log = logging.getLogger("watcher.services.host_keys")


class HostKeys:
    def __init__(
        self,
        engine: AsyncEngine,
        cloud: Cloud,
        look_every: float = 20.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.cloud = cloud
        self.look_every = look_every
        self.timeout = timeout
        self.clock = clock
        self._looked: dict[str, float] = {}
        # Error codes already logged as warnings (a missing ec2:GetConsoleOutput permission
        # is the operator's to fix, once; then it is noise).
        self._warned: set[str] = set()

    async def of(self, order: OrderAccess) -> tuple[HostKey, ...]:
        if order.host_keys:
            try:
                return from_json(order.host_keys)
            except (ValueError, KeyError, TypeError):
                log.warning(fields("host_keys_unreadable", order_id=order.order_id))
                return ()
        if order.state != "running" or order.instance_id is None or order.resource is None:
            return ()
        now = self.clock()
        if now - self._looked.get(order.order_id, -self.look_every) < self.look_every:
            return ()
        if len(self._looked) > 10_000:  # forget looks long past: the memory stays bounded
            self._looked = {k: t for k, t in self._looked.items() if now - t < self.look_every}
        self._looked[order.order_id] = now
        provider = self.cloud.provider(ResourceSpec.from_json(order.resource).kind)
        if provider is None:
            return ()
        try:
            output = await asyncio.wait_for(
                provider.console_output(order.instance_id), self.timeout
            )
        except (CloudError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, CloudError) else None
            event = fields("host_keys_not_read", order_id=order.order_id, error=str(exc)[:200])
            if code is not None and code not in self._warned and "NotFound" not in code:
                self._warned.add(code)
                log.warning(event)
            else:
                log.info(event)
            return ()
        keys = parse_console(output or "")
        if keys:
            try:
                await record_host_keys(
                    self.engine, order.order_id, order.instance_id, to_json(keys)
                )
            except Exception as exc:  # the database: shown now, kept at a later look
                log.warning(
                    fields("host_keys_not_kept", order_id=order.order_id, error=str(exc)[:200])
                )
                return keys
            self._looked.pop(order.order_id, None)
        return keys
