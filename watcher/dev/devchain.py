"""A local Hardhat 2 node (chain id 1337), run as a child process on 127.0.0.1.

Used by `watcher devchain` (foreground), `watcher demo` and the test suite. Hardhat serves
HTTP and WebSocket JSON-RPC on the same port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

from watcher.adapters.chain.dev_accounts import DEV_ACCOUNT_COUNT, DEV_CHAIN_ID, dev_account
from watcher.domain.errors import ChainError, ConfigError
from watcher.shared.net import LOOPBACK, bind_problem

# The checkout this package was installed from in editable mode (watcher/dev/ is two below).
_SOURCE_TREE = Path(__file__).resolve().parents[2]


def hardhat_project(configured: Path | None = None) -> Path:
    """The folder with hardhat.config.js and an installed Hardhat in node_modules."""
    candidates = [configured] if configured is not None else [Path.cwd(), _SOURCE_TREE]
    for folder in candidates:
        if (folder / "hardhat.config.js").is_file() and _hardhat_bin(folder).is_file():
            return folder.resolve()
    where = f"in {configured}" if configured is not None else "here or in the watcher checkout"
    raise ConfigError(
        f"no Hardhat installation found {where}: run 'npm ci' in the watcher checkout "
        "(make demo does it) or set WATCHER_HARDHAT_DIR"
    )


def _hardhat_bin(folder: Path) -> Path:
    return folder / "node_modules" / "hardhat" / "internal" / "cli" / "bootstrap.js"


class DevChain:
    """One Hardhat node process. Use as a context manager; it stops the node on exit."""

    def __init__(self, port: int, project: Path, log: IO[bytes] | int = subprocess.DEVNULL) -> None:
        self.port = port
        self.project = project
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        node = shutil.which("node")
        if node is None:
            raise ConfigError("Node.js is needed for the dev chain and was not found on PATH")
        return [
            node,
            str(_hardhat_bin(self.project)),
            "--config",
            str(self.project / "hardhat.config.js"),
            "node",
            "--hostname",
            LOOPBACK,
            "--port",
            str(self.port),
        ]

    def spawn(self, stdout: IO[bytes] | int) -> subprocess.Popen[bytes]:
        problem = bind_problem(self.port)
        if problem is not None:
            raise ConfigError(f"{problem}; pick another with --port")
        env = dict(os.environ, HARDHAT_DISABLE_TELEMETRY_PROMPT="true")
        # Its own session, so stopping it also stops anything it spawned and a Ctrl-C in
        # our terminal reaches us first, to shut it down in order.
        self._process = subprocess.Popen(
            self.command(),
            cwd=self.project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
        return self._process

    def start(self, ready_timeout: float = 60.0) -> DevChain:
        self.spawn(self._log)
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise ChainError(f"the dev chain exited before it was ready (exit code {code})")
            if rpc_chain_id(self.url, timeout=1.0) == DEV_CHAIN_ID:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ChainError(f"the dev chain did not start within {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> DevChain:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _stop_with_parent() -> None:
    """Runs in the child before exec: if the watcher dies, even by SIGKILL, Linux sends the
    node SIGTERM, so no dev chain is left behind holding its port."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def rpc_chain_id(url: str, timeout: float) -> int | None:
    """The chain id a node reports, or None if it does not answer (yet)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    # Only ever our own http://127.0.0.1 URL.
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(json.load(response)["result"], 16)
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return None


def run_foreground(chain: DevChain) -> int:
    """Run the node until SIGINT or SIGTERM, echoing its log without the dev private keys."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Set both explicitly: a process started in the background by a shell inherits an
    # ignored SIGINT, and the node must still be stopped when we are asked to stop.
    previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        process = chain.spawn(subprocess.PIPE)
        chain.wait_ready(60.0)
        print(f"dev chain {DEV_CHAIN_ID} at {chain.url} (WebSocket {chain.ws_url})", flush=True)
        print("dev accounts (publicly known keys, never use them on a real network):", flush=True)
        for index in range(DEV_ACCOUNT_COUNT):
            print(f"  --dev-account {index:<2}  {dev_account(index).address}", flush=True)
        assert process.stdout is not None
        blank = True
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            # Hardhat's banner lists each dev account with its private key; the addresses
            # are printed above and a key is never printed.
            if line.startswith(("Account #", "Private Key")) or (blank and not line):
                continue
            blank = not line
            print(line, flush=True)
        return process.wait()
    except KeyboardInterrupt:
        print("stopping the dev chain", file=sys.stderr, flush=True)
        return 0
    finally:
        chain.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
