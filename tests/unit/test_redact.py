"""Credentials never leave a URL that is shown: a table of real providers' URL shapes, and
keys of shapes no rule could foresee."""

from __future__ import annotations

import pytest

from watcher.shared.redact import MASK, mask_url, redact

INFURA_KEY = "9aa3d95b3bc440fa88ea12eaa4456161"
ALCHEMY_KEY = "Xr3kXn0m_pQ7aZ-T2vLs9dGh4Jk8Wb1c"
QUICKNODE_TOKEN = "0b8e4c2f7a1d9e3b5c6f8a0d2e4b6c8a1f3d5e7b"
UUID_KEY = "3f2b1c9e-7d4a-4b8e-9c1f-2a6d8e0b4c7f"
# Shapes a key-by-shape rule missed: dots, `=` padding, no digits at all.
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ3YXRjaGVyIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
BASE64_KEY = "c2VjcmV0LWtleS1mb3ItcnBj=="
LETTERS_KEY = "qwertyuiopasdfghjklzxcvbnmqw"  # 28 letters


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # user and password in the userinfo, whatever the scheme
        ("https://bob:hunter2@rpc.example.com/", f"https://{MASK}:{MASK}@rpc.example.com/"),
        ("http://bob@127.0.0.1:8545", f"http://{MASK}@127.0.0.1:8545"),
        ("wss://bob:hunter2@node.example:8546/ws", f"wss://{MASK}:{MASK}@node.example:8546/ws"),
        (
            "postgresql+asyncpg://watcher:pg-pass@db:5432/watcher_ledger_2024",
            f"postgresql+asyncpg://{MASK}:{MASK}@db:5432/watcher_ledger_2024",
        ),
        ("mqtts://user:p%40ss@broker:8883", f"mqtts://{MASK}:{MASK}@broker:8883"),
        ("http://u:p@moto:5000", f"http://{MASK}:{MASK}@moto:5000"),
        # API keys in the path
        (
            f"https://mainnet.infura.io/v3/{INFURA_KEY}",
            f"https://mainnet.infura.io/v3/{MASK}",
        ),
        (
            f"wss://mainnet.infura.io/ws/v3/{INFURA_KEY}",
            f"wss://mainnet.infura.io/ws/v3/{MASK}",
        ),
        (
            f"https://eth-mainnet.g.alchemy.com/v2/{ALCHEMY_KEY}",
            f"https://eth-mainnet.g.alchemy.com/v2/{MASK}",
        ),
        (
            f"https://old-wispy-sun.quiknode.pro/{QUICKNODE_TOKEN}/",
            f"https://old-wispy-sun.quiknode.pro/{MASK}/",
        ),
        (
            f"https://eth.getblock.io/{UUID_KEY}/mainnet/",
            f"https://eth.getblock.io/{MASK}/mainnet/",
        ),
        # the query: every value, whatever its name or shape
        (
            "https://api.example.com/rpc?apikey=short&chain=1",
            f"https://api.example.com/rpc?apikey={MASK}&chain={MASK}",
        ),
        ("https://h/rpc?access_token=abc", f"https://h/rpc?access_token={MASK}"),
        ("https://h/rpc?X-Api-Key=abc", f"https://h/rpc?X-Api-Key={MASK}"),
        ("https://h/rpc?password=abc", f"https://h/rpc?password={MASK}"),
        (f"https://h/rpc?id={INFURA_KEY}", f"https://h/rpc?id={MASK}"),
        # everything at once
        (
            f"https://bob:hunter2@h.example:443/v3/{INFURA_KEY}?apikey=x&n=1#frag",
            f"https://{MASK}:{MASK}@h.example:443/v3/{MASK}?apikey={MASK}&n={MASK}#frag",
        ),
        # keys of any shape in the path: a JWT, base64 with padding, letters only, leet
        (f"https://rpc.example.com/v1/{JWT}", f"https://rpc.example.com/v1/{MASK}"),
        (f"https://rpc.example.com/{BASE64_KEY}/rpc", f"https://rpc.example.com/{MASK}/rpc"),
        (f"https://node.example/v2/{LETTERS_KEY}", f"https://node.example/v2/{MASK}"),
        ("https://node.example/key/s3cr3tK3y", f"https://node.example/key/{MASK}"),
        ("https://node.example/KeyInCaps", f"https://node.example/{MASK}"),
        ("https://node.example/12345678", f"https://node.example/{MASK}"),  # no chain id
        # ... and in the query, with or without a name that says so
        (f"https://rpc.example.com/?jwt={JWT}", f"https://rpc.example.com/?jwt={MASK}"),
        (f"https://h/rpc?x={BASE64_KEY}", f"https://h/rpc?x={MASK}"),
        (f"https://h/rpc?q={LETTERS_KEY}", f"https://h/rpc?q={MASK}"),
        (f"https://h/rpc#{JWT}", f"https://h/rpc#{MASK}"),
        # nothing secret: shown as given, so an operator can still tell endpoints apart
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("ws://[::1]:8545/", "ws://[::1]:8545/"),
        ("https://rpc.ankr.com/eth", "https://rpc.ankr.com/eth"),
        ("https://api.avax.network/ext/bc/C/rpc", "https://api.avax.network/ext/bc/C/rpc"),
        ("https://eth-mainnet.g.alchemy.com/v2/demo", "https://eth-mainnet.g.alchemy.com/v2/demo"),
        ("https://h/rpc?chain=mainnet&tag=latest", f"https://h/rpc?chain={MASK}&tag={MASK}"),
        ("https://h/rpc?flag&empty=", "https://h/rpc?flag&empty="),  # no value, nothing hidden
        ("https://h/v1/1/rpc", "https://h/v1/1/rpc"),
        ("https://rpc.example/polygon-amoy/", "https://rpc.example/polygon-amoy/"),
        ("sqlite+aiosqlite:///watcher.db", "sqlite+aiosqlite:///watcher.db"),
        (
            "sqlite+aiosqlite:////home/ops/.local/share/watcher/ledger.db?timeout=5",
            "sqlite+aiosqlite:////home/ops/.local/share/watcher/ledger.db?timeout=5",
        ),
        (
            "postgresql+asyncpg://db/ledger?sslmode=require&password=s3cret",
            f"postgresql+asyncpg://db/ledger?sslmode=require&password={MASK}",
        ),
        (
            "sqlite+aiosqlite:////var/lib/watcher/ledger_2024_0123456789.db",
            "sqlite+aiosqlite:////var/lib/watcher/ledger_2024_0123456789.db",
        ),
        ("mqtt://broker:1883", "mqtt://broker:1883"),
        # not a URL one can take apart: nothing of it but the scheme is shown
        ("http://bob:hunter2@h:99999/", f"http://{MASK}"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    # Masking what is already masked changes nothing (messages may be masked twice).
    assert mask_url(shown) == shown


def test_redact_masks_every_url_in_a_text() -> None:
    text = (
        f"Cannot connect to https://bob:hunter2@mainnet.infura.io/v3/{INFURA_KEY} "
        "and 'mqtt://u:pw@broker:1883' (then http://127.0.0.1:8545 answered)"
    )
    assert redact(text) == (
        f"Cannot connect to https://{MASK}:{MASK}@mainnet.infura.io/v3/{MASK} "
        f"and 'mqtt://{MASK}:{MASK}@broker:1883' (then http://127.0.0.1:8545 answered)"
    )


def test_redact_masks_a_known_urls_secrets_even_without_their_url() -> None:
    url = f"https://robert:hunter2@mainnet.infura.io/v3/{INFURA_KEY}?apikey=topsecret"
    # As a library may word it: host and path, no scheme.
    text = f"POST mainnet.infura.io/v3/{INFURA_KEY} as robert (hunter2) with topsecret failed"
    shown = redact(text, url)
    for secret in (INFURA_KEY, "hunter2", "topsecret", "robert"):
        assert secret not in shown
    assert shown.startswith("POST mainnet.infura.io/v3/***")
    # Pieces too short to recognise outside their URL are masked only inside it: masking
    # every "al" of a text for a user named al would garble it.
    assert redact("al said: https://al:x@h/ failed", "https://al:x@h/") == (
        f"al said: https://{MASK}:{MASK}@h/ failed"
    )


def test_redact_leaves_non_url_values_alone() -> None:
    address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    message = f"{address} is not a checksummed address"
    assert redact(message, address) == message


def test_redact_masks_keys_of_any_shape_in_known_urls_but_not_plain_words() -> None:
    url = f"https://node.example/v1/{JWT}?chain=mainnet&q={LETTERS_KEY}"
    text = f"POST node.example/v1/{JWT} failed: {LETTERS_KEY} rejected on mainnet"
    shown = redact(text, url)
    assert JWT not in shown and LETTERS_KEY not in shown
    # `chain=mainnet` is masked in its URL, but the word stays readable in the sentence.
    assert shown == f"POST node.example/v1/{MASK} failed: {MASK} rejected on mainnet"
