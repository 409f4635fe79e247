"""`watcher infra`'s wiring: the declaration from the settings, the AWS adapter, the
infra service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from watcher.adapters.cloud.infra_aws import open_infra
from watcher.domain.errors import ConfigError
from watcher.domain.infra import Declared, declare, prerequisites
from watcher.runtime.config import Settings
from watcher.services.infra import Change, InfraRun

# IAM and Auto Scaling answer in seconds; a call that takes longer has no answer.
AWS_TIMEOUT = 30.0


def declaration(settings: Settings) -> tuple[Declared, ...]:
    try:
        return declare(settings.infra)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def run_infra(
    settings: Settings,
    command: str,
    key_file: Path | None = None,
    report: Callable[[Change], None] = lambda change: None,
) -> list[Change]:
    """plan, apply or destroy the declared resources on the configured AWS endpoint."""
    declared = declaration(settings)
    async with open_infra(settings.aws_region, settings.aws_endpoint_url, AWS_TIMEOUT) as infra:
        run = InfraRun(declared, infra, settings.infra.stack, prerequisites(settings.infra))
        if command == "plan":
            absent = await run.missing()
            if absent:
                raise ConfigError(
                    f"the account has no {', '.join(absent)}: apply would make the rest and "
                    "then fail (fix [infra] in watcher.toml)"
                )
            changes = await run.plan()
            for change in changes:
                report(change)
            return changes
        if command == "apply":
            return await run.apply(key_file, report)
        if command == "destroy":
            return await run.destroy(report)
    raise ValueError(f"unknown infra command {command!r}")
