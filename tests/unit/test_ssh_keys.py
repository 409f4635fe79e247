"""The buyer's SSH public key (issue 10): the kinds a cloud instance can take are accepted
with OpenSSH's fingerprint; anything else is refused with what to paste instead."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from watcher.domain.errors import InvalidInput
from watcher.domain.ssh_keys import parse_ssh_public_key


def openssh(private: object) -> str:
    return (
        private.public_key()  # type: ignore[attr-defined]
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


@pytest.mark.parametrize(
    ("private", "key_type", "bits"),
    [
        (ed25519.Ed25519PrivateKey.generate(), "ssh-ed25519", 256),
        (ec.generate_private_key(ec.SECP256R1()), "ecdsa-sha2-nistp256", 256),
        (ec.generate_private_key(ec.SECP384R1()), "ecdsa-sha2-nistp384", 384),
        (rsa.generate_private_key(65537, 2048), "ssh-rsa", 2048),
    ],
)
def test_accepted_keys_keep_their_line_and_get_openssh_fingerprints(
    private: object, key_type: str, bits: int
) -> None:
    line = openssh(private) + " alice@laptop"
    key = parse_ssh_public_key(f"  {line}\n")
    assert (key.key_type, key.bits, key.comment) == (key_type, bits, "alice@laptop")
    assert key.line() == line
    blob = base64.b64decode(line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert key.fingerprint == f"SHA256:{digest}"


def test_the_fingerprint_is_the_one_ssh_keygen_prints(tmp_path: Path) -> None:
    line = openssh(ed25519.Ed25519PrivateKey.generate()) + " bob"
    (tmp_path / "key.pub").write_text(line + "\n")
    try:
        printed = subprocess.run(
            ["ssh-keygen", "-lf", str(tmp_path / "key.pub")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except FileNotFoundError:
        pytest.skip("ssh-keygen is not installed here")
    assert parse_ssh_public_key(line).fingerprint == printed.split()[1]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no SSH public key given"),
        (
            ed25519.Ed25519PrivateKey.generate()
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            .decode(),
            "that is a private key",
        ),
        (openssh(rsa.generate_private_key(65537, 1024)), "RSA key of 1024 bits is too weak"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "'ssh-dss' keys are not accepted"),
        ("ssh-ed25519 not*base64", "not valid base64"),
        ("ssh-ed25519", "not an SSH public key"),
        (
            "ssh-rsa " + openssh(ed25519.Ed25519PrivateKey.generate()).split()[1],
            "not a ssh-rsa key",
        ),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==", "not a valid ssh-ed25519 public key"),
        (openssh(ed25519.Ed25519PrivateKey.generate()) + "\nssh-ed25519 AAAA", "one line"),
    ],
)
def test_anything_else_is_refused_with_what_to_paste(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_ssh_public_key(text)
