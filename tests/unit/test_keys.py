import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from watcher.adapters.chain.dev_accounts import dev_account
from watcher.domain.errors import ConfigError, InvalidInput
from watcher.runtime.config import load_settings
from watcher.runtime.keys import resolve_signer

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


def test_keystore_holding_a_key_above_the_curve_order_is_one_line(tmp_path: Path) -> None:
    # eth_account encrypts any 32 bytes; decrypting gives a key eth_keys refuses, and its
    # error quotes the key in decimal.
    number = 2**256 - 1
    key = f"0x{number:064x}"
    keystore = Account.encrypt(KEY, "pw", kdf="pbkdf2", iterations=1000)
    path = tmp_path / "key.json"
    path.write_text(json.dumps(_with_key(keystore, bytes.fromhex(key[2:]), "pw")))
    settings = load_settings({"keystore": str(path)}, {"WATCHER_KEYSTORE_PASSWORD": "pw"})
    with pytest.raises(InvalidInput) as info:
        resolve_signer(settings, 1)
    message = str(info.value)
    assert message == (
        f"keystore {path} does not hold a valid secp256k1 private key "
        "(zero, or not below the curve order)"
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__
    for form in (key[2:], str(number)):
        assert form not in message


def _with_key(keystore: dict[str, Any], key: bytes, password: str) -> dict[str, Any]:
    """`keystore` (pbkdf2, aes-128-ctr, encrypting KEY) changed to encrypt `key`, whatever its
    value: eth_account refuses to encrypt a key above the curve order, a file may hold one.
    CTR mode XORs a key stream, so swapping the plaintext is an XOR; the MAC is recomputed."""
    crypto = keystore["crypto"]
    params = crypto["kdfparams"]
    derived = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), bytes.fromhex(params["salt"]), params["c"], 32
    )
    old = bytes.fromhex(crypto["ciphertext"])
    stream = bytes(a ^ b for a, b in zip(old, bytes.fromhex(KEY[2:]), strict=True))
    ciphertext = bytes(a ^ b for a, b in zip(stream, key, strict=True))
    mac = keccak(derived[16:32] + ciphertext)
    changed = {**crypto, "ciphertext": ciphertext.hex(), "mac": mac.hex()}
    return {**keystore, "crypto": changed}
