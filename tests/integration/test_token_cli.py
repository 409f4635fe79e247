"""The token CLI against a real Hardhat node: deploy, transfer, pay and every refusal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from tests.conftest import CliResult
from watcher.adapters.chain.artifact import cloud_token_artifact
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.dev.devchain import DevChain
from watcher.domain.addresses import BURN_ADDRESS

Cli = Callable[..., CliResult]
CTK = 10**18
ADMIN = dev_account(0).address
USER = dev_account(1).address
KEY2 = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # dev account 2


@pytest.fixture
def chain_env(devchain: DevChain, monkeypatch: pytest.MonkeyPatch) -> DevChain:
    monkeypatch.setenv("WATCHER_RPC_URL", devchain.url)
    return devchain


@pytest.fixture
def token(cli: Cli, chain_env: DevChain, monkeypatch: pytest.MonkeyPatch) -> str:
    """A freshly deployed CTK per test, so balances never leak between tests."""
    result = cli("token", "deploy", "--dev-account", "0", "--json")
    assert result.code == 0, result.err
    address: str = json.loads(result.out)["address"]
    monkeypatch.setenv("WATCHER_TOKEN_ADDRESS", address)
    return address


def balance(w3: Web3, token: str, owner: str) -> int:
    contract = w3.eth.contract(
        address=Web3.to_checksum_address(token), abi=cloud_token_artifact().abi
    )
    value: int = contract.functions.balanceOf(owner).call()
    return value


def fund(cli: Cli, to: str, amount: str) -> None:
    assert cli("token", "transfer", to, amount, "--dev-account", "0").code == 0


def test_deploy_prints_address_and_json(cli: Cli, chain_env: DevChain, w3: Web3) -> None:
    plain = cli("token", "deploy", "--dev-account", "0")
    assert plain.code == 0, plain.err
    address = plain.out.strip()
    assert Web3.is_checksum_address(address)
    assert w3.eth.get_code(address) != b""

    result = cli("token", "deploy", "--dev-account", "0", "--json")
    record = json.loads(result.out)
    assert set(record) >= {"address", "chain_id", "block_number"}
    assert record["chain_id"] == 1337
    receipt = w3.eth.get_transaction_receipt(record["tx_hash"])
    assert receipt["contractAddress"] == record["address"]
    assert receipt["blockNumber"] == record["block_number"]

    contract = w3.eth.contract(address=record["address"], abi=cloud_token_artifact().abi)
    assert contract.functions.name().call() == "CloudToken"
    assert contract.functions.symbol().call() == "CTK"
    assert contract.functions.decimals().call() == 18
    assert contract.functions.totalSupply().call() == 1_000_000 * CTK
    assert contract.functions.balanceOf(ADMIN).call() == 1_000_000 * CTK


def test_transfer_and_balance(cli: Cli, token: str, w3: Web3) -> None:
    result = cli("token", "transfer", USER, "12.5", "--dev-account", "0", "--json")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert record["amount"] == str(12 * CTK + CTK // 2)
    assert record["from"] == ADMIN
    assert record["to"] == USER
    assert balance(w3, token, USER) == 12 * CTK + CTK // 2
    assert balance(w3, token, ADMIN) == 1_000_000 * CTK - (12 * CTK + CTK // 2)

    shown = cli("token", "balance", USER)
    assert shown.code == 0
    assert shown.out.strip() == f"{USER}: 12.5 CTK"
    as_json = json.loads(cli("token", "balance", USER.lower(), "--json").out)
    assert as_json == {
        "chain_id": 1337,
        "address": USER,
        "balance": str(12 * CTK + CTK // 2),
        "balance_ctk": "12.5",
    }


def test_pay_burns_tokens_from_the_payer(cli: Cli, token: str, w3: Web3) -> None:
    fund(cli, USER, "50")
    result = cli("pay", "10", "--dev-account", "1", "--json")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert record["to"] == BURN_ADDRESS
    assert record["from"] == USER
    assert balance(w3, token, USER) == 40 * CTK
    assert balance(w3, token, BURN_ADDRESS) == 10 * CTK
    # The payment is a plain ERC-20 Transfer into the burn address: what the watcher follows.
    receipt = w3.eth.get_transaction_receipt(record["tx_hash"])
    contract = w3.eth.contract(
        address=Web3.to_checksum_address(token), abi=cloud_token_artifact().abi
    )
    (event,) = contract.events.Transfer().process_receipt(receipt)
    assert event["args"] == {"from": USER, "to": BURN_ADDRESS, "value": 10 * CTK}

    human = cli("pay", "0.000000000000000001", "--dev-account", "1")
    assert human.code == 0
    assert human.out.startswith("paid 0.000000000000000001 CTK from " + USER)
    assert balance(w3, token, BURN_ADDRESS) == 10 * CTK + 1


def test_pay_with_too_little_is_refused_and_sends_nothing(cli: Cli, token: str, w3: Web3) -> None:
    fund(cli, USER, "9.999999999999999999")
    nonce, block = w3.eth.get_transaction_count(USER), w3.eth.block_number
    result = cli("pay", "10", "--dev-account", "1")
    assert result.code == 1
    assert result.out == ""
    assert result.err.strip() == (
        f"watcher: error: not enough CTK: {USER} holds 9.999999999999999999 CTK "
        "and this needs 10 CTK; nothing was sent"
    )
    assert w3.eth.get_transaction_count(USER) == nonce
    assert w3.eth.block_number == block
    assert balance(w3, token, USER) == 10 * CTK - 1


def test_pay_with_an_empty_wallet(cli: Cli, token: str, w3: Web3) -> None:
    result = cli("pay", "10", "--dev-account", "5")
    assert result.code == 1
    assert "holds 0 CTK" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pay", "-1"), "amount must be positive, got '-1'"),
        (("pay", "abc"), "amount must be a decimal number of CTK such as 12.5, got 'abc'"),
        (("pay", "1.0000000000000000001"), "has 19 decimal places; CTK has at most 18"),
        (("pay", "0"), "amount must be greater than zero"),
        (("token", "transfer", USER, "-1"), "amount must be positive"),
        (
            ("token", "transfer", "0x123", "1"),
            "address must be 0x followed by 40 hex digits, got '0x123'",
        ),
        (("token", "transfer", USER.replace("7", "8", 1), "1"), "bad EIP-55 checksum"),
        (("token", "balance", "bob"), "address must be 0x followed by 40 hex digits"),
        (("pay", "--amount", "1"), "No such option '--amount' (see 'watcher pay --help')"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    cli: Cli,
    token: str,
    w3: Web3,
    args: tuple[str, ...],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHER_DEV_ACCOUNT", "0")
    block = w3.eth.block_number
    result = cli(*args)
    assert result.code == 2
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("watcher: error: ")
    assert message in lines[0]
    assert w3.eth.block_number == block


def test_token_address_must_hold_a_contract(cli: Cli, chain_env: DevChain) -> None:
    result = cli("token", "balance", USER, "--token-address", BURN_ADDRESS)
    assert result.code == 1
    assert (
        "there is no contract at 0x000000000000000000000000000000000000dEaD on chain 1337"
        in result.err
    )


def test_missing_token_address(cli: Cli, chain_env: DevChain) -> None:
    result = cli("pay", "1", "--dev-account", "1")
    assert result.code == 2
    assert "no CTK contract configured: set WATCHER_TOKEN_ADDRESS" in result.err


def test_private_key_from_environment_is_never_printed(
    cli: Cli, token: str, w3: Web3, monkeypatch: pytest.MonkeyPatch
) -> None:
    fund(cli, dev_account(2).address, "5")
    monkeypatch.setenv("WATCHER_PRIVATE_KEY", KEY2)
    result = cli("pay", "2", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["from"] == dev_account(2).address
    shown = cli("config")
    assert "WATCHER_PRIVATE_KEY=(set)" in shown.out
    for output in (result.out, result.err, shown.out, shown.err):
        assert KEY2[2:] not in output


def test_keystore_signs_with_password_from_environment(
    cli: Cli, token: str, w3: Web3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keystore = tmp_path / "wallet.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY2, "pw", kdf="pbkdf2", iterations=1000)))
    fund(cli, dev_account(2).address, "3")
    monkeypatch.setenv("WATCHER_KEYSTORE_PASSWORD", "pw")
    result = cli("pay", "3", "--keystore", str(keystore))
    assert result.code == 0, result.err
    assert balance(w3, token, dev_account(2).address) == 0
    monkeypatch.setenv("WATCHER_KEYSTORE_PASSWORD", "wrong")
    refused = cli("pay", "1", "--keystore", str(keystore))
    assert refused.code == 2
    assert refused.err.strip() == f"watcher: error: wrong password for keystore {keystore}"


def test_websocket_rpc_url(cli: Cli, token: str, devchain: DevChain) -> None:
    fund(cli, USER, "1")
    result = cli("token", "balance", USER, "--rpc-url", devchain.ws_url)
    assert result.code == 0, result.err
    assert result.out.strip() == f"{USER}: 1 CTK"
    paid = cli("pay", "1", "--dev-account", "1", "--rpc-url", devchain.ws_url)
    assert paid.code == 0, paid.err


def test_a_wallet_without_gas_money_is_refused_before_sending(
    cli: Cli, token: str, w3: Web3, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = Account.create()
    fund(cli, fresh.address, "10")
    monkeypatch.setenv("WATCHER_PRIVATE_KEY", fresh.key.hex())
    block = w3.eth.block_number
    result = cli("pay", "10")
    assert result.code == 1
    assert result.err.startswith(f"watcher: error: {fresh.address} has 0 ETH for gas;")
    assert result.err.strip().endswith("nothing was sent")
    assert w3.eth.block_number == block
    assert balance(w3, token, fresh.address) == 10 * CTK


async def test_a_transfer_the_contract_would_revert_is_refused_with_its_reason(
    token: str, devchain: DevChain
) -> None:
    # The CLI checks the balance first; this is the race where it changed after the check.
    from watcher.adapters.chain.connection import connect
    from watcher.adapters.chain.signer import Signer
    from watcher.adapters.chain.transactions import send_transaction
    from watcher.domain.errors import ChainError

    signer = Signer(dev_account(6), "dev account 6")
    async with connect(devchain.url, 5) as chain:
        contract = chain.w3.eth.contract(address=token, abi=cloud_token_artifact().abi)
        with pytest.raises(ChainError) as info:
            await send_transaction(
                chain,
                signer,
                contract.functions.transfer(BURN_ADDRESS, 5),
                10,
                cloud_token_artifact().abi,
            )
    assert str(info.value) == (
        "the contract refused the transaction: "
        f"ERC20InsufficientBalance(sender={signer.address}, balance=0, needed=5)"
    )
