// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title PaymentBatcher (tests and benchmarks only)
/// @notice Sends many ERC-20 transfers from the caller in one transaction, so one
/// transaction carries many Transfer logs: the case the watcher must count log by log.
/// The caller approves this contract for the total first.
contract PaymentBatcher {
    function payMany(IERC20 token, address to, uint256[] calldata amounts) external {
        for (uint256 i = 0; i < amounts.length; ++i) {
            require(token.transferFrom(msg.sender, to, amounts[i]), "transfer failed");
        }
    }
}
