"""An instance's SSH host key fingerprints, as cloud-init prints them to the console.

A buyer who logs in for the first time is asked by ssh to trust the host's key. Checking
the fingerprint against one the cloud shows out of band is what defeats a man in the
middle. cloud-init (on Amazon Linux, Ubuntu, Debian images) writes them to the serial
console between these lines, which EC2's GetConsoleOutput returns a few minutes after boot:

    -----BEGIN SSH HOST KEY FINGERPRINTS-----
    256 SHA256:Yj2...k0 root@ip-10-0-0-5 (ECDSA)
    256 SHA256:9fT...aQ root@ip-10-0-0-5 (ED25519)
    -----END SSH HOST KEY FINGERPRINTS-----

Amazon Linux prefixes each console line with "ec2: " (and writes "no comment" for the
comment); other images prefix the kernel's time or the program's name. Only what sits
between the markers counts, and a line without the shape is left out (the console also
carries whatever the instance prints: nothing there is taken beyond its shape).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

BEGIN = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
END = "-----END SSH HOST KEY FINGERPRINTS-----"
_LINE = re.compile(
    r"(?:^|\s)(?P<bits>\d{3,5}) (?P<fingerprint>SHA256:[A-Za-z0-9+/]{43}=?)"
    r"(?: .*)? \((?P<type>ED25519|ECDSA|RSA|DSA)\)$"
)


@dataclass(frozen=True, slots=True)
class HostKey:
    type: str  # ED25519, ECDSA, RSA
    fingerprint: str  # SHA256:<base64>, as `ssh` shows it
    bits: int


def parse_console(text: str) -> tuple[HostKey, ...]:
    """The fingerprints of the last complete block in the console text; none if there is
    no complete block (not printed yet, or cut off)."""
    found: tuple[HostKey, ...] = ()
    block: list[HostKey] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith(BEGIN):
            block = []
        elif line.endswith(END):
            if block:
                found = tuple(block)
            block = None
        elif block is not None:
            match = _LINE.search(line)
            if match:
                block.append(HostKey(match["type"], match["fingerprint"], int(match["bits"])))
    return found


def to_json(keys: tuple[HostKey, ...]) -> str:
    return json.dumps([asdict(key) for key in keys])


def from_json(text: str) -> tuple[HostKey, ...]:
    return tuple(HostKey(k["type"], k["fingerprint"], int(k["bits"])) for k in json.loads(text))
