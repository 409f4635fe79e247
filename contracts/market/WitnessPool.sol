// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {Escrow} from "./Escrow.sol";
import {IMarket, IWitnessPool, Kind, Verdict} from "./MarketTypes.sol";

/// The market's rules for witnesses, fixed when it is deployed.
struct PoolRules {
    uint256 minStake; // to register, and to stay registered after a withdrawal
    uint256 dutyStake; // locked for each committee a witness sits on
    uint256 silencePenalty; // lost for a duty with no revealed report (at most dutyStake)
    uint256 dissentPenalty; // lost for a report against a decided outcome (at most silencePenalty)
    uint32 minReputation; // below it a witness is no longer drawn, and its stake goes back
    uint256 minWitnessPay; // the least an agreement pays per committee seat
}

/// @title WitnessPool
/// @notice Where witnesses register with a stake, and the one place their stake and
/// reputation change.
/// - Sortition: a draw picks roster entries from the seed, skips the agreement's own
///   customer and provider and anyone without a free duty stake, and keeps a pick with
///   probability reputation / MAX_REPUTATION, so selection is weighted by reputation
///   (registration order plays no part, unlike AWESOME's first come, first served).
/// - Frozen at the commitment: a committee draws only from the roster as it stood when it
///   committed to its seed block (the roster only grows; a leaver's entry stays, empty),
///   and only witnesses whose stake has not changed since, so nobody can register, top up
///   or move entries after seeing the seed.
/// - Reputation: +2 for a report that matched, -5 for dissent, -10 for silence. Falling
///   below `minReputation` ends the registration: the stake left goes back to the witness.
/// @dev A draw tries at most 8 N + 32 random picks (rejection sampling) and then walks at
/// most SCAN_LIMIT entries: its gas is bounded by the committee's size, not the pool's.
contract WitnessPool is Escrow, IWitnessPool {
    uint32 public constant START_REPUTATION = 100;
    uint32 public constant MAX_REPUTATION = 200;
    uint32 public constant MATCH_GAIN = 2;
    uint32 public constant DISSENT_LOSS = 5;
    uint32 public constant SILENCE_LOSS = 10;
    /// Roster entries the fallback walk of a draw looks at, at most (gas: about 5,000 each).
    uint256 public constant SCAN_LIMIT = 256;

    struct Witness {
        uint256 stake;
        uint256 locked;
        uint32 reputation;
        uint32 position; // index in the roster + 1; 0: never registered
        uint32 duties; // committees sat on and judged
        uint64 since; // block of the last registration or top-up
    }

    uint256 public immutable minStake;
    uint256 public immutable dutyStake;
    uint256 public immutable silencePenalty;
    uint256 public immutable dissentPenalty;
    uint32 public immutable minReputation;
    uint256 public immutable minWitnessPay;

    mapping(address witness => Witness) public witnesses;
    address[] public roster;

    event Registered(address indexed witness, uint256 stake);
    event Staked(address indexed witness, uint256 amount, uint256 stake);
    event Withdrawn(address indexed witness, uint256 amount, uint256 stake);
    event Left(address indexed witness, uint256 amount);
    event OnDuty(address indexed witness, address indexed committee);
    event DutySettled(
        address indexed witness, address indexed committee, Verdict verdict, uint256 slashed, uint32 reputation
    );

    error InvalidPoolRules(string reason);
    error AlreadyRegistered();
    error NotRegistered();
    error ReputationTooLow(uint32 reputation, uint32 minReputation);
    error StakeTooLow(uint256 stake, uint256 minStake);
    error StakeLocked(uint256 free);
    error NotCommittee();
    error NotEnoughWitnesses(uint256 found, uint256 wanted);

    constructor(IMarket market_, IERC20 token_, PoolRules memory rules) {
        if (rules.dutyStake == 0 || rules.minStake < rules.dutyStake) {
            revert InvalidPoolRules("the minimum stake must cover one duty stake, which is more than 0");
        }
        if (rules.silencePenalty > rules.dutyStake || rules.dissentPenalty > rules.silencePenalty) {
            revert InvalidPoolRules("penalties: dissent <= silence <= duty stake");
        }
        if (rules.minReputation > START_REPUTATION) {
            revert InvalidPoolRules("the minimum reputation must not exceed the starting reputation (100)");
        }
        if (rules.minWitnessPay == 0) revert InvalidPoolRules("a committee seat must pay more than 0");
        market = market_;
        token = token_;
        minStake = rules.minStake;
        dutyStake = rules.dutyStake;
        silencePenalty = rules.silencePenalty;
        dissentPenalty = rules.dissentPenalty;
        minReputation = rules.minReputation;
        minWitnessPay = rules.minWitnessPay;
    }

    /// Register (or come back) with `stake`. A witness who served before comes back with
    /// the reputation it left with, and cannot come back below the minimum.
    function register(uint256 stake) external {
        Witness storage w = witnesses[msg.sender];
        if (w.stake != 0) revert AlreadyRegistered();
        if (stake < minStake) revert StakeTooLow(stake, minStake);
        if (w.position == 0) {
            roster.push(msg.sender);
            w.position = uint32(roster.length);
            w.reputation = START_REPUTATION;
        } else if (w.reputation < minReputation) {
            revert ReputationTooLow(w.reputation, minReputation);
        }
        w.stake = stake;
        w.since = uint64(block.number);
        _collect(msg.sender, stake);
        emit Registered(msg.sender, stake);
    }

    function addStake(uint256 amount) external {
        Witness storage w = _registered(msg.sender);
        w.stake += amount;
        w.since = uint64(block.number);
        _collect(msg.sender, amount);
        emit Staked(msg.sender, amount, w.stake);
    }

    /// Take back free stake; all of it (with no duty running) leaves the pool.
    function withdraw(uint256 amount) external {
        Witness storage w = _registered(msg.sender);
        uint256 free = w.stake - w.locked;
        if (amount > free) revert StakeLocked(free);
        uint256 remaining = w.stake - amount;
        if (remaining != 0 && remaining < minStake) revert StakeTooLow(remaining, minStake);
        w.stake = remaining;
        _pay(msg.sender, amount);
        if (remaining == 0) {
            emit Left(msg.sender, amount);
        } else {
            emit Withdrawn(msg.sender, amount, remaining);
        }
    }

    /// Picks `count` witnesses for the calling committee among the first `frozenSize`
    /// entries, with stakes unchanged since block `committedAt`, and locks a duty stake of
    /// each. First up to 8 count + 32 random picks, each kept with probability reputation /
    /// MAX_REPUTATION; if that leaves seats empty (a pool barely larger than the committee),
    /// a walk through up to SCAN_LIMIT entries from a random place fills them with any
    /// eligible witness, so a pool that can staff the committee does.
    function draw(
        bytes32 seed,
        uint256 count,
        address customer,
        address provider,
        uint256 frozenSize,
        uint64 committedAt
    ) external returns (address[] memory chosen) {
        _requireCommittee();
        if (frozenSize == 0) revert NotEnoughWitnesses(0, count);
        Party memory party = Party(customer, provider, committedAt);
        chosen = new address[](count);
        uint256 found = 0;
        uint256 tries = count * 8 + 32;
        for (uint256 attempt = 0; attempt < tries && found < count; ++attempt) {
            uint256 pick = uint256(keccak256(abi.encode(seed, attempt)));
            address candidate = roster[pick % frozenSize];
            if (!_eligible(candidate, party, chosen, found)) continue;
            if ((pick >> 128) % MAX_REPUTATION >= witnesses[candidate].reputation) continue;
            chosen[found++] = candidate;
        }
        uint256 start = uint256(keccak256(abi.encode(seed, tries)));
        uint256 walk = frozenSize < SCAN_LIMIT ? frozenSize : SCAN_LIMIT;
        for (uint256 step = 0; step < walk && found < count; ++step) {
            address candidate = roster[(start + step) % frozenSize];
            if (_eligible(candidate, party, chosen, found)) chosen[found++] = candidate;
        }
        if (found < count) revert NotEnoughWitnesses(found, count);
        for (uint256 i = 0; i < count; ++i) {
            witnesses[chosen[i]].locked += dutyStake;
            emit OnDuty(chosen[i], msg.sender);
        }
    }

    /// Ends a duty: unlocks its stake, moves the reputation, pays a dissent or silence
    /// penalty to `slashTo` (the committee, which shares it among the witnesses who judged
    /// right), and ends the registration of a witness that fell below the minimum.
    function settleDuty(address witness, Verdict verdict, address slashTo) external returns (uint256 slashed) {
        _requireCommittee();
        Witness storage w = witnesses[witness];
        w.locked -= dutyStake;
        w.duties += 1;
        uint32 reputation = w.reputation;
        if (verdict == Verdict.Matched) {
            reputation = reputation + MATCH_GAIN > MAX_REPUTATION ? MAX_REPUTATION : reputation + MATCH_GAIN;
        } else {
            uint32 loss = verdict == Verdict.Silent ? SILENCE_LOSS : DISSENT_LOSS;
            reputation = reputation > loss ? reputation - loss : 0;
            slashed = verdict == Verdict.Silent ? silencePenalty : dissentPenalty;
            // The duty stake was locked, so the stake still covers the penalty.
            w.stake -= slashed;
        }
        w.reputation = reputation;
        _pay(slashTo, slashed);
        emit DutySettled(witness, msg.sender, verdict, slashed, reputation);
        if (reputation < minReputation && w.locked == 0 && w.stake != 0) {
            // Never drawn again: its stake would only sit here.
            uint256 left = w.stake;
            w.stake = 0;
            _pay(witness, left);
            emit Left(witness, left);
        }
    }

    function rosterSize() external view returns (uint256) {
        return roster.length;
    }

    struct Party {
        address customer;
        address provider;
        uint64 committedAt;
    }

    /// Not a party to the agreement, its stake unchanged since the committee's commitment,
    /// a free duty stake, enough reputation, not yet chosen.
    function _eligible(address candidate, Party memory party, address[] memory chosen, uint256 found)
        private
        view
        returns (bool)
    {
        if (candidate == party.customer || candidate == party.provider) return false;
        Witness storage w = witnesses[candidate];
        if (w.since >= party.committedAt) return false;
        if (w.stake - w.locked < dutyStake || w.reputation < minReputation) return false;
        for (uint256 j = 0; j < found; ++j) {
            if (chosen[j] == candidate) return false;
        }
        return true;
    }

    function _registered(address witness) private view returns (Witness storage w) {
        w = witnesses[witness];
        if (w.stake == 0) revert NotRegistered();
    }

    function _requireCommittee() private view {
        if (market.kindOf(msg.sender) != Kind.Committee) revert NotCommittee();
    }
}
