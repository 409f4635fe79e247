"""The Hardhat dev chain's well-known accounts.

Their keys come from Hardhat's public test mnemonic: anyone can spend from them, which is
why `--dev-account` is refused on every chain but the dev chain (id 1337).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

DEV_CHAIN_ID = 1337
DEV_ACCOUNT_COUNT = 20
HARDHAT_MNEMONIC = "test test test test test test test test test test test junk"


@cache
def dev_account(index: int) -> LocalAccount:
    """Hardhat dev account `index` (0-19), derived as Hardhat does (BIP-44, m/44'/60'/0'/0/N)."""
    # Imported here: eth_account takes half a second to load, and the configuration (which
    # only needs the constants above) is read by every command, even a failing one.
    from eth_account import Account

    if not 0 <= index < DEV_ACCOUNT_COUNT:
        raise ValueError(f"dev account must be between 0 and {DEV_ACCOUNT_COUNT - 1}")
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(
        HARDHAT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
    )
    return account
