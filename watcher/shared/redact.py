"""Credentials out of every URL a person or a log sees.

RPC providers put the API key in the URL itself (Infura `/v3/<key>`, Alchemy `/v2/<key>`,
QuickNode and Ankr tokens in the path, `?apikey=` in the query), databases and brokers put
`user:password@` in it. `mask_url` keeps what an operator needs to tell endpoints apart
(scheme, host, port, the path's shape) and replaces everything that could be a credential
with `***`; `redact` does the same to every URL inside a free text, such as the message of
an exception a library raised with the URL in it.

Masking is by allow-list, not by the shape of keys: a key can have any shape (a JWT, base64
ending in `==`, 28 letters and no digit, `s3cr3tK3y`), while the words that structure an
endpoint's path are few and plain (`v3`, `rpc`, `ws`, `mainnet`, `ext/bc/C/rpc`). So in a
URL that is not a database's, every query value and every path segment that is not such a
word is masked. A database URL's path (a file, a database name) stays readable: it is
never a credential, and it tells which ledger is meant.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["MASK", "mask_url", "redact"]

MASK = "***"

# Structural words of RPC endpoints' paths: API versions, transports, networks, and the
# Avalanche `ext/bc/C/rpc` (one-letter chain names).
_STRUCTURAL_WORDS = frozenset(
    {
        "api",
        "rpc",
        "jsonrpc",
        "json-rpc",
        "ws",
        "wss",
        "http",
        "https",
        "ext",
        "bc",
        "mainnet",
        "testnet",
        "sepolia",
        "holesky",
        "hoodi",
        "goerli",
    }
)
_STRUCTURAL = re.compile(
    r"v\d{1,2}"  # v1, v2, v3
    r"|\d{1,4}"  # a chain id or port-like number, not a key
    r"|[A-Za-z]"  # a one-letter chain name (C, P, X)
    # A short lowercase word (`eth`, `polygon-zkevm`, `demo`): a key that short and that
    # plain is no key. Mixed case, digits, `_`, `=`, `.` or length make it one.
    r"|[a-z][a-z-]{0,11}"
)
# A query value or path segment that looks like a key (used where values stay shown: in a
# database URL's query, and to find a known URL's secrets in free text).
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_KEYISH_NAMES = (
    "key",
    "token",
    "secret",
    "pass",
    "pwd",
    "auth",
    "sig",
    "credential",
    "session",
    "code",
)
# A URL inside free text: a scheme, `://`, then anything up to white space or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _structural(segment: str) -> bool:
    """A path segment that shapes the endpoint and cannot be a credential (or is already
    masked, or empty)."""
    return (
        not segment
        or segment == MASK
        or segment.lower() in _STRUCTURAL_WORDS
        or _STRUCTURAL.fullmatch(segment) is not None
    )


def _looks_like_key(text: str) -> bool:
    if not _TOKEN.fullmatch(text):
        return False
    if len(text) >= 32:
        return True
    has_digit = any(c.isdigit() for c in text)
    has_letter = any(c.isalpha() for c in text)
    return len(text) >= 16 and has_digit and has_letter


def _names_a_database(scheme: str) -> bool:
    # A database URL's path is a file or a database name, never a credential; masking a
    # long one (`watcher_ledger_2024`) would only hide which ledger is meant.
    return scheme.lower().startswith(("sqlite", "postgres", "file"))


def _keyish_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _KEYISH_NAMES)


def mask_url(url: str) -> str:
    """`url` with its user and password replaced by `***`, and, unless it names a database,
    every query value and every path segment but the structural words (in a database URL,
    the query values that may be credentials). Text that does not parse as a URL is masked
    whole but for its scheme, since nothing can then tell where a credential in it starts."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port lazily; a bad one means no URL
    except ValueError:
        scheme = url.partition("://")[0] if "://" in url else ""
        return f"{scheme}://{MASK}" if scheme.isascii() and scheme.isalnum() else MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        masked_user = f"{MASK}:{MASK}" if ":" in userinfo else MASK
        netloc = f"{masked_user}@{hostport}"
    path, fragment = parts.path, parts.fragment
    database = _names_a_database(parts.scheme)
    if not database:
        path = "/".join(part if _structural(part) else MASK for part in path.split("/"))
        fragment = fragment if _structural(fragment) else MASK
    query = "&".join(_mask_parameter(piece, database) for piece in parts.query.split("&"))
    # Put together by hand: urlunsplit turns `sqlite:////abs/path` into `sqlite://abs/path`.
    rebuilt = f"{parts.scheme}:" if parts.scheme else ""
    if url[len(rebuilt) :].startswith("//"):
        rebuilt += "//" + netloc
    rebuilt += path
    if parts.query:
        rebuilt += "?" + query
    if parts.fragment:
        rebuilt += "#" + fragment
    return rebuilt


def _mask_parameter(piece: str, database: bool) -> str:
    """One `name=value` of a query string, its value masked (in a database URL, only when
    it may be a credential: `sslmode=require` says which connection is meant)."""
    name, equals, value = piece.partition("=")
    if not value:
        return piece
    if not database or _keyish_name(unquote(name)) or _looks_like_key(unquote(value)):
        return f"{name}{equals}{MASK}"
    return piece


def redact(text: str, *known: str | None) -> str:
    """`text` with every URL in it masked, and every credential of the `known` URLs (a
    configured RPC URL, say) masked wherever it appears, with or without its URL: a
    library's error message may quote a host and path without the scheme."""
    for url in known:
        if not url or "://" not in url:  # not a URL (an address, a number): nothing to hide
            continue
        text = text.replace(url, mask_url(url))
        for secret in _secrets_of(url):
            text = text.replace(secret, MASK)
    return _URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)


def _secrets_of(url: str) -> list[str]:
    """The pieces of `url` that mask_url hides, longest first (so none is half-replaced)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        found.extend(piece for piece in userinfo.split(":", 1) if piece)
    database = _names_a_database(parts.scheme)
    if not database:
        found.extend(segment for segment in parts.path.split("/") if not _structural(segment))
    for piece in parts.query.split("&"):
        name, _, value = piece.partition("=")
        plain = unquote(value)
        keyish = _looks_like_key(plain) if database else not _structural(plain)
        if value and (_keyish_name(unquote(name)) or keyish):
            found.extend((value, plain))
    # A one-letter user name would mask every such letter in the text: only pieces long
    # enough to be recognisable are replaced outside their URL. Likewise a plain value not
    # named as a credential (`chain=mainnet`, `tag=latest`) is masked in its URL only.
    return sorted((s for s in set(found) if len(s) >= 4), key=len, reverse=True)
