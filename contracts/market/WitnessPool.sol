// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IMarket, IWitnessPool, Kind, Verdict} from "./MarketTypes.sol";

/// The market's rules for witnesses, fixed when it is deployed.
struct PoolRules {
    uint256 minStake; // to register, and to stay registered after a withdrawal
    uint256 dutyStake; // locked for each committee a witness sits on
    uint256 silencePenalty; // lost for a duty with no revealed report (at most dutyStake)
    uint256 dissentPenalty; // lost for a report against the outcome (at most silencePenalty)
    uint32 minReputation; // below it a witness is no longer drawn
}

/// @title WitnessPool
/// @notice Where witnesses register with a stake, and the one place their stake and
/// reputation change. Committees draw from it by sortition: a draw picks a registered
/// witness uniformly from the seed, skips the agreement's own customer and provider and
/// anyone without a free duty stake or below `minReputation`, and keeps the pick with
/// probability reputation / MAX_REPUTATION, so selection is weighted by reputation
/// (registration order plays no part, unlike AWESOME's first come, first served).
/// @dev A draw tries at most 8 N + 32 random picks (rejection sampling) and then walks at
/// most SCAN_LIMIT entries: its gas is bounded by the committee's size, not the pool's.
contract WitnessPool is IWitnessPool {
    using SafeERC20 for IERC20;

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
        uint32 position; // index in the roster + 1; 0: not registered
        uint32 duties; // committees sat on and judged
    }

    IMarket public immutable market;
    IERC20 public immutable token;
    uint256 public immutable minStake;
    uint256 public immutable dutyStake;
    uint256 public immutable silencePenalty;
    uint256 public immutable dissentPenalty;
    uint32 public immutable minReputation;

    mapping(address witness => Witness) public witnesses;
    address[] public roster;
    /// CTK units staked here, by the pool's own book.
    uint256 public held;

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
        market = market_;
        token = token_;
        minStake = rules.minStake;
        dutyStake = rules.dutyStake;
        silencePenalty = rules.silencePenalty;
        dissentPenalty = rules.dissentPenalty;
        minReputation = rules.minReputation;
    }

    function register(uint256 stake) external {
        Witness storage w = witnesses[msg.sender];
        if (w.position != 0) revert AlreadyRegistered();
        if (stake < minStake) revert StakeTooLow(stake, minStake);
        roster.push(msg.sender);
        w.position = uint32(roster.length);
        w.stake = stake;
        // A witness who served before comes back with the reputation it left with.
        if (w.duties == 0) w.reputation = START_REPUTATION;
        _collect(msg.sender, stake);
        emit Registered(msg.sender, stake);
    }

    function addStake(uint256 amount) external {
        Witness storage w = _registered(msg.sender);
        w.stake += amount;
        _collect(msg.sender, amount);
        emit Staked(msg.sender, amount, w.stake);
    }

    /// Take back free stake; all of it (with no duty running) leaves the pool. Reputation
    /// is kept, so leaving and registering again does not wash a bad record.
    function withdraw(uint256 amount) external {
        Witness storage w = _registered(msg.sender);
        uint256 free = w.stake - w.locked;
        if (amount > free) revert StakeLocked(free);
        uint256 remaining = w.stake - amount;
        if (remaining == 0) {
            _leave(msg.sender, w);
        } else {
            if (remaining < minStake) revert StakeTooLow(remaining, minStake);
            w.stake = remaining;
            emit Withdrawn(msg.sender, amount, remaining);
        }
        _pay(msg.sender, amount);
    }

    /// Picks `count` witnesses for the calling committee and locks a duty stake of each.
    /// First up to 8 count + 32 random picks, each kept with probability reputation /
    /// MAX_REPUTATION; if that leaves seats empty (a pool barely larger than the committee),
    /// a walk through up to SCAN_LIMIT roster entries from a random place fills them with
    /// any eligible witness, so a pool that can staff the committee does.
    function draw(bytes32 seed, uint256 count, address customer, address provider)
        external
        returns (address[] memory chosen)
    {
        _requireCommittee();
        uint256 size = roster.length;
        if (size == 0) revert NotEnoughWitnesses(0, count);
        chosen = new address[](count);
        uint256 found = 0;
        uint256 tries = count * 8 + 32;
        for (uint256 attempt = 0; attempt < tries && found < count; ++attempt) {
            uint256 pick = uint256(keccak256(abi.encode(seed, attempt)));
            address candidate = roster[pick % size];
            if (!_eligible(candidate, customer, provider, chosen, found)) continue;
            if ((pick >> 128) % MAX_REPUTATION >= witnesses[candidate].reputation) continue;
            chosen[found++] = candidate;
        }
        uint256 start = uint256(keccak256(abi.encode(seed, tries)));
        uint256 walk = size < SCAN_LIMIT ? size : SCAN_LIMIT;
        for (uint256 step = 0; step < walk && found < count; ++step) {
            address candidate = roster[(start + step) % size];
            if (_eligible(candidate, customer, provider, chosen, found)) chosen[found++] = candidate;
        }
        if (found < count) revert NotEnoughWitnesses(found, count);
        for (uint256 i = 0; i < count; ++i) {
            witnesses[chosen[i]].locked += dutyStake;
            emit OnDuty(chosen[i], msg.sender);
        }
    }

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
    }

    function rosterSize() external view returns (uint256) {
        return roster.length;
    }

    /// Not a party to the agreement, a free duty stake, enough reputation, not yet chosen.
    function _eligible(address candidate, address customer, address provider, address[] memory chosen, uint256 found)
        private
        view
        returns (bool)
    {
        if (candidate == customer || candidate == provider) return false;
        Witness storage w = witnesses[candidate];
        if (w.stake - w.locked < dutyStake || w.reputation < minReputation) return false;
        for (uint256 j = 0; j < found; ++j) {
            if (chosen[j] == candidate) return false;
        }
        return true;
    }

    function _registered(address witness) private view returns (Witness storage w) {
        w = witnesses[witness];
        if (w.position == 0) revert NotRegistered();
    }

    function _leave(address witness, Witness storage w) private {
        uint256 index = w.position - 1;
        address last = roster[roster.length - 1];
        roster[index] = last;
        witnesses[last].position = uint32(index + 1);
        roster.pop();
        uint256 amount = w.stake;
        w.stake = 0;
        w.position = 0;
        emit Left(witness, amount);
    }

    function _requireCommittee() private view {
        if (market.kindOf(msg.sender) != Kind.Committee) revert NotCommittee();
    }

    function _collect(address from, uint256 amount) private {
        if (amount == 0) return;
        held += amount;
        market.collect(from, amount);
    }

    function _pay(address to, uint256 amount) private {
        if (amount == 0) return;
        held -= amount;
        token.safeTransfer(to, amount);
    }
}
