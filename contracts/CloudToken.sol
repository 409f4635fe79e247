// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title CloudToken (CTK)
/// @notice The prepaid credit users spend on cloud resources. Payment is a plain
/// ERC-20 transfer to the burn address 0x000000000000000000000000000000000000dEaD,
/// so any wallet can pay and the watcher never needs a user's key.
/// @dev The whole supply goes to the deployer, who acts as the distributor
/// (thesis section 4.1.1). 18 decimals come from OpenZeppelin's default. EIP-2612
/// `permit` lets the checkout pay in one transaction, with a signed approval instead of
/// a separate `approve` transaction, where the wallet supports it.
contract CloudToken is ERC20, ERC20Permit {
    uint256 public constant INITIAL_SUPPLY = 1_000_000 * 10 ** 18;

    constructor() ERC20("CloudToken", "CTK") ERC20Permit("CloudToken") {
        _mint(msg.sender, INITIAL_SUPPLY);
    }
}
