// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";

import {Escrow} from "./Escrow.sol";
import {AgreementTerms, IAgreement, ICommittee, IMarket, IWitnessPool, Verdict} from "./MarketTypes.sol";

/// @title WitnessCommittee
/// @notice The N witnesses who judge one service agreement, after Zhou et al. (INFOCOM
/// 2019) as the AWESOME paper cites it:
/// - Selection: when the provider confirms, the committee commits to a block a little
///   ahead (`seedBlock`) and to the pool's roster as it is then. Once the block is mined,
///   anyone calls `draw`, which picks N witnesses by sortition seeded with that block's
///   hash, which nobody knew at confirmation. A seed block left for more than 256 blocks
///   (its hash no longer readable) is replaced by a new one ahead; the roster stays frozen.
/// - Reports: each member commits keccak256(chain id, committee, witness, violated, salt),
///   and may commit again to change it, until `commitEnds`; then reveals it until
///   `revealEnds`. Both windows run at least `reportSeconds` and `revealSeconds` from the
///   draw, however late it comes, so nobody can draw a committee that has no time to report.
/// - Outcome: a violation is confirmed when M reports say so; it is denied when M say
///   not; with neither (too many silent), the outcome is undecided and the agreement
///   closes as not violated.
/// - Payoffs: a witness whose report matches a decided outcome, or who reported at all on
///   an undecided one, earns witnessFee / N, a share of the penalties, and reputation; a
///   dissenter (against a decided outcome) earns nothing and loses the pool's dissent
///   penalty; a silent one loses the larger silence penalty. Penalties go to the witnesses
///   who judged right (to the customer only when none did); the fee they did not earn
///   goes back to the customer, who paid it.
/// @dev A clone made by the Market when an agreement is confirmed. Finalizing loops over
/// the N members (at most 21), never over the pool.
contract WitnessCommittee is Initializable, Escrow, ICommittee {
    /// Blocks between the commitment to a seed block and that block.
    uint64 public constant SEED_DELAY = 2;

    struct Duty {
        bool member;
        bool revealed;
        bool violated;
        bytes32 report;
    }

    IWitnessPool public pool;
    address public agreement;
    address public customer;
    address public provider;
    uint8 public size;
    uint8 public quorum;
    uint64 public commitEnds;
    uint64 public revealEnds;
    uint64 public seedBlock;
    uint64 public committedAt;
    uint32 public reportSeconds;
    uint32 public revealSeconds;
    uint256 public rosterSize;
    uint256 public witnessFee;
    bool public finalized;
    bool public outcome;
    uint8 public revealedCount;
    uint8 public violationReports;
    address[] internal _members;
    mapping(address witness => Duty) public duties;
    mapping(address witness => uint256) public owed;

    event Reseeded(uint64 seedBlock);
    event Drawn(address[] members, uint64 seedBlock, uint64 commitEnds, uint64 revealEnds);
    event ReportCommitted(address indexed witness);
    event ReportRevealed(address indexed witness, bool violated);
    event DutyJudged(address indexed witness, Verdict verdict, uint256 reward);
    event Judged(bool violated, bool decided, uint256 violationReports, uint256 revealed, uint256 witnessPay);
    event Claimed(address indexed witness, uint256 amount);

    error AlreadyDrawn();
    error NotDrawn();
    error SeedNotMined(uint64 seedBlock);
    error ReportingClosed(uint64 commitEnds);
    error RevealNotOpen(uint64 commitEnds, uint64 revealEnds);
    error NotMember();
    error EmptyReport();
    error NoReport();
    error AlreadyRevealed();
    error WrongReveal();
    error NotOver(uint64 revealEnds);
    error AlreadyFinalized();
    error NothingOwed();

    constructor() {
        _disableInitializers();
    }

    function initialize(
        IMarket market_,
        address agreement_,
        address customer_,
        address provider_,
        uint64 commitEnds_,
        uint64 revealEnds_,
        AgreementTerms calldata terms
    ) external initializer {
        market = market_;
        token = market_.token();
        pool = IWitnessPool(market_.pool());
        agreement = agreement_;
        customer = customer_;
        provider = provider_;
        size = terms.witnesses;
        quorum = terms.quorum;
        commitEnds = commitEnds_;
        revealEnds = revealEnds_;
        reportSeconds = terms.reportSeconds;
        revealSeconds = terms.revealSeconds;
        witnessFee = terms.witnessFee;
        committedAt = uint64(block.number);
        rosterSize = pool.rosterSize();
        seedBlock = uint64(block.number) + SEED_DELAY;
    }

    /// Anyone may draw the committee once its seed block is mined, until reporting would
    /// have closed; a late draw moves the windows out, so members always get their time.
    function draw() external {
        if (_members.length != 0) revert AlreadyDrawn();
        if (block.timestamp > commitEnds) revert ReportingClosed(commitEnds);
        if (block.number <= seedBlock) revert SeedNotMined(seedBlock);
        bytes32 hash = blockhash(seedBlock);
        if (hash == bytes32(0)) {
            // Older than 256 blocks: commit to a new block nobody knows yet.
            seedBlock = uint64(block.number) + SEED_DELAY;
            emit Reseeded(seedBlock);
            return;
        }
        address[] memory chosen = pool.draw(
            keccak256(abi.encode(hash, address(this))), size, customer, provider, rosterSize, committedAt
        );
        for (uint256 i = 0; i < chosen.length; ++i) {
            duties[chosen[i]].member = true;
            _members.push(chosen[i]);
        }
        uint64 earliest = uint64(block.timestamp) + reportSeconds;
        if (commitEnds < earliest) {
            commitEnds = earliest;
            revealEnds = earliest + revealSeconds;
        }
        emit Drawn(chosen, seedBlock, commitEnds, revealEnds);
    }

    /// The commitment to a report, bound to the chain, this committee and the witness.
    function reportCommitment(address witness, bool violated, bytes32 salt) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), witness, violated, salt));
    }

    /// Commit a report, or a new one in its place (an outage seen after an early report).
    function commit(bytes32 report) external {
        Duty storage duty = _duty(msg.sender);
        if (block.timestamp > commitEnds) revert ReportingClosed(commitEnds);
        if (report == bytes32(0)) revert EmptyReport();
        duty.report = report;
        emit ReportCommitted(msg.sender);
    }

    function reveal(bool violated, bytes32 salt) external {
        Duty storage duty = _duty(msg.sender);
        if (block.timestamp <= commitEnds || block.timestamp > revealEnds) revert RevealNotOpen(commitEnds, revealEnds);
        if (duty.report == bytes32(0)) revert NoReport();
        if (duty.revealed) revert AlreadyRevealed();
        if (reportCommitment(msg.sender, violated, salt) != duty.report) revert WrongReveal();
        duty.revealed = true;
        duty.violated = violated;
        ++revealedCount;
        if (violated) ++violationReports;
        emit ReportRevealed(msg.sender, violated);
    }

    /// Anyone may finalize after the reveal window: the outcome, every member's payoff,
    /// and the agreement's close. An undrawn committee finds no violation.
    function finalize() external {
        if (finalized) revert AlreadyFinalized();
        if (block.timestamp <= revealEnds) revert NotOver(revealEnds);
        finalized = true;
        uint256 count = _members.length;
        bool violated = count != 0 && violationReports >= quorum;
        bool denied = count != 0 && revealedCount - violationReports >= quorum;
        bool decided = violated || denied;
        outcome = violated;
        Verdict[] memory verdicts = new Verdict[](count);
        uint256 matched = 0;
        uint256 slashed = 0;
        for (uint256 i = 0; i < count; ++i) {
            Duty storage duty = duties[_members[i]];
            Verdict verdict = !duty.revealed
                ? Verdict.Silent
                : (!decided || duty.violated == violated) ? Verdict.Matched : Verdict.Dissented;
            verdicts[i] = verdict;
            if (verdict == Verdict.Matched) ++matched;
            // Penalties come here, to be shared by the witnesses who judged right.
            slashed += pool.settleDuty(_members[i], verdict, address(this));
        }
        held += slashed;
        uint256 share = witnessFee / size;
        uint256 bonus = matched == 0 ? 0 : slashed / matched;
        for (uint256 i = 0; i < count; ++i) {
            uint256 reward = verdicts[i] == Verdict.Matched ? share + bonus : 0;
            owed[_members[i]] = reward;
            emit DutyJudged(_members[i], verdicts[i], reward);
        }
        uint256 witnessPay = share * matched;
        // The penalties nobody earned (no witness judged right), and the rounding.
        _pay(customer, slashed - bonus * matched);
        held += witnessPay;
        IAgreement(agreement).close(violated, witnessPay);
        emit Judged(violated, decided, violationReports, revealedCount, witnessPay);
    }

    function claim() external {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingOwed();
        owed[msg.sender] = 0;
        _pay(msg.sender, amount);
        emit Claimed(msg.sender, amount);
    }

    function members() external view returns (address[] memory) {
        return _members;
    }

    function _duty(address witness) private view returns (Duty storage duty) {
        if (_members.length == 0) revert NotDrawn();
        duty = duties[witness];
        if (!duty.member) revert NotMember();
    }
}
