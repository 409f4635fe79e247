"""`watcher run`'s /metrics endpoint: a port that cannot be used is one line that names the
settings to change, as for the web API."""

from __future__ import annotations

import socket

import pytest

from watcher.domain.errors import ConfigError
from watcher.services.monitoring import serve_metrics
from watcher.shared.net import free_port


async def test_a_metrics_port_in_use_names_the_setting_and_how_to_turn_it_off() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as failure:
            async with serve_metrics("127.0.0.1", port):
                pytest.fail("served metrics on a port in use")
    assert str(failure.value) == (
        f"cannot serve metrics: port {port} on 127.0.0.1 is already in use (set "
        "WATCHER_METRICS_HOST and WATCHER_METRICS_PORT, or WATCHER_METRICS_PORT=0 to turn it off)"
    )


async def test_metrics_are_served_on_a_free_port() -> None:
    import aiohttp

    port = free_port()
    async with (
        serve_metrics("127.0.0.1", port),
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        assert answer.status == 200
        assert "watcher_" in await answer.text()
