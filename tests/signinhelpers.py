"""Signing in to the API as a wallet would: the server's nonce and terms, an EIP-4361
message, personal_sign with the account's key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from eth_account.messages import encode_defunct

from watcher.domain.siwe import SignInMessage


async def signed_message(
    client: httpx.AsyncClient, account: Any, **changes: object
) -> tuple[str, str]:
    """A message built from the server's nonce and terms, signed by `account`."""
    terms = (await client.post("/api/auth/nonce")).json()
    now = datetime.now(UTC)
    fields: dict[str, object] = {
        "domain": terms["domain"],
        "address": account.address,
        "statement": "Sign in to watcher.",
        "uri": terms["uri"],
        "chain_id": terms["chain_id"],
        "nonce": terms["nonce"],
        "issued_at": now,
        "expiration_time": now + timedelta(minutes=5),
    }
    fields.update(changes)
    text = SignInMessage(**fields).text()  # type: ignore[arg-type]
    signature = account.sign_message(encode_defunct(text=text)).signature
    return text, "0x" + bytes(signature).hex().removeprefix("0x")


async def sign_in(client: httpx.AsyncClient, account: Any) -> str:
    """Sign in; the client keeps the session cookie. Returns the bearer token too."""
    message, signature = await signed_message(client, account)
    answer = await client.post(
        "/api/auth/sign-in", json={"message": message, "signature": signature, "bearer": True}
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token
