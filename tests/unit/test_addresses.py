import pytest
from eth_hash.auto import keccak

from watcher.domain.addresses import BURN_ADDRESS, parse_address, to_checksum_address
from watcher.domain.errors import InvalidInput

CHECKSUMMED = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_burn_address_is_the_checksummed_dead_address() -> None:
    assert BURN_ADDRESS == "0x000000000000000000000000000000000000dEaD"


@pytest.mark.parametrize("text", [CHECKSUMMED, CHECKSUMMED.lower(), "0x" + CHECKSUMMED[2:].upper()])
def test_accepts_checksummed_or_single_case(text: str) -> None:
    assert parse_address(text) == CHECKSUMMED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0x123", "40 hex digits"),
        ("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "40 hex digits"),
        ("0xg39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "40 hex digits"),
        ("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb922660", "40 hex digits"),
        ("0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "checksum"),
        ("alice.eth", "40 hex digits"),
        ("", "40 hex digits"),
    ],
)
def test_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_address(text)


@pytest.mark.parametrize("seed", range(50))
def test_checksum_agrees_with_eth_utils(seed: int) -> None:
    from eth_utils.address import to_checksum_address as reference

    raw = "0x" + keccak(seed.to_bytes(4, "big")).hex()[:40]
    assert to_checksum_address(raw) == reference(raw)
