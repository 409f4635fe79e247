"""Issue 8, items 10 to 12: bad input is one line, and no credential of a URL is ever shown
(`watcher config`, error messages, logs, the API), whatever part of the URL holds it."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.conftest import POSTGRES_ADMIN_URL, CliResult
from watcher.adapters.chain.rpc import HttpTransport, WebSocketTransport, open_transport
from watcher.adapters.chain.source import RpcChainSource
from watcher.adapters.cloud.ec2 import open_ec2
from watcher.adapters.ledger import migrations
from watcher.adapters.ledger.database import create_engine, describe
from watcher.adapters.ledger.ledger import Ledger
from watcher.domain.addresses import BURN_ADDRESS
from watcher.domain.catalog import Catalog
from watcher.interfaces.web.api import create_api
from watcher.ports.cloud import CloudError
from watcher.services.follower import ChainFollower, FollowerConfig, FollowerError
from watcher.shared.net import bind_problem, free_port

Cli = Callable[..., CliResult]
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
USER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
API_KEY = "9aa3d95b3bc440fa88ea12eaa4456161"
SECRETS = ("robert", "hunter2", API_KEY, "pg-secret", "mqtt-secret", "aws-secret", "wskey123")


def closed_port_url(scheme: str = "http") -> str:
    """A URL of a port nothing listens on, with a user, a password and an Infura-style key."""
    return f"{scheme}://robert:hunter2@127.0.0.1:{free_port()}/v3/{API_KEY}"


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} shown in {text!r}"


def one_error_line(result: CliResult) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("watcher: error: ")
    return lines[0]


@pytest.fixture
def watcher_logging() -> Iterator[None]:
    """`watcher run` rewires the `watcher` logger for its process; put it back after."""
    root = logging.getLogger("watcher")
    saved = (root.handlers[:], root.level, root.propagate)
    yield
    root.handlers[:], root.level, root.propagate = saved[0], saved[1], saved[2]


# --- item 10: secrets printed ---


def test_watcher_config_shows_no_credential(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "WATCHER_RPC_URL", f"https://robert:hunter2@mainnet.infura.io/v3/{API_KEY}?apikey=x"
    )
    monkeypatch.setenv("WATCHER_WS_URL", "wss://robert:hunter2@eth.example/ws?token=wskey123")
    monkeypatch.setenv("WATCHER_DATABASE_URL", "postgresql://watcher:pg-secret@db:5432/ledger")
    monkeypatch.setenv("WATCHER_MQTT_URL", "mqtts://robert:mqtt-secret@broker:8883")
    monkeypatch.setenv("WATCHER_AWS_ENDPOINT_URL", "http://robert:aws-secret@moto:5000")
    monkeypatch.setenv("WATCHER_PRIVATE_KEY", "0x" + "ab" * 32)
    monkeypatch.setenv("WATCHER_KEYSTORE_PASSWORD", "hunter2")
    shown = cli("config")
    assert shown.code == 0, shown.err
    assert_no_secret(shown.out, shown.err)
    assert "ab" * 32 not in shown.out
    lines = set(shown.out.splitlines())
    assert "WATCHER_RPC_URL=https://***:***@mainnet.infura.io/v3/***?apikey=***" in lines
    assert "WATCHER_WS_URL=wss://***:***@eth.example/ws?token=***" in lines
    assert "WATCHER_DATABASE_URL=postgresql+asyncpg://***:***@db:5432/ledger" in lines
    assert "WATCHER_MQTT_URL=mqtts://***:***@broker:8883" in lines
    assert "WATCHER_AWS_ENDPOINT_URL=http://***:***@moto:5000" in lines
    assert {"WATCHER_PRIVATE_KEY=(set)", "WATCHER_KEYSTORE_PASSWORD=(set)"} <= lines


@pytest.mark.parametrize("scheme", ["http", "ws"])
@pytest.mark.parametrize(
    "command",
    [
        ("token", "balance", USER, "--token-address", TOKEN),
        ("pay", "1", "--dev-account", "1", "--token-address", TOKEN),
        # `replay` opens the chain through the follower's own JSON-RPC client
        ("replay", "--from-block", "0", "--token-address", TOKEN),
    ],
)
def test_an_unreachable_node_is_named_without_its_credentials(
    cli: Cli, scheme: str, command: tuple[str, ...]
) -> None:
    url = closed_port_url(scheme)
    result = cli(*command, "--rpc-url", url)
    assert result.code == 1
    line = one_error_line(result)
    assert f"{scheme}://***:***@127.0.0.1:" in line
    assert "/v3/***" in line
    assert_no_secret(result.out, result.err)


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_rpc_retry_log_and_error_hide_the_key(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    scheme: str,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await migrations.upgrade(engine)
    transport = open_transport(closed_port_url(scheme), 2)
    assert isinstance(transport, HttpTransport if scheme == "http" else WebSocketTransport)
    follower = ChainFollower(
        RpcChainSource(transport),
        Ledger(engine, 1337, Catalog()),
        FollowerConfig(token=TOKEN, burn=BURN_ADDRESS, confirmations=0, max_attempts=3),
    )
    # `watcher run` (in an earlier test of this process) stops the `watcher` logger's
    # records at its own handler; caplog listens at the root.
    monkeypatch.setattr(logging.getLogger("watcher"), "propagate", True)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="watcher"),
            pytest.raises(FollowerError) as failure,
        ):
            await follower.sync()
    finally:
        await transport.close()
        await engine.dispose()
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rpc_retry")]
    assert len(retries) == 2
    assert "127.0.0.1:" in retries[0] and "/v3/***" in retries[0]
    assert_no_secret(caplog.text, str(failure.value))


async def test_balance_api_with_the_node_down_is_503_without_the_url(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    source = RpcChainSource(HttpTransport(closed_port_url(), 2))
    app = create_api(engine, 1337, TOKEN, Catalog(), partial(source.token_balance, TOKEN))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://watcher"
        ) as http:
            answer = await http.get(f"/api/balance/{USER}")
    finally:
        await source.close()
        await engine.dispose()
    assert answer.status_code == 503
    assert answer.json() == {"detail": "the chain node is not answering (connection)"}
    assert_no_secret(answer.text)


async def test_an_unreachable_aws_endpoint_is_named_without_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # A gateway's token in the path (aiohttp refuses a user and password in the endpoint).
    endpoint = f"http://127.0.0.1:{free_port()}/{API_KEY}/"
    async with open_ec2("us-east-1", endpoint, 2) as cloud:
        with pytest.raises(CloudError) as failure:
            await cloud.describe("i-0123456789abcdef0")
    assert "http://127.0.0.1:" in str(failure.value) and "/***/" in str(failure.value)
    assert_no_secret(str(failure.value))


def test_database_urls_in_messages_hide_user_and_password() -> None:
    shown = describe("postgresql+asyncpg://watcher:pg-secret@db:5432/ledger")
    assert shown == "postgresql+asyncpg://***:***@db:5432/ledger"


# --- item 11: tracebacks on bad input ---


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--from-block", "\u00b2"),  # superscript two: str.isdigit() says yes, int() says no
        ("--from-block", "\u0661\u0660"),  # Arabic-Indic ten: int() reads it as 10
        ("--from-block", "1_0"),
        ("--from-block", "-1"),
        ("--from-block", str(2**63)),
        ("--to-block", "\u00b2"),
    ],
)
def test_block_arguments_are_ascii_numbers(cli: Cli, flag: str, value: str) -> None:
    args = ["replay", "--token-address", TOKEN, "--rpc-url", closed_port_url()]
    args += [flag, value] if flag == "--from-block" else ["--from-block", "0", flag, value]
    result = cli(*args)
    assert result.code == 2
    line = one_error_line(result)
    assert f"Invalid value for '{flag}': must be a block number" in line
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("1_0", "must be a number of seconds"),
        ("\u0661", "must be a number of seconds"),
        ("nan", "must be between 0 and 86400 seconds"),
        ("-1", "must be between 0 and 86400 seconds"),
    ],
)
def test_max_wait_is_ascii_seconds(cli: Cli, value: str, why: str) -> None:
    result = cli("drain", "--max-wait", value)
    assert result.code == 2
    assert f"Invalid value for '--max-wait': {why}" in one_error_line(result)


@pytest.mark.parametrize("command", ["orders", "credit"])
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@pytest.mark.parametrize(
    ("value", "why"),
    [
        (str(2**63), "must be between 0 and 9223372036854775807"),
        (str(2**64 + 5), "must be between 0 and 9223372036854775807"),
        ("1_0", "must be a chain id"),
        ("\u0661", "must be a chain id"),
    ],
)
def test_chain_id_is_checked_before_it_reaches_the_database(
    cli: Cli, tmp_path: Path, command: str, database: str, value: str, why: str
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}" if database == "sqlite" else POSTGRES_ADMIN_URL
    result = cli(command, "--chain-id", value, "--database-url", url)
    assert result.code == 2
    assert f"Invalid value for '--chain-id': {why}" in one_error_line(result)
    assert not (tmp_path / "ledger.db").exists()


def test_config_file_that_is_not_utf8(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "watcher.toml").write_bytes(b"confirmations = 2 # \xff\xfe\n")
    result = cli("config")
    assert result.code == 2
    assert one_error_line(result).startswith(
        "watcher: error: watcher.toml is not UTF-8 text (byte 20 is not valid UTF-8"
    )


@pytest.mark.usefixtures("watcher_logging")
@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("no.such.host.invalid", "'no.such.host.invalid' is not a known host name or address"),
        ("300.1.1.1", "invalid --http-host: '300.1.1.1' is not a valid IP address"),
    ],
)
def test_a_bad_http_host_is_not_called_a_busy_port(cli: Cli, host: str, problem: str) -> None:
    result = cli("run", "--http-host", host, "--http-port", str(free_port()))
    assert result.code == 2
    line = one_error_line(result)
    assert problem in line
    assert "in use" not in line


@pytest.mark.usefixtures("watcher_logging")
def test_a_busy_http_port_is_called_busy(cli: Cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("run", "--http-port", str(port))
    assert result.code == 2
    assert one_error_line(result) == (
        f"watcher: error: cannot serve the web API: port {port} on 127.0.0.1 is already in use "
        "(set WATCHER_HTTP_HOST and WATCHER_HTTP_PORT, or WATCHER_HTTP_PORT=0 to turn it off)"
    )


def test_bind_problems_are_told_apart() -> None:
    assert bind_problem(free_port(), "127.0.0.1") is None
    assert bind_problem(free_port(), "::1") is None
    assert bind_problem(free_port(), "no.such.host.invalid") == (
        "'no.such.host.invalid' is not a known host name or address"
    )
    # TEST-NET-1 (RFC 5737): a valid address that is never this machine's.
    assert bind_problem(free_port(), "192.0.2.1") == "192.0.2.1 is not an address of this machine"


# --- item 12 (`watcher config` part): the plans and the default plan in effect ---


def test_watcher_config_shows_the_built_in_plan_and_why_it_is_the_default(cli: Cli) -> None:
    shown = cli("config")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert "WATCHER_DEFAULT_PLAN=t3.micro (built-in default, not set)" in lines
    assert "# plans (built-in):" in lines
    assert (
        "plan t3.micro: price=10 CTK instance_type=t3.micro ami=ami-09278528675a8d54e "
        "key_pair=(none) security_groups=(default) subnet=(default)  (default)"
    ) in lines


def test_watcher_config_shows_the_catalog_of_the_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "watcher.toml").write_text(
        '[plans.small]\nprice = "2.5"\ninstance_type = "t3.nano"\n'
        '[plans.big]\nprice = 42\ninstance_type = "t3.large"\nami = "ami-0123456789abcdef0"\n'
        'key_name = "ops"\nsecurity_group_ids = ["sg-0123abcd", "sg-4567ef01"]\n'
        'subnet_id = "subnet-0123abcd"\n'
    )
    first = cli("config")
    assert first.code == 0, first.err
    assert "WATCHER_DEFAULT_PLAN=small (first plan of the catalog, not set)" in first.out
    monkeypatch.setenv("WATCHER_DEFAULT_PLAN", "big")
    shown = cli("config")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert "WATCHER_DEFAULT_PLAN=big (set)" in lines
    assert "# plans (from watcher.toml):" in lines
    assert (
        "plan small: price=2.5 CTK instance_type=t3.nano ami=ami-09278528675a8d54e "
        "key_pair=(none) security_groups=(default) subnet=(default)"
    ) in lines
    assert (
        "plan big: price=42 CTK instance_type=t3.large ami=ami-0123456789abcdef0 key_pair=ops "
        "security_groups=sg-0123abcd,sg-4567ef01 subnet=subnet-0123abcd  (default)"
    ) in lines
