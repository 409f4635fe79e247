"""Credentials never leave a URL that is shown: a table of real providers' URL shapes."""

from __future__ import annotations

import pytest

from watcher.redact import MASK, mask_url, redact

INFURA_KEY = "9aa3d95b3bc440fa88ea12eaa4456161"
ALCHEMY_KEY = "Xr3kXn0m_pQ7aZ-T2vLs9dGh4Jk8Wb1c"
QUICKNODE_TOKEN = "0b8e4c2f7a1d9e3b5c6f8a0d2e4b6c8a1f3d5e7b"
UUID_KEY = "3f2b1c9e-7d4a-4b8e-9c1f-2a6d8e0b4c7f"


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
        # API keys in the query, by the parameter's name or by the value's shape
        (
            "https://api.example.com/rpc?apikey=short&chain=1",
            f"https://api.example.com/rpc?apikey={MASK}&chain=1",
        ),
        ("https://h/rpc?access_token=abc", f"https://h/rpc?access_token={MASK}"),
        ("https://h/rpc?X-Api-Key=abc", f"https://h/rpc?X-Api-Key={MASK}"),
        ("https://h/rpc?password=abc", f"https://h/rpc?password={MASK}"),
        (f"https://h/rpc?id={INFURA_KEY}", f"https://h/rpc?id={MASK}"),
        # everything at once
        (
            f"https://bob:hunter2@h.example:443/v3/{INFURA_KEY}?apikey=x&n=1#frag",
            f"https://{MASK}:{MASK}@h.example:443/v3/{MASK}?apikey={MASK}&n=1#frag",
        ),
        # nothing secret: shown as given, so an operator can still tell endpoints apart
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("ws://[::1]:8545/", "ws://[::1]:8545/"),
        ("https://rpc.ankr.com/eth", "https://rpc.ankr.com/eth"),
        ("https://api.avax.network/ext/bc/C/rpc", "https://api.avax.network/ext/bc/C/rpc"),
        ("https://eth-mainnet.g.alchemy.com/v2/demo", "https://eth-mainnet.g.alchemy.com/v2/demo"),
        ("https://h/rpc?chain=mainnet&tag=latest", "https://h/rpc?chain=mainnet&tag=latest"),
        ("sqlite+aiosqlite:///watcher.db", "sqlite+aiosqlite:///watcher.db"),
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
