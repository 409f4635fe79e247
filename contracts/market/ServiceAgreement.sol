// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";

import {Escrow} from "./Escrow.sol";
import {AgreementTerms, IAgreement, IMarket, MarketLimits} from "./MarketTypes.sol";

/// @title ServiceAgreement
/// @notice One winner's SLA: the customer's fee and witness fee and the provider's deposit,
/// in escrow from settlement until its committee has judged the service window.
/// - Offered: the provider confirms within `confirmSeconds`, which starts the window and
///   forms its witness committee; unconfirmed, anyone may cancel, and the customer gets
///   back the fee and the witness fee and takes the provider's deposit.
/// - Active: the committee closes it after the window. Violation confirmed: the customer
///   gets `compensationBps` of the fee back (AWESOME's example is EC2's 30 % credit), the
///   provider the rest and its deposit. Otherwise the provider gets the fee and its
///   deposit. Either way the witnesses are paid from the witness fee by the payoff rule,
///   and what they did not earn goes back to the customer, who paid it.
/// @dev A clone made by the Market for an Auction. `held` counts what it holds; every
/// payout is checked against it.
contract ServiceAgreement is Initializable, Escrow, IAgreement {
    enum State {
        Offered,
        Active,
        Closed,
        Cancelled
    }

    address public auction;
    address public customer;
    address public provider;
    uint256 public fee;
    AgreementTerms internal _terms;
    uint64 public confirmBy;
    uint64 public startedAt;
    uint64 public endsAt;
    address public committee;
    State public state;
    bool public violated;

    event Confirmed(uint64 startedAt, uint64 endsAt, address committee);
    event Cancelled(uint256 refund, uint256 forfeitedDeposit);
    event Closed(bool violated, uint256 toCustomer, uint256 toProvider, uint256 toWitnesses);

    error NotProvider();
    error NotCommittee();
    error NotOffered();
    error NotActive();
    error ConfirmationClosed(uint64 confirmBy);
    error ConfirmationOpen(uint64 confirmBy);
    error WitnessPayTooHigh(uint256 witnessPay, uint256 witnessFee);

    constructor() {
        _disableInitializers();
    }

    /// The auction pays fee + witness fee + deposit in right after this, in the same call.
    function initialize(
        IMarket market_,
        address auction_,
        address customer_,
        address provider_,
        uint256 fee_,
        AgreementTerms calldata terms_
    ) external initializer {
        market = market_;
        token = market_.token();
        auction = auction_;
        customer = customer_;
        provider = provider_;
        fee = fee_;
        _terms = terms_;
        confirmBy = uint64(block.timestamp) + terms_.confirmSeconds;
        held = fee_ + terms_.witnessFee + terms_.providerDeposit;
    }

    /// The provider takes the agreement on: the service window starts now, and a witness
    /// committee is formed to judge it.
    function confirm() external {
        if (msg.sender != provider) revert NotProvider();
        if (state != State.Offered) revert NotOffered();
        if (block.timestamp > confirmBy) revert ConfirmationClosed(confirmBy);
        state = State.Active;
        startedAt = uint64(block.timestamp);
        endsAt = startedAt + _terms.serviceSeconds;
        uint64 commitEnds = endsAt + _terms.reportSeconds;
        uint64 revealEnds = commitEnds + _terms.revealSeconds;
        committee = market.formCommittee(customer, provider, commitEnds, revealEnds, _terms);
        emit Confirmed(startedAt, endsAt, committee);
    }

    /// Anyone may cancel an agreement its provider did not confirm in time.
    function cancel() external {
        if (state != State.Offered) revert NotOffered();
        if (block.timestamp <= confirmBy) revert ConfirmationOpen(confirmBy);
        state = State.Cancelled;
        uint256 refund = fee + _terms.witnessFee;
        uint256 forfeited = _terms.providerDeposit;
        _pay(customer, refund + forfeited);
        _requireEmpty();
        emit Cancelled(refund, forfeited);
    }

    /// The committee's judgment, once: pays everyone and ends the agreement.
    function close(bool violated_, uint256 witnessPay) external {
        if (msg.sender != committee) revert NotCommittee();
        if (state != State.Active) revert NotActive();
        uint256 witnessFee = _terms.witnessFee;
        if (witnessPay > witnessFee) revert WitnessPayTooHigh(witnessPay, witnessFee);
        state = State.Closed;
        violated = violated_;
        uint256 compensation = violated_ ? (fee * _terms.compensationBps) / MarketLimits.FULL_BPS : 0;
        uint256 toCustomer = compensation + (witnessFee - witnessPay);
        uint256 toProvider = fee - compensation + _terms.providerDeposit;
        _pay(committee, witnessPay);
        _pay(customer, toCustomer);
        _pay(provider, toProvider);
        _requireEmpty();
        emit Closed(violated_, toCustomer, toProvider, witnessPay);
    }

    function terms() external view returns (AgreementTerms memory) {
        return _terms;
    }
}
