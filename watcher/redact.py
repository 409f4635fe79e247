"""Credentials out of every URL a person or a log sees.

RPC providers put the API key in the URL itself (Infura `/v3/<key>`, Alchemy `/v2/<key>`,
QuickNode and Ankr tokens in the path, `?apikey=` in the query), databases and brokers put
`user:password@` in it. `mask_url` keeps what an operator needs to tell endpoints apart
(scheme, host, port, the path's shape) and replaces everything that could be a credential
with `***`; `redact` does the same to every URL inside a free text, such as the message of
an exception a library raised with the URL in it.

Masking is by shape, not by provider list: a provider we have never heard of still gets
its key masked when it looks like a key (a long token of letters and digits).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["MASK", "mask_url", "redact"]

MASK = "***"

# A path segment or query value that looks like a key: a token of letters, digits, `-` and
# `_` with letters and digits both in it and at least 16 long, or any such token of 32 or
# more. Infura keys are 32 hex digits, Alchemy's 32 base62 characters, QuickNode's 40 hex,
# Ankr's 64 hex, GetBlock and Blast use UUIDs (36). Path words (`v3`, `rpc`, `mainnet`,
# `ext/bc/C/rpc`) are short or have no digit, and stay readable.
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
    """`url` with its user, password, key-like path segments and key-like query values
    replaced by `***`. Text that does not parse as a URL is masked whole but for its scheme,
    since nothing can then tell where a credential in it starts."""
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
    path = parts.path
    if not _names_a_database(parts.scheme):
        path = "/".join(MASK if _looks_like_key(part) else part for part in path.split("/"))
    query = "&".join(_mask_parameter(piece) for piece in parts.query.split("&"))
    fragment = MASK if _looks_like_key(parts.fragment) else parts.fragment
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


def _mask_parameter(piece: str) -> str:
    """One `name=value` of a query string, its value masked when it may be a credential."""
    name, equals, value = piece.partition("=")
    if value and (_keyish_name(unquote(name)) or _looks_like_key(unquote(value))):
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
    if not _names_a_database(parts.scheme):
        found.extend(segment for segment in parts.path.split("/") if _looks_like_key(segment))
    for piece in parts.query.split("&"):
        name, _, value = piece.partition("=")
        if value and (_keyish_name(unquote(name)) or _looks_like_key(unquote(value))):
            found.extend((value, unquote(value)))
    # A one-letter user name would mask every such letter in the text: only pieces long
    # enough to be recognisable are replaced outside their URL.
    return sorted((s for s in set(found) if len(s) >= 4), key=len, reverse=True)
