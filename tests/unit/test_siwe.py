"""Sign-In with Ethereum (EIP-4361): the EIP's own example, messages signed with a dev
account's key, and every way a message can be refused (issue 10)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from eth_account.messages import encode_defunct

from watcher.adapters.chain.dev_accounts import dev_account
from watcher.domain.siwe import Expected, SignInMessage, SignInRefused, parse, signer, verify

# The EIP's example message, as the EIP prints it.
EIP_EXAMPLE = """service.org wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ServiceOrg Terms of Service: https://service.org/tos

URI: https://service.org/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json"""

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
EXPECTED = Expected(domain="127.0.0.1:8080", origin="http://127.0.0.1:8080", chain_id=1337)
ALICE = dev_account(1)
MALLORY = dev_account(2)


def message(**changes: object) -> SignInMessage:
    base = SignInMessage(
        domain="127.0.0.1:8080",
        address=ALICE.address,
        statement="Sign in to watcher to see and manage your orders.",
        uri="http://127.0.0.1:8080/",
        chain_id=1337,
        nonce="k3J9x0aQ2mZt",
        issued_at=NOW - timedelta(seconds=30),
        expiration_time=NOW + timedelta(minutes=10),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def sign(text: str, account: object = ALICE) -> str:
    signed = account.sign_message(encode_defunct(text=text))  # type: ignore[attr-defined]
    return "0x" + bytes(signed.signature).hex().removeprefix("0x")


def test_the_eips_example_parses_term_by_term_and_prints_back_the_same() -> None:
    parsed = parse(EIP_EXAMPLE)
    assert (parsed.domain, parsed.address, parsed.uri) == (
        "service.org",
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "https://service.org/login",
    )
    assert parsed.statement == "I accept the ServiceOrg Terms of Service: https://service.org/tos"
    assert (parsed.version, parsed.chain_id, parsed.nonce) == ("1", 1, "32891756")
    assert parsed.issued_at == datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)
    assert parsed.resources == (
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "https://example.com/my-web2-claim.json",
    )
    assert parsed.text() == EIP_EXAMPLE


def test_without_a_statement_and_with_a_scheme_and_every_optional_term() -> None:
    full = message(
        statement=None,
        scheme="http",
        not_before=NOW - timedelta(minutes=1),
        request_id="req-42",
        resources=("https://example.com/terms",),
    )
    text = full.text()
    assert "\n\n\nURI: " in text  # the address, an empty line, no statement, an empty line
    assert text.startswith("http://127.0.0.1:8080 wants you")
    assert parse(text) == full


def test_a_message_signed_by_its_address_signs_in() -> None:
    text = message().text()
    signed_in = verify(text, sign(text), EXPECTED, NOW)
    assert signed_in.address == ALICE.address and signed_in.nonce == "k3J9x0aQ2mZt"
    assert signer(text, sign(text, MALLORY)) == MALLORY.address


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"domain": "evil.example"}, "is for 'evil.example', not '127.0.0.1:8080'"),
        ({"uri": "https://evil.example/"}, "URI is not on http://127.0.0.1:8080"),
        ({"chain_id": 1}, "is for chain 1; this watcher follows chain 1337"),
        ({"expiration_time": NOW - timedelta(seconds=1)}, "has expired"),
        ({"issued_at": NOW - timedelta(hours=1), "expiration_time": None}, "too old"),
        ({"issued_at": NOW + timedelta(hours=1)}, "issued in the future"),
        ({"not_before": NOW + timedelta(minutes=1)}, "not valid yet"),
    ],
)
def test_a_message_for_another_site_chain_or_time_is_refused(
    changes: dict[str, object], reason: str
) -> None:
    text = message(**changes).text()
    with pytest.raises(SignInRefused, match=reason):
        verify(text, sign(text), EXPECTED, NOW)


def test_a_tampered_message_or_another_signer_is_refused() -> None:
    text = message().text()
    signature = sign(text)
    tampered = text.replace("k3J9x0aQ2mZt", "k3J9x0aQ2mZu")
    with pytest.raises(SignInRefused, match="not the address's own signature"):
        verify(tampered, signature, EXPECTED, NOW)
    # Mallory signs a message that names Alice's address.
    with pytest.raises(SignInRefused, match="not the address's own signature"):
        verify(text, sign(text, MALLORY), EXPECTED, NOW)
    with pytest.raises(SignInRefused, match="130 hex digits"):
        verify(text, signature[:-2], EXPECTED, NOW)
    with pytest.raises(SignInRefused, match="not valid"):
        verify(text, "0x" + "00" * 65, EXPECTED, NOW)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda t: t.replace(ALICE.address, ALICE.address.lower()), "EIP-55 checksum"),
        (lambda t: t.replace("Nonce: k3J9x0aQ2mZt", "Nonce: short"), "'Nonce' is not valid"),
        (lambda t: t.replace("Version: 1", "Version: 2"), "'Version' is not valid"),
        (lambda t: t.replace("Chain ID: 1337", "Chain ID: 0x539"), "'Chain ID' is not valid"),
        (lambda t: t.replace(" wants you to sign in", " asks you to sign in"), "first line"),
        (lambda t: t + "\nextra", "unexpected text"),
        (lambda t: t.replace("\n\nURI:", "\nURI:"), "empty line"),
        (lambda t: "hello", "too few lines"),
        (lambda t: t + "\n" + "- x:y" * 1000, "longer than"),
    ],
)
def test_a_message_off_the_eips_format_is_refused_with_the_reason(edit, reason) -> None:  # type: ignore[no-untyped-def]
    text = edit(message().text())
    with pytest.raises(SignInRefused, match=reason):
        parse(text)
