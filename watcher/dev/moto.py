"""moto's EC2 server as a child process on 127.0.0.1: AWS stand-in for the demo and tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from watcher.domain.errors import ConfigError, UserError
from watcher.shared.net import LOOPBACK, free_port

# moto[server] is an optional extra: the runtime talks to AWS (or any EC2 endpoint) and never
# needs it; `make demo` and `make test` install it.
INSTALL_DEMO_EXTRA = "pip install 'watcher[demo]' (in a checkout: make demo)"


def moto_server_command() -> str:
    """moto's server executable, beside this Python's or on PATH. Without the demo extra it
    is missing, and the error says in one line how to install it."""
    binary = Path(sys.executable).parent / "moto_server"
    command = str(binary) if binary.exists() else shutil.which("moto_server")
    if command is None:
        raise UserError(f"moto's EC2 server is not installed: {INSTALL_DEMO_EXTRA}")
    return command


class MotoServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> MotoServer:
        command = moto_server_command()
        # Unknown AMIs fail as they do on AWS, so permanent errors can be shown.
        env = {**os.environ, "MOTO_ENABLE_AMI_VALIDATION": "true"}
        self._process = subprocess.Popen(
            [command, "-H", LOOPBACK, "-p", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1)  # noqa: S310 - our own http URL
                return self
            except OSError:
                if self._process.poll() is not None:
                    raise ConfigError(f"moto's server exited at start (port {self.port})") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigError(
                        f"moto's server did not start within {timeout:.0f} s"
                    ) from None
                time.sleep(0.1)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=5)  # noqa: S310

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
