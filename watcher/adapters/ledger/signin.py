"""Sign-in state in the ledger database: the nonces handed out for Sign-In with Ethereum
messages, and the sessions of signed-in wallets.

A nonce is taken by one conditional UPDATE (unused and unexpired -> used), so two requests
racing with one signed message cannot both sign in, on either database. A session token is
32 random bytes shown once to its holder; the table keeps its SHA-256 only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.adapters.ledger.schema import SessionRecord, SignInNonceRecord

NONCE_LIFETIME = timedelta(minutes=10)
SESSION_LIFETIME = timedelta(hours=12)
# Used and expired nonces, and ended sessions, are kept this long for the record, then
# removed when new ones are written.
KEEP_ENDED = timedelta(days=1)


@dataclass(frozen=True)
class Session:
    address: str
    chain_id: int
    expires_at: datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SignIns:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def issue_nonce(self, now: datetime) -> tuple[str, datetime]:
        """A fresh nonce (alphanumeric, as EIP-4361 requires) and when it expires."""
        nonce = secrets.token_hex(16)
        expires = now + NONCE_LIFETIME
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(SignInNonceRecord).where(SignInNonceRecord.expires_at < now - KEEP_ENDED)
            )
            await conn.execute(
                insert(SignInNonceRecord).values(
                    nonce=nonce, created_at=now, expires_at=expires, used_at=None
                )
            )
        return nonce, expires

    async def take_nonce(self, nonce: str, now: datetime) -> bool:
        """Use the nonce: True once for a nonce this watcher issued that has not expired;
        False for an unknown, expired or already used one."""
        async with self.engine.begin() as conn:
            taken = await conn.execute(
                update(SignInNonceRecord)
                .where(
                    SignInNonceRecord.nonce == nonce,
                    SignInNonceRecord.used_at.is_(None),
                    SignInNonceRecord.expires_at > now,
                )
                .values(used_at=now)
            )
            return taken.rowcount == 1

    async def open_session(
        self, address: str, chain_id: int, now: datetime, lifetime: timedelta = SESSION_LIFETIME
    ) -> tuple[str, Session]:
        """A new session for `address`; the token is returned here and never stored."""
        token = secrets.token_urlsafe(32)
        session = Session(address, chain_id, now + lifetime)
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(SessionRecord).where(SessionRecord.expires_at < now - KEEP_ENDED)
            )
            await conn.execute(
                insert(SessionRecord).values(
                    token_hash=_hash(token),
                    address=address,
                    chain_id=chain_id,
                    created_at=now,
                    expires_at=session.expires_at,
                    ended_at=None,
                )
            )
        return token, session

    async def session(self, token: str, now: datetime) -> Session | None:
        """The live session the token opens, or None (unknown, expired or signed out)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        SessionRecord.address, SessionRecord.chain_id, SessionRecord.expires_at
                    ).where(
                        SessionRecord.token_hash == _hash(token),
                        SessionRecord.ended_at.is_(None),
                        SessionRecord.expires_at > now,
                    )
                )
            ).first()
        return Session(row.address, row.chain_id, row.expires_at) if row is not None else None

    async def end_session(self, token: str, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(SessionRecord)
                .where(SessionRecord.token_hash == _hash(token), SessionRecord.ended_at.is_(None))
                .values(ended_at=now)
            )
