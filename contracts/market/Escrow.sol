// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IMarket} from "./MarketTypes.sol";

/// @title Escrow
/// @notice The one way the market's contracts take and give CTK. Each keeps a book, `held`,
/// of what it holds for others: taking adds to it, paying subtracts from it (checked, so
/// no contract can pay out more than it took), and an ending that leaves it non-zero
/// reverts. That is the money invariant, enforced on chain.
abstract contract Escrow {
    using SafeERC20 for IERC20;

    IMarket public market;
    IERC20 public token;
    /// CTK units this contract holds for somebody, by its own book.
    uint256 public held;

    error Unbalanced(uint256 held);

    /// Takes `amount` from `from`, who approved the Market (which moves it here).
    function _collect(address from, uint256 amount) internal {
        if (amount == 0) return;
        held += amount;
        market.collect(from, amount);
    }

    function _pay(address to, uint256 amount) internal {
        if (amount == 0) return;
        held -= amount;
        token.safeTransfer(to, amount);
    }

    /// Everything that came in has gone out.
    function _requireEmpty() internal view {
        if (held != 0) revert Unbalanced(held);
    }
}
