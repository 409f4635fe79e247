"""Ethereum addresses as the product uses them: validated once, then checksummed."""

import re
from functools import lru_cache

from eth_hash.auto import keccak
from eth_typing import ChecksumAddress, HexAddress, HexStr

from watcher.domain.errors import InvalidInput


@lru_cache(maxsize=65_536)
def to_checksum_address(hex_address: str) -> ChecksumAddress:
    """EIP-55: upper-case each hex letter whose nibble in keccak(lower-case hex) is >= 8.
    (Done here rather than through eth_utils, whose import costs the CLI a fifth of a second.)"""
    # Cached: the follower checksums every payer of every payment, and payers repeat.
    body = hex_address.lower().removeprefix("0x")
    digest = keccak(body.encode("ascii")).hex()[: len(body)]
    mixed = "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(body, digest, strict=True))
    return ChecksumAddress(HexAddress(HexStr("0x" + mixed)))


# No private key is known for this address: tokens sent here are gone for good, which is
# what makes a transfer to it a proof of payment.
BURN_ADDRESS: ChecksumAddress = to_checksum_address("0x000000000000000000000000000000000000dEaD")

_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def parse_address(text: str, what: str = "address") -> ChecksumAddress:
    """Accept a 0x-prefixed 20-byte hex address. A mixed-case address must carry a valid
    EIP-55 checksum: a wrong one almost always means a typo, and tokens sent to a typo
    are lost."""
    raw = text.strip()
    if not _HEX_ADDRESS.fullmatch(raw):
        raise InvalidInput(f"{what} must be 0x followed by 40 hex digits, got {text!r}")
    body = raw[2:]
    checksummed = to_checksum_address(raw)
    if body != body.lower() and body != body.upper() and raw != checksummed:
        raise InvalidInput(f"{what} {text!r} has a bad EIP-55 checksum (a typo?)")
    return checksummed
