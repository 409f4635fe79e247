// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {AgreementTerms, IAgreement, ICommittee, IMarket, IWitnessPool, Verdict} from "./MarketTypes.sol";

/// @title WitnessCommittee
/// @notice The N witnesses who judge one service agreement, after Zhou et al. (INFOCOM
/// 2019) as the AWESOME paper cites it:
/// - Selection: when the provider confirms, the committee commits to a block a little
///   ahead (`seedBlock`); once it is mined, anyone calls `draw`, which picks N witnesses
///   from the pool by sortition seeded with that block's hash, which nobody knew when the
///   agreement was confirmed. A seed block left for more than 256 blocks (its hash no
///   longer readable) is replaced by a new one ahead.
/// - Reports: each member commits keccak256(chain id, committee, witness, violated, salt)
///   until `commitEnds` (the service window plus `reportSeconds`), then reveals it until
///   `revealEnds`, so no witness can copy another's report.
/// - Outcome: a violation is confirmed when M of the N revealed reports say so.
/// - Payoffs: a witness whose report matches the outcome earns witnessFee / N and
///   reputation; a dissenting one earns nothing and loses the pool's dissent penalty and
///   reputation; a silent one (no reveal) earns nothing and loses the larger silence
///   penalty and more reputation. What the witnesses did not earn, and the penalties, go
///   to the customer, who paid for the monitoring.
/// @dev A clone made by the Market when an agreement is confirmed. Finalizing loops over
/// the N members (at most 21), never over the pool.
contract WitnessCommittee is Initializable, ICommittee {
    using SafeERC20 for IERC20;

    /// Blocks between the commitment to a seed block and that block.
    uint64 public constant SEED_DELAY = 2;

    struct Duty {
        bool member;
        bool revealed;
        bool violated;
        bytes32 report;
    }

    IMarket public market;
    IERC20 public token;
    IWitnessPool public pool;
    address public agreement;
    address public customer;
    address public provider;
    uint8 public size;
    uint8 public quorum;
    uint64 public commitEnds;
    uint64 public revealEnds;
    uint64 public seedBlock;
    uint256 public witnessFee;
    bool public finalized;
    bool public outcome;
    uint8 public revealedCount;
    uint8 public violationReports;
    uint256 public held;
    address[] internal _members;
    mapping(address witness => Duty) public duties;
    mapping(address witness => uint256) public owed;

    event Reseeded(uint64 seedBlock);
    event Drawn(address[] members, uint64 seedBlock);
    event ReportCommitted(address indexed witness);
    event ReportRevealed(address indexed witness, bool violated);
    event DutyJudged(address indexed witness, Verdict verdict, uint256 reward, uint256 slashed);
    event Judged(bool violated, uint256 violationReports, uint256 revealed, uint256 witnessPay);
    event Claimed(address indexed witness, uint256 amount);

    error AlreadyDrawn();
    error NotDrawn();
    error SeedNotMined(uint64 seedBlock);
    error ReportingClosed(uint64 commitEnds);
    error RevealNotOpen(uint64 commitEnds, uint64 revealEnds);
    error NotMember();
    error EmptyReport();
    error AlreadyReported();
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
        witnessFee = terms.witnessFee;
        seedBlock = uint64(block.number) + SEED_DELAY;
    }

    /// Anyone may draw the committee once its seed block is mined.
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
        address[] memory chosen = pool.draw(keccak256(abi.encode(hash, address(this))), size, customer, provider);
        for (uint256 i = 0; i < chosen.length; ++i) {
            duties[chosen[i]].member = true;
            _members.push(chosen[i]);
        }
        emit Drawn(chosen, seedBlock);
    }

    /// The commitment to a report, bound to the chain, this committee and the witness.
    function reportCommitment(address witness, bool violated, bytes32 salt) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), witness, violated, salt));
    }

    function commit(bytes32 report) external {
        Duty storage duty = _duty(msg.sender);
        if (block.timestamp > commitEnds) revert ReportingClosed(commitEnds);
        if (report == bytes32(0)) revert EmptyReport();
        if (duty.report != bytes32(0)) revert AlreadyReported();
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
        bool violated = _members.length != 0 && violationReports >= quorum;
        outcome = violated;
        uint256 share = witnessFee / size;
        uint256 paid = 0;
        for (uint256 i = 0; i < _members.length; ++i) {
            address witness = _members[i];
            Duty storage duty = duties[witness];
            Verdict verdict = !duty.revealed ? Verdict.Silent : duty.violated == violated ? Verdict.Matched : Verdict.Dissented;
            uint256 reward = verdict == Verdict.Matched ? share : 0;
            owed[witness] = reward;
            paid += reward;
            uint256 slashed = pool.settleDuty(witness, verdict, customer);
            emit DutyJudged(witness, verdict, reward, slashed);
        }
        held = paid;
        IAgreement(agreement).close(violated, paid);
        emit Judged(violated, violationReports, revealedCount, paid);
    }

    function claim() external {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingOwed();
        owed[msg.sender] = 0;
        held -= amount;
        token.safeTransfer(msg.sender, amount);
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
