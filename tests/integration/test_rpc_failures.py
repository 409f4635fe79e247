"""A node that is down, silent or broken gives one clear line, never a traceback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.conftest import CliResult
from watcher.shared.net import free_port

Cli = Callable[..., CliResult]
USER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture
def silent_node() -> Iterator[str]:
    """Accepts TCP connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture
def broken_node() -> Iterator[str]:
    """Answers every request with HTTP 503, like an overloaded provider."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(503, "Service Unavailable")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def assert_one_line(result: CliResult, expected: str) -> None:
    assert result.code == 1
    assert result.out == ""
    assert result.err.strip().splitlines() == [f"watcher: error: {expected}"]


@pytest.mark.parametrize("scheme", ["http", "ws"])
def test_unreachable_rpc(cli: Cli, scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}"
    result = cli("pay", "10", "--dev-account", "1", "--token-address", TOKEN, "--rpc-url", url)
    assert result.code == 1
    assert result.err.startswith("watcher: error: cannot ")
    assert url in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_connection_refused_is_named(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("token", "balance", USER, "--token-address", TOKEN, "--rpc-url", url)
    assert_one_line(
        result, f"cannot reach the RPC node at {url}: connection refused (is the node running?)"
    )


def test_silent_node_times_out(cli: Cli, silent_node: str) -> None:
    result = cli(
        "token",
        "balance",
        USER,
        "--token-address",
        TOKEN,
        "--rpc-url",
        silent_node,
        "--rpc-timeout",
        "0.3",
    )
    assert_one_line(result, f"the RPC node at {silent_node} did not answer in time")


def test_http_error_from_node(cli: Cli, broken_node: str) -> None:
    result = cli("token", "deploy", "--dev-account", "0", "--rpc-url", broken_node)
    assert_one_line(result, f"the RPC node at {broken_node} answered HTTP 503 Service Unavailable")
