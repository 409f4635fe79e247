// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title Checkout
/// @notice Pays for a drafted order in one transaction: moves `amount` CTK from the payer
/// straight to the burn address and, in the same transaction, emits
/// `OrderPaid(ref, payer, amount)` naming the order. The Transfer into the burn address is
/// still what counts as the payment (the watcher sees it as it sees any transfer); the
/// event says which order it is for. After Request Network's `transferFromWithReference`.
/// @dev Holds no funds and has no owner: nothing to pause, upgrade or withdraw. The
/// reference is the watcher's order reference; the contract does not judge it (an unknown,
/// late or short payment becomes the payer's credit in the watcher's ledger).
contract Checkout {
    using SafeERC20 for IERC20;

    /// @notice Tokens sent here are gone for good: no key is known for this address.
    address public constant BURN = 0x000000000000000000000000000000000000dEaD;

    IERC20 public immutable token;

    event OrderPaid(bytes32 indexed ref, address indexed payer, uint256 amount);

    error NoReference();
    error NoAmount();

    constructor(IERC20 token_) {
        token = token_;
    }

    /// @notice Pay `amount` for the order `ref`, from an allowance given to this contract.
    function pay(bytes32 ref, uint256 amount) external {
        _pay(ref, amount);
    }

    /// @notice Pay with an EIP-2612 permit instead of a prior approval: one transaction.
    /// A permit that fails (already used, e.g. copied from the mempool by someone who
    /// submitted it first) is ignored: the payment then needs the allowance to be there.
    function payWithPermit(
        bytes32 ref,
        uint256 amount,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {}
        catch {}
        _pay(ref, amount);
    }

    function _pay(bytes32 ref, uint256 amount) private {
        if (ref == bytes32(0)) revert NoReference();
        if (amount == 0) revert NoAmount();
        token.safeTransferFrom(msg.sender, BURN, amount);
        emit OrderPaid(ref, msg.sender, amount);
    }
}
