"""Sign-In with Ethereum (EIP-4361): the message a wallet signs with `personal_sign`, parsed
strictly, and the relying party's checks on it.

Written here rather than taken from the `siwe` package, which pins web3<8 (the watcher
runs on web3 8): parsing is the EIP's ABNF line by line, and the signature is recovered
with eth-account (EIP-191), which web3 already brings. Only externally owned accounts sign
in (EIP-1271 contract wallets would need a chain call per sign-in; not supported yet).

The nonce is the relying party's: the caller checks that it issued it, that it has not
expired and that it is used once (adapters/ledger/signin.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from watcher.domain.addresses import to_checksum_address

HEADER = " wants you to sign in with your Ethereum account:"
# Longer than any message a page of ours asks to sign, short enough to parse at once.
MAX_MESSAGE = 4096

_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*"
# RFC 3986 authority: [userinfo "@"] host [":" port], host a name, IPv4 or [IPv6].
_AUTHORITY = re.compile(
    r"(?:[A-Za-z0-9._~!$&'()*+,;=:%-]*@)?(?:[A-Za-z0-9._~%-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)
_DOMAIN_LINE = re.compile(rf"(?:({_SCHEME})://)?(.+?){re.escape(HEADER)}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# reserved / unreserved / " " (RFC 3986): printable ASCII but a few, never a line break.
_STATEMENT = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= %]*")
_URI = re.compile(rf"{_SCHEME}:[^\s]+")
_NONCE = re.compile(r"[A-Za-z0-9]{8,}")
_CHAIN_ID = re.compile(r"[0-9]{1,20}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%]*")
# RFC 3339 date-time, with a zone (Z or an offset).
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


class SignInRefused(ValueError):
    """The message or its signature does not hold; the text says which part, in words a
    user can act on (never the signature itself)."""


@dataclass(frozen=True)
class SignInMessage:
    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    statement: str | None = None
    version: str = "1"
    scheme: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default_factory=tuple)

    def text(self) -> str:
        """The message as the wallet shows and signs it (the EIP's format exactly)."""
        prefix = f"{self.scheme}://" if self.scheme else ""
        lines = [f"{prefix}{self.domain}{HEADER}", self.address, ""]
        if self.statement is not None:
            lines += [self.statement, ""]
        else:
            lines += [""]
        lines += [
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {_format_time(self.issued_at)}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {_format_time(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {_format_time(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {resource}" for resource in self.resources]
        return "\n".join(lines)


def parse(text: str) -> SignInMessage:
    """The message's terms, checked against the EIP's ABNF; SignInRefused names the first
    line that does not conform."""
    if len(text) > MAX_MESSAGE:
        raise SignInRefused(f"the sign-in message is longer than {MAX_MESSAGE} characters")
    lines = text.split("\n")
    if len(lines) < 9:
        raise SignInRefused("not a Sign-In with Ethereum message (too few lines)")
    head = _DOMAIN_LINE.fullmatch(lines[0])
    if head is None or not _AUTHORITY.fullmatch(head.group(2)):
        raise SignInRefused(f"the first line must be '<domain>{HEADER}'")
    scheme, domain = head.group(1), head.group(2)
    address = lines[1]
    if not _ADDRESS.fullmatch(address):
        raise SignInRefused("the second line must be the signing address (0x and 40 hex digits)")
    if to_checksum_address(address) != address:
        raise SignInRefused("the address must be written with its EIP-55 checksum")
    if lines[2] != "":
        raise SignInRefused("an empty line must follow the address")
    statement: str | None = None
    at = 3
    if lines[3] != "":
        statement = lines[3]
        if not _STATEMENT.fullmatch(statement):
            raise SignInRefused("the statement holds characters the EIP does not allow")
        at = 4
    if lines[at] != "":
        raise SignInRefused("an empty line must come before 'URI:'")
    at += 1

    def take(name: str, pattern: re.Pattern[str]) -> str:
        nonlocal at
        if at >= len(lines) or not lines[at].startswith(f"{name}: "):
            raise SignInRefused(f"expected '{name}: ' on line {at + 1}")
        value = lines[at][len(name) + 2 :]
        if not pattern.fullmatch(value):
            raise SignInRefused(f"'{name}' is not valid: {value[:80]!r}")
        at += 1
        return value

    uri = take("URI", _URI)
    version = take("Version", re.compile("1"))
    chain_id = int(take("Chain ID", _CHAIN_ID))
    nonce = take("Nonce", _NONCE)
    issued_at = _parse_time(take("Issued At", _DATE_TIME))
    optional: dict[str, str] = {}
    for name, pattern in (
        ("Expiration Time", _DATE_TIME),
        ("Not Before", _DATE_TIME),
        ("Request ID", _REQUEST_ID),
    ):
        if at < len(lines) and lines[at].startswith(f"{name}: "):
            optional[name] = take(name, pattern)
    resources: list[str] = []
    if at < len(lines) and lines[at] == "Resources:":
        at += 1
        while at < len(lines) and lines[at].startswith("- "):
            resource = lines[at][2:]
            if not _URI.fullmatch(resource):
                raise SignInRefused(f"resource on line {at + 1} is not a URI")
            resources.append(resource)
            at += 1
    if at != len(lines):
        raise SignInRefused(f"unexpected text on line {at + 1}")
    expiration = optional.get("Expiration Time")
    not_before = optional.get("Not Before")
    return SignInMessage(
        domain=domain,
        address=address,
        uri=uri,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        statement=statement,
        version=version,
        scheme=scheme,
        expiration_time=_parse_time(expiration) if expiration else None,
        not_before=_parse_time(not_before) if not_before else None,
        request_id=optional.get("Request ID"),
        resources=tuple(resources),
    )


@dataclass(frozen=True)
class Expected:
    """What this relying party requires of a message: where the page that asked for it
    lives, on which chain, and how fresh it must be."""

    domain: str  # host[:port] of the page, as the browser shows it
    origin: str  # scheme://host[:port]: the message's URI must be on it
    chain_id: int
    # How far a wallet's clock may run ahead of ours, and how old a message may be.
    clock_skew: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(minutes=10)


def verify(text: str, signature: str, expected: Expected, now: datetime) -> SignInMessage:
    """The message, once its terms match `expected` at `now` and `signature` recovers to
    its address (EIP-191 personal_sign). The nonce is left to the caller."""
    message = parse(text)
    if message.domain != expected.domain:
        raise SignInRefused(
            f"the message is for {message.domain!r}, not {expected.domain!r}: "
            "sign in from this site's own page"
        )
    if _origin(message.uri) != expected.origin:
        raise SignInRefused(f"the message's URI is not on {expected.origin}")
    if message.chain_id != expected.chain_id:
        raise SignInRefused(
            f"the message is for chain {message.chain_id}; this watcher follows chain "
            f"{expected.chain_id} (switch the wallet's network)"
        )
    if message.issued_at > now + expected.clock_skew:
        raise SignInRefused("the message was issued in the future (check the device's clock)")
    if message.issued_at < now - expected.max_age:
        raise SignInRefused("the message is too old: sign in again")
    if message.expiration_time is not None and now >= message.expiration_time:
        raise SignInRefused("the message has expired: sign in again")
    if message.not_before is not None and now < message.not_before:
        raise SignInRefused("the message is not valid yet")
    if signer(text, signature) != message.address:
        raise SignInRefused("the signature is not the address's own signature of this message")
    return message


def signer(text: str, signature: str) -> str:
    """The address whose key made `signature` over `text` (EIP-191 personal_sign)."""
    if not re.fullmatch(r"0x[0-9a-fA-F]{130}", signature):
        raise SignInRefused("the signature must be 0x and 130 hex digits")
    # Imported here: eth-account takes half a second to load, which every CLI command
    # importing the domain would otherwise pay.
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        recovered = Account.recover_message(encode_defunct(text=text), signature=signature)
    except Exception:  # eth-account raises several types for a signature off the curve
        raise SignInRefused("the signature is not valid") from None
    return to_checksum_address(recovered)


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise SignInRefused(f"not a date-time: {text!r}") from None


def _format_time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
