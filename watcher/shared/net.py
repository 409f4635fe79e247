"""Listening sockets: whether a server can listen on a port, and a free port to listen on.

The web API and the metrics endpoint ask `bind_problem` before they start, so a busy port
or a mistyped host ends in one line naming the cause; the dev tools and tests use the rest.
"""

from __future__ import annotations

import errno
import socket

LOOPBACK = "127.0.0.1"
# Host names that always mean this machine (as a URL's hostname gives them).
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    return bind_problem(port, host) is None


def bind_problem(port: int, host: str = LOOPBACK) -> str | None:
    """Why a server could not listen on host:port, in words, or None if it could. Each
    cause gets its own words: a mistyped host is not a busy port."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        return f"{host!r} is not a known host name or address"
    family, kind, protocol, _, address = found[0]
    with socket.socket(family, kind, protocol) as probe:
        # As a server would bind: connections of a stopped node lingering in TIME_WAIT
        # do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this machine"
            if exc.errno == errno.EACCES:
                return f"no permission to listen on port {port} of {host}"
            return f"cannot listen on {host}:{port}: {(exc.strerror or str(exc)).lower()}"
    return None


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now (the kernel's pick); racy by nature, fine for local
    child processes and tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
