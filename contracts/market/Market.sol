// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {
    AgreementTerms,
    AuctionRules,
    IAgreement,
    IAuction,
    ICommittee,
    IMarket,
    Kind,
    Mechanism,
    Side
} from "./MarketTypes.sol";
import {PoolRules, WitnessPool} from "./WitnessPool.sol";

/// @title Market
/// @notice The contract factory and registry of the marketplace: it makes every auction,
/// service agreement and witness committee as an EIP-1167 minimal-proxy clone of one
/// implementation each, and it owns the witness pool.
/// @dev Agents follow the market like payments: the Market's three events name every
/// clone it made (in block and log order, each at its own (tx hash, log index)); a
/// clone's own events come from the clone's address, which the Market vouches for with
/// `kindOf`. Approve the Market, not each clone: it moves a participant's CTK to the clone
/// that asks for it, and clones only ever ask for their caller's. Has no owner: nothing to
/// pause, upgrade or withdraw.
contract Market is IMarket {
    using SafeERC20 for IERC20;

    IERC20 public immutable token;
    address public immutable auctionImplementation;
    address public immutable agreementImplementation;
    address public immutable committeeImplementation;
    address public immutable pool;

    mapping(address clone => Kind) public kindOf;

    event AuctionOpened(
        address indexed auction,
        address indexed initiator,
        Side side,
        Mechanism mechanism,
        AuctionRules rules,
        AgreementTerms terms
    );
    // Indexed by customer and provider, the two agents that follow their own agreements.
    event AgreementOffered(
        address indexed agreement, address indexed customer, address indexed provider, address auction, uint256 fee
    );
    event CommitteeFormed(address indexed committee, address indexed agreement, uint64 seedBlock);

    error NotAClone();
    error WrongKind(Kind caller);

    constructor(
        IERC20 token_,
        address auctionImplementation_,
        address agreementImplementation_,
        address committeeImplementation_,
        PoolRules memory poolRules
    ) {
        token = token_;
        auctionImplementation = auctionImplementation_;
        agreementImplementation = agreementImplementation_;
        committeeImplementation = committeeImplementation_;
        pool = address(new WitnessPool(this, token_, poolRules));
    }

    /// Open an auction; its escrow (a reverse auction's budget, a forward auction's
    /// provider deposits) comes from the caller now.
    function openAuction(AuctionRules calldata rules, AgreementTerms calldata terms) external returns (address auction) {
        auction = Clones.clone(auctionImplementation);
        kindOf[auction] = Kind.Auction;
        uint256 escrow = IAuction(auction).initialize(this, msg.sender, rules, terms);
        if (escrow != 0) token.safeTransferFrom(msg.sender, auction, escrow);
        emit AuctionOpened(auction, msg.sender, rules.side, rules.mechanism, rules, terms);
    }

    function offerAgreement(address customer, address provider, uint256 fee, AgreementTerms calldata terms)
        external
        returns (address agreement)
    {
        _requireKind(Kind.Auction);
        agreement = Clones.clone(agreementImplementation);
        kindOf[agreement] = Kind.Agreement;
        IAgreement(agreement).initialize(this, msg.sender, customer, provider, fee, terms);
        emit AgreementOffered(agreement, customer, provider, msg.sender, fee);
    }

    function formCommittee(
        address customer,
        address provider,
        uint64 commitEnds,
        uint64 revealEnds,
        AgreementTerms calldata terms
    ) external returns (address committee) {
        _requireKind(Kind.Agreement);
        committee = Clones.clone(committeeImplementation);
        kindOf[committee] = Kind.Committee;
        ICommittee(committee).initialize(this, msg.sender, customer, provider, commitEnds, revealEnds, terms);
        emit CommitteeFormed(committee, msg.sender, ICommittee(committee).seedBlock());
    }

    function collect(address from, uint256 amount) external {
        if (kindOf[msg.sender] == Kind.None && msg.sender != pool) revert NotAClone();
        token.safeTransferFrom(from, msg.sender, amount);
    }

    function _requireKind(Kind kind) private view {
        Kind caller = kindOf[msg.sender];
        if (caller != kind) revert WrongKind(caller);
    }
}
