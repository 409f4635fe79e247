"""The buyer's SSH public key: one OpenSSH line (`ssh-ed25519 AAAA... comment`), parsed and
checked before anything is paid for, so a key nobody can log in with is refused with a
message that says what to paste instead.

Accepted: ed25519, ECDSA (P-256, P-384, P-521) and RSA of 2048 bits or more. The key's
body is decoded by `cryptography` (which also checks that an ECDSA point is on its curve);
the fingerprint is OpenSSH's (`SHA256:` and the unpadded base64 of the body's SHA-256), the
one `ssh-keygen -lf key.pub` prints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from watcher.domain.errors import InvalidInput

MIN_RSA_BITS = 2048
_ACCEPTED = {
    "ssh-ed25519": "ed25519",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "ssh-rsa": "RSA",
}
_HINT = "give your public key, the one line of a .pub file such as ~/.ssh/id_ed25519.pub"


@dataclass(frozen=True)
class SshPublicKey:
    key_type: str
    body: str
    comment: str
    bits: int
    fingerprint: str

    def line(self) -> str:
        """The key as authorized_keys and the cloud take it (the comment kept)."""
        return f"{self.key_type} {self.body}" + (f" {self.comment}" if self.comment else "")


def parse_ssh_public_key(text: str) -> SshPublicKey:
    """The key in `text`, or InvalidInput saying in one line what is wrong with it."""
    stripped = text.strip()
    if not stripped:
        raise InvalidInput(f"no SSH public key given: {_HINT}")
    if "PRIVATE KEY" in stripped:
        raise InvalidInput("that is a private key: never share it; " + _HINT)
    if "\n" in stripped or "\r" in stripped:
        raise InvalidInput(f"one SSH public key on one line, please: {_HINT}")
    if len(stripped) > 16_384:
        raise InvalidInput("that is too long for an SSH public key")
    parts = stripped.split(maxsplit=2)
    if len(parts) < 2:
        raise InvalidInput(f"not an SSH public key: {_HINT}")
    key_type, body = parts[0], parts[1]
    comment = parts[2] if len(parts) == 3 else ""
    if key_type not in _ACCEPTED:
        raise InvalidInput(
            f"{key_type[:40]!r} keys are not accepted: use an ed25519, ECDSA or RSA "
            f"(>= {MIN_RSA_BITS} bits) key"
        )
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"the key's body is not valid base64: {_HINT}") from None
    # The body names its own type first: it must be the one the line says.
    if _first_string(blob) != key_type.encode():
        raise InvalidInput(f"the key's body is not a {key_type} key: {_HINT}")
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    try:
        key = load_ssh_public_key(f"{key_type} {body}".encode())
    except (ValueError, TypeError):
        raise InvalidInput(f"not a valid {key_type} public key: {_HINT}") from None
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < MIN_RSA_BITS:
            raise InvalidInput(
                f"an RSA key of {bits} bits is too weak: use {MIN_RSA_BITS} bits or more, "
                "or an ed25519 key (ssh-keygen -t ed25519)"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.curve.key_size
    else:  # ed25519, the one other type the body check lets through
        bits = 256
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return SshPublicKey(key_type, body, comment, bits, f"SHA256:{digest}")


def _first_string(blob: bytes) -> bytes | None:
    """The first SSH wire-format string (uint32 length, bytes) of `blob`."""
    if len(blob) < 4:
        return None
    length = int.from_bytes(blob[:4], "big")
    return blob[4 : 4 + length] if length <= len(blob) - 4 else None
