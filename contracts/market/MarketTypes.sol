// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// Who starts an auction and which way the price goes.
/// Forward: a provider sells `slots` services; customers bid, the highest win and pay.
/// Reverse: a customer buys `slots` services; providers bid, the lowest win and are paid.
enum Side {
    Forward,
    Reverse
}

/// English: open ascending (forward) or descending (reverse) bids, each beating the worst
/// standing bid by `increment`. Dutch: a price clock from `startPrice` to `reserve`; the
/// first `slots` bidders to accept win at the clock's price then. Sealed: commit, then
/// reveal; first price pays each winner its own bid, second price (Vickrey, uniform for
/// k slots) pays every winner the best losing bid, or the reserve when there is none.
enum Mechanism {
    English,
    Dutch,
    FirstPriceSealed,
    SecondPriceSealed
}

/// How the auction runs. Prices and deposits are CTK base units.
struct AuctionRules {
    Side side;
    Mechanism mechanism;
    uint8 slots; // k winners, each with its own service agreement
    uint64 biddingEnds; // unix seconds: no bid, accept or commitment after it
    uint64 revealEnds; // sealed only (0 otherwise): no reveal after it
    uint256 reserve; // forward: the lowest price sold at; reverse: the highest paid
    uint256 startPrice; // Dutch only (0 otherwise): where the clock starts
    uint256 increment; // English only (0 otherwise): how much a bid must beat the worst standing one by
    uint256 bidDeposit; // sealed only (0 otherwise): posted with a commitment, forfeited without a reveal
}

/// What every winner's service agreement says. The text of the terms stays off chain;
/// its keccak256 is `termsHash`.
struct AgreementTerms {
    bytes32 termsHash;
    uint64 serviceSeconds; // the service window, from the provider's confirmation
    uint32 confirmSeconds; // how long a winner has to confirm after settlement
    uint32 reportSeconds; // witnesses may still commit a report this long after the window
    uint32 revealSeconds; // then reveal it within this long
    uint16 compensationBps; // of the fee, back to the customer on a confirmed violation
    uint8 witnesses; // N
    uint8 quorum; // M: a violation is confirmed by M of N, N/2 < M < N
    uint256 providerDeposit; // posted by the provider, forfeited to the customer on a no-show
    uint256 witnessFee; // paid by the customer per agreement, shared by the witnesses who judged right
}

/// What the Market made an address as (None: not one of its clones).
enum Kind {
    None,
    Auction,
    Agreement,
    Committee
}

/// The factory, as its clones see it.
interface IMarket {
    function token() external view returns (IERC20);

    function kindOf(address clone) external view returns (Kind);

    function pool() external view returns (address);

    /// Moves `amount` from `from` (who approved the market) to the calling clone.
    function collect(address from, uint256 amount) external;

    function offerAgreement(
        address customer,
        address provider,
        uint256 fee,
        AgreementTerms calldata terms
    ) external returns (address);

    function formCommittee(
        address customer,
        address provider,
        uint64 commitEnds,
        uint64 revealEnds,
        AgreementTerms calldata terms
    ) external returns (address);
}

interface IAuction {
    function initialize(IMarket market, address initiator, AuctionRules calldata rules, AgreementTerms calldata terms)
        external
        returns (uint256 escrow);
}

interface IAgreement {
    function initialize(
        IMarket market,
        address auction,
        address customer,
        address provider,
        uint256 fee,
        AgreementTerms calldata terms
    ) external;

    function close(bool violated, uint256 witnessPay) external;
}

interface ICommittee {
    function initialize(
        IMarket market,
        address agreement,
        address customer,
        address provider,
        uint64 commitEnds,
        uint64 revealEnds,
        AgreementTerms calldata terms
    ) external;

    function seedBlock() external view returns (uint64);
}

/// How a witness's report compares with the committee's outcome.
enum Verdict {
    Matched,
    Dissented,
    Silent
}

interface IWitnessPool {
    function draw(
        bytes32 seed,
        uint256 count,
        address customer,
        address provider,
        uint256 rosterSize,
        uint64 committedAt
    ) external returns (address[] memory);

    function rosterSize() external view returns (uint256);

    function minWitnessPay() external view returns (uint256);

    /// Ends one duty: the witness's stake is unlocked, its reputation moves by the verdict,
    /// and a silent or dissenting witness loses the pool's penalty to `slashTo`.
    function settleDuty(address witness, Verdict verdict, address slashTo) external returns (uint256 slashed);
}

/// The limits every contract of the market checks its parameters against.
library MarketLimits {
    uint8 internal constant MAX_SLOTS = 10;
    uint8 internal constant MIN_WITNESSES = 3;
    uint8 internal constant MAX_WITNESSES = 21;
    uint16 internal constant FULL_BPS = 10_000;
    /// A witness's shortest windows to report and to reveal: fifty 12 s blocks.
    uint32 internal constant MIN_WINDOW = 10 minutes;
    /// The longest any window may be, so no agreement can lock a witness's stake or a
    /// provider's deposit for longer than a service year and a few months.
    uint32 internal constant MAX_WINDOW = 30 days;
    uint64 internal constant MAX_SERVICE = 400 days;

    error InvalidTerms(string reason);

    /// The one check of an agreement's terms, made when an auction opens, so that no
    /// settlement or confirmation can fail later on terms nobody could meet.
    function checkTerms(AgreementTerms calldata terms, uint256 minWitnessPay) internal pure {
        if (terms.serviceSeconds == 0 || terms.serviceSeconds > MAX_SERVICE) {
            revert InvalidTerms("the service window must be longer than 0 s and at most 400 days");
        }
        if (terms.confirmSeconds == 0 || terms.confirmSeconds > MAX_WINDOW) {
            revert InvalidTerms("the confirmation window must be longer than 0 s and at most 30 days");
        }
        if (
            terms.reportSeconds < MIN_WINDOW || terms.revealSeconds < MIN_WINDOW || terms.reportSeconds > MAX_WINDOW
                || terms.revealSeconds > MAX_WINDOW
        ) {
            revert InvalidTerms("the report and reveal windows must be 10 minutes to 30 days");
        }
        if (terms.compensationBps > FULL_BPS) revert InvalidTerms("compensation is at most 10000 bps of the fee");
        if (terms.witnesses < MIN_WITNESSES || terms.witnesses > MAX_WITNESSES) {
            revert InvalidTerms("a committee has 3 to 21 witnesses");
        }
        // Zhou et al.: N/2 < M < N, so one side can never both confirm and deny, and one
        // silent witness alone cannot stop a confirmation.
        if (2 * uint256(terms.quorum) <= terms.witnesses || terms.quorum >= terms.witnesses) {
            revert InvalidTerms("the quorum M must be more than half of N and less than N");
        }
        // Witnesses carry penalties; a seat that pays nothing would make them work for free.
        if (terms.witnessFee < uint256(terms.witnesses) * minWitnessPay) {
            revert InvalidTerms("the witness fee must pay every seat the pool's minimum");
        }
    }
}
