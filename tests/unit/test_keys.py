import json
from pathlib import Path

import pytest
from eth_account import Account

from watcher.config import load_settings
from watcher.devchain_accounts import dev_account
from watcher.errors import ConfigError, InvalidInput
from watcher.keys import resolve_signer

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
KEY_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_dev_accounts_match_hardhat() -> None:
    # Addresses Hardhat 2 prints for its default mnemonic.
    assert dev_account(0).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert dev_account(1).address == KEY_ADDRESS
    assert dev_account(19).address == "0x8626f6940E2eb28930eFb4CeF49B2d1F2C9C1199"


def test_dev_account_only_on_the_dev_chain() -> None:
    settings = load_settings({"dev_account": "1"}, {})
    assert resolve_signer(settings, 1337).address == KEY_ADDRESS
    with pytest.raises(ConfigError, match=r"only for the dev chain .* chain 1$"):
        resolve_signer(settings, 1)


def test_private_key_from_environment() -> None:
    signer = resolve_signer(load_settings({}, {"WATCHER_PRIVATE_KEY": KEY}), 1)
    assert signer.address == KEY_ADDRESS
    assert KEY[2:] not in repr(signer)


def test_no_key_and_two_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match="no signing key"):
        resolve_signer(load_settings({}, {}), 1337)
    both = load_settings({"dev_account": "0"}, {"WATCHER_PRIVATE_KEY": KEY})
    with pytest.raises(ConfigError, match="choose one signing key"):
        resolve_signer(both, 1337)


def _keystore(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(Account.encrypt(KEY, password, kdf="pbkdf2", iterations=1000)))
    return path


def test_keystore_with_password_from_environment(tmp_path: Path) -> None:
    path = _keystore(tmp_path, "s3cret")
    settings = load_settings({"keystore": str(path)}, {"WATCHER_KEYSTORE_PASSWORD": "s3cret"})
    assert resolve_signer(settings, 1).address == KEY_ADDRESS


def test_keystore_password_prompt(tmp_path: Path) -> None:
    path = _keystore(tmp_path, "s3cret")
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "s3cret"

    assert (
        resolve_signer(load_settings({"keystore": str(path)}, {}), 1, prompt).address == KEY_ADDRESS
    )
    assert asked
    assert str(path) in asked[0]


def test_keystore_errors(tmp_path: Path) -> None:
    path = _keystore(tmp_path, "s3cret")
    wrong = load_settings({"keystore": str(path)}, {"WATCHER_KEYSTORE_PASSWORD": "nope"})
    with pytest.raises(InvalidInput, match="wrong password"):
        resolve_signer(wrong, 1)
    with pytest.raises(ConfigError, match="needs a password"):
        resolve_signer(load_settings({"keystore": str(path)}, {}), 1)
    missing = load_settings({"keystore": str(tmp_path / "none.json")}, {})
    with pytest.raises(InvalidInput, match="does not exist"):
        resolve_signer(missing, 1)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(InvalidInput, match="is not JSON"):
        resolve_signer(
            load_settings({"keystore": str(garbage)}, {"WATCHER_KEYSTORE_PASSWORD": "x"}), 1
        )
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(InvalidInput, match="not an Ethereum JSON keystore"):
        resolve_signer(
            load_settings({"keystore": str(other)}, {"WATCHER_KEYSTORE_PASSWORD": "x"}), 1
        )
