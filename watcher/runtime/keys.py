"""Who signs: a local key from WATCHER_PRIVATE_KEY, an encrypted keystore, or a Hardhat
dev account, as the settings say. The key stays inside Signer
(watcher/adapters/chain/signer.py, which the chain adapters use without knowing about
settings); nothing here prints, logs or returns it."""

from __future__ import annotations

import json
from collections.abc import Callable

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.exceptions import ValidationError

from watcher.adapters.chain.dev_accounts import DEV_CHAIN_ID, dev_account
from watcher.adapters.chain.signer import Signer
from watcher.domain.errors import ConfigError, InvalidInput
from watcher.runtime.config import SETTINGS, Settings

PasswordPrompt = Callable[[str], str]


def resolve_signer(
    settings: Settings, chain_id: int, prompt_password: PasswordPrompt | None = None
) -> Signer:
    """The one key source the settings name; several at once is an error, not a guess."""
    chosen = [
        name
        for name, value in (
            ("dev_account", settings.dev_account),
            ("keystore", settings.keystore),
            ("private_key", settings.private_key),
        )
        if value is not None
    ]
    if not chosen:
        raise ConfigError(
            "no signing key: set WATCHER_PRIVATE_KEY, or pass --keystore PATH"
            + (" or --dev-account N" if chain_id == DEV_CHAIN_ID else "")
        )
    if len(chosen) > 1:
        names = " and ".join(_describe(name) for name in chosen)
        raise ConfigError(f"choose one signing key, not {names}")
    if settings.dev_account is not None:
        if chain_id != DEV_CHAIN_ID:
            raise ConfigError(
                f"--dev-account is only for the dev chain (chain id {DEV_CHAIN_ID}); "
                f"this RPC serves chain {chain_id}"
            )
        return Signer(dev_account(settings.dev_account), f"dev account {settings.dev_account}")
    if settings.keystore is not None:
        return _from_keystore(settings, prompt_password)
    assert settings.private_key is not None
    return Signer(
        _account(settings.private_key.reveal(), "WATCHER_PRIVATE_KEY"), "WATCHER_PRIVATE_KEY"
    )


def _account(key: str | bytes, source: str) -> LocalAccount:
    """The account of `key`, or one line naming where the key came from. eth_keys' own
    error quotes the key in decimal, so it must not reach a traceback or a log."""
    try:
        account: LocalAccount = Account.from_key(key)
    except (ValueError, ValidationError):
        raise InvalidInput(
            f"{source} does not hold a valid secp256k1 private key "
            "(zero, or not below the curve order)"
        ) from None
    return account


def _describe(name: str) -> str:
    spec = SETTINGS[name]
    return spec.env if spec.secret else spec.flag


def _from_keystore(settings: Settings, prompt_password: PasswordPrompt | None) -> Signer:
    path = settings.keystore
    assert path is not None
    try:
        keystore = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"keystore {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read keystore {path}: {exc}") from None
    except json.JSONDecodeError:
        raise InvalidInput(f"keystore {path} is not JSON") from None
    if not isinstance(keystore, dict) or "crypto" not in {k.lower() for k in keystore}:
        raise InvalidInput(f"keystore {path} is not an Ethereum JSON keystore")
    if settings.keystore_password is not None:
        password = settings.keystore_password.reveal()
    elif prompt_password is not None:
        password = prompt_password(f"Password for keystore {path}")
    else:
        raise ConfigError(
            f"keystore {path} needs a password: set WATCHER_KEYSTORE_PASSWORD "
            "or run in a terminal to be asked"
        )
    try:
        key = Account.decrypt(keystore, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise InvalidInput(f"wrong password for keystore {path}") from None
        raise InvalidInput(f"keystore {path} is damaged or of an unknown kind") from None
    except (KeyError, TypeError):
        raise InvalidInput(f"keystore {path} is damaged or of an unknown kind") from None
    return Signer(_account(key, f"keystore {path}"), f"keystore {path.name}")
