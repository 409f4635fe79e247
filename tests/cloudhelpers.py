"""moto's EC2 server for tests, and a fault-injecting HTTP proxy in front of it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web

from watcher.dev.moto import MotoServer  # noqa: F401 - re-exported for the tests
from watcher.shared.net import free_port

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def aws_client(url: str, service: str, region: str = "us-east-1") -> Any:
    """A boto3 client of moto's server with the tests' credentials."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def ec2_client(url: str) -> Any:
    return aws_client(url, "ec2")


def subnet_and_image(url: str, region: str = "us-east-1") -> tuple[str, str]:
    """A subnet of moto's default VPC and the first Amazon image it knows."""
    ec2 = aws_client(url, "ec2", region)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    image = sorted(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])[0]
    return str(subnet), str(image)


def instances_by_order(url: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for reservation in ec2_client(url).describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            found.setdefault(tags.get("OrderId", "?"), []).append({**instance, "TagMap": tags})
    return found


@dataclass
class FaultProxy:
    """HTTP proxy to moto. `on_run_instances` decides, per RunInstances call, what happens:
    return "pass", a fault from _FAULTS ("throttle", "error500", "error503", "capacity"),
    "hold" (forward it, keep the answer back) or "drop" (never forward it). `run_instances_seen` is set when one arrives."""

    target: str
    on_run_instances: Callable[[int], str] = lambda n: "pass"
    # Per DescribeInstances call: True answers it with EC2's eventual-consistency error,
    # InvalidInstanceID.NotFound (only calls naming instance ids; tag look-ups pass).
    describe_not_found: Callable[[], bool] = lambda: False
    not_found_answers: int = 0
    # Per call that looks at instances (DescribeInstances, GetConsoleOutput): a fault name
    # from _FAULTS to answer with, or None.
    describe_fault: Callable[[], str | None] = lambda: None
    # Per StopInstances, StartInstances or TerminateInstances call (the action's name and
    # how many of that action so far): "pass", or "hold" (forward it: it takes effect;
    # keep the answer back, as if the caller died waiting). `acts` counts them.
    on_action: Callable[[str, int], str] = lambda name, n: "pass"
    acts: dict[str, int] = field(default_factory=dict)
    # Every API action that came through, as IAM names it ("ec2:RunInstances"): the
    # service from the signature's scope, the action from the query API's `Action=`, the
    # JSON protocol's X-Amz-Target or the RPC v2 path.
    actions: dict[str, int] = field(default_factory=dict)
    # Forward the caller's Host header: a request signed with SigV4 (moto's IAM checks
    # signatures when enforcing) signs the host it was sent to.
    keep_host: bool = False
    acted: dict[str, asyncio.Event] = field(default_factory=dict)
    calls: int = 0
    forwarded: int = 0
    run_instances_seen: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _runner: web.AppRunner | None = None
    _session: ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Held answers sleep for an hour: do not wait for them when the proxy stops.
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = ClientSession()
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _record(self, request: web.Request, body: bytes) -> None:
        scope = re.search(
            r"Credential=[^/]+/[0-9]+/[^/]+/([a-z0-9-]+)/aws4_request",
            request.headers.get("Authorization", ""),
        )
        named = re.search(rb"(?:^|&)Action=([A-Za-z0-9]+)", body)
        target = request.headers.get("X-Amz-Target", "")
        rpc = re.search(r"/operation/([A-Za-z0-9]+)$", request.path)
        action = (
            named.group(1).decode()
            if named is not None
            else target.rsplit(".", 1)[-1] or (rpc.group(1) if rpc else "")
        )
        if scope is None or not action:
            return
        service = {"monitoring": "cloudwatch"}.get(scope.group(1), scope.group(1))
        key = f"{service}:{action}"
        self.actions[key] = self.actions.get(key, 0) + 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self._record(request, body)
        action = "pass"
        if b"Action=RunInstances" in body:
            self.calls += 1
            action = self.on_run_instances(self.calls)
            self.run_instances_seen.set()
        for name in ("StopInstances", "StartInstances", "TerminateInstances"):
            if f"Action={name}".encode() in body:
                self.acts[name] = self.acts.get(name, 0) + 1
                action = self.on_action(name, self.acts[name])
                self.acted.setdefault(name, asyncio.Event()).set()
        if (
            b"Action=DescribeInstances" in body
            and b"InstanceId.1=" in body
            and self.describe_not_found()
        ):
            self.not_found_answers += 1
            action = "not_found"
        elif b"Action=DescribeInstances" in body or b"Action=GetConsoleOutput" in body:
            action = self.describe_fault() or action
        if action in _FAULTS:
            status, code, message = _FAULTS[action]
            return web.Response(status=status, text=_error(code, message), content_type="text/xml")
        if action == "drop":
            await asyncio.sleep(3600)
        assert self._session is not None
        dropped = ("content-length",) if self.keep_host else ("host", "content-length")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        async with self._session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            if action in ("pass", "hold") and b"Action=RunInstances" in body:
                self.forwarded += 1
            if action == "hold":
                self.answered.set()
                await asyncio.sleep(3600)
            return web.Response(
                status=answer.status,
                body=payload,
                headers={"Content-Type": answer.headers.get("Content-Type", "text/xml")},
            )


_FAULTS = {
    "auth": (
        401,
        "AuthFailure",
        "AWS was not able to validate the provided access credentials",
    ),
    "not_found": (
        400,
        "InvalidInstanceID.NotFound",
        "The instance ID does not exist",
    ),
    "throttle": (400, "RequestLimitExceeded", "Request limit exceeded."),
    "error500": (500, "InternalError", "An internal error has occurred"),
    "error503": (503, "Unavailable", "Service unavailable"),
    "capacity": (
        400,
        "InsufficientInstanceCapacity",
        "We currently do not have sufficient t3.micro capacity.",
    ),
}


def _error(code: str, message: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>1</RequestID></Response>'
