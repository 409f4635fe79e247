"""What every AWS adapter here shares: one way to call a client and read its errors, and
one way to open a session on the standard credential chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from watcher.domain.errors import ConfigError
from watcher.domain.provisioning import ErrorKind, classify_cloud_error
from watcher.ports.cloud import CloudError
from watcher.shared.redact import redact


class NoCredentials(ConfigError):
    """The standard AWS credential chain found nothing."""


NO_CREDENTIALS = (
    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
    "or an instance role (against moto's server any values do)"
)


async def call(method: Any, **arguments: Any) -> Any:
    """Call a client's method; every failure becomes a CloudError whose kind says what
    the caller may do about it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return await method(**arguments)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        kind = classify_cloud_error(code, status)
        raise CloudError(kind, code, str(error.get("Message", exc))) from None
    except (BotoCoreError, OSError, TimeoutError) as exc:
        # No answer (connection refused, timeout...): the call may or may not have
        # happened; only a look before the next try can tell.
        # botocore quotes the endpoint URL, credentials and all (EndpointConnectionError).
        raise CloudError(ErrorKind.RETRY, None, redact(f"{type(exc).__name__}: {exc}")) from None


async def look(method: Any, answers: tuple[str, ...] = (), **arguments: Any) -> Any:
    """A call that only looks. Whatever goes wrong (AuthFailure after a credential
    rotation, clock skew, an unknown code) says nothing about the resource, so it is always
    retried: only an answer to a call that acts may end an order. The codes in `answers`
    (a service's "no such ...", matched as prefixes) are passed on for the caller to read."""
    try:
        return await call(method, **arguments)
    except CloudError as exc:
        if exc.kind is ErrorKind.RETRY or (exc.code or "").startswith(answers):
            raise
        raise CloudError(ErrorKind.RETRY, exc.code, exc.message) from None


def client_config(region: str, timeout: float) -> Any:
    """botocore's own retries are off: a retried call that acts is only safe after the
    look the caller makes first."""
    from botocore.config import Config

    return Config(
        region_name=region,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout,
        read_timeout=timeout,
    )


async def session() -> Any:
    """An aioboto3 session on the standard credential chain, or NoCredentials."""
    import aioboto3

    found = aioboto3.Session()
    if await found.get_credentials() is None:
        raise NoCredentials(NO_CREDENTIALS)
    return found


@asynccontextmanager
async def clients(
    region: str, endpoint_url: str | None, timeout: float, *services: str
) -> AsyncIterator[dict[str, Any]]:
    """One client per named service, on one session of the standard credential chain."""
    found = await session()
    config = client_config(region, timeout)
    async with AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(
                found.client(name, endpoint_url=endpoint_url, config=config)
            )
            for name in services
        }
