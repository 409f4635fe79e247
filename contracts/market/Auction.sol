// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {Escrow} from "./Escrow.sol";
import {
    AgreementTerms,
    AuctionRules,
    IAuction,
    IMarket,
    IWitnessPool,
    MarketLimits,
    Mechanism,
    Side
} from "./MarketTypes.sol";

/// @title Auction
/// @notice One auction of the market, in any of AWESOME's eight models (forward or reverse;
/// English, Dutch, first- or second-price sealed bid) for `slots` winners. Settlement
/// offers each winner a service agreement with its fee in escrow.
/// @dev A minimal-proxy clone made by the Market. No step loops over the bidders: the
/// auction keeps only the best `slots` bids (one more for a second price) while bids or
/// reveals arrive, sorted by insertion, so a bid costs the same with 1 or 1,000 others.
/// Ties go to the earlier bid: the earlier transaction in English and Dutch, the earlier
/// commitment in sealed auctions. Every CTK unit this contract takes is counted in `held`
/// and settlement refuses to finish unless all of it has gone out again.
contract Auction is Initializable, Escrow, IAuction {
    enum State {
        Open,
        Settled,
        Cancelled
    }

    /// A bid still in the running, best first.
    struct Standing {
        address bidder;
        uint64 seq; // order of arrival (bids, accepts, commitments): the tie-breaker
        uint256 price;
    }

    address public initiator;
    AuctionRules internal _rules;
    AgreementTerms internal _terms;
    uint64 public openedAt;
    State public state;
    uint64 public bidCount;
    uint64 public revealCount;
    Standing[] internal _standing;
    /// A bidder's sealed bid: two storage slots, written once at the commitment and once
    /// at the reveal (packing seq and revealed saves each bidder about 40,000 gas).
    struct SealedBid {
        bytes32 commitment;
        uint64 seq;
        bool revealed;
    }

    mapping(address bidder => SealedBid) public sealedBids;
    mapping(bytes32 commitment => bool) public commitmentTaken;

    event BidPlaced(address indexed bidder, uint256 price, uint64 seq);
    event BidDisplaced(address indexed bidder, uint256 price, uint256 refund);
    event Accepted(address indexed bidder, uint256 price, uint64 seq);
    event Committed(address indexed bidder, bytes32 commitment, uint64 seq);
    event Revealed(address indexed bidder, uint256 price, bool standing);
    event Won(address indexed bidder, address indexed agreement, uint256 fee);
    event Settled(uint256 winners, uint256 clearingPrice, uint256 forfeited, uint256 returnedToInitiator);
    event Cancelled(uint256 returnedToInitiator);

    error InvalidRules(string reason);
    error WrongMechanism();
    error NotOpen();
    error BiddingClosed(uint64 biddingEnds);
    error BiddingNotClosed(uint64 biddingEnds);
    error RevealClosed(uint64 revealEnds);
    error StillRunning();
    error OutsideReserve(uint256 price, uint256 reserve);
    error BidNotBetter(uint256 worstStanding, uint256 increment);
    error AlreadyStanding();
    error SoldOut();
    error PriceMoved(uint256 price);
    error EmptyCommitment();
    error AlreadyCommitted();
    error CommitmentTaken();
    error NoCommitment();
    error AlreadyRevealed();
    error WrongReveal();
    error NotInitiator();
    error HasBids();

    constructor() {
        _disableInitializers();
    }

    /// @return escrow what the initiator puts in now: a reverse auction's budget
    /// (`slots` x (reserve + witness fee)), a forward auction's provider deposits.
    function initialize(
        IMarket market_,
        address initiator_,
        AuctionRules calldata rules_,
        AgreementTerms calldata terms_
    ) external initializer returns (uint256 escrow) {
        _checkRules(rules_, terms_);
        MarketLimits.checkTerms(terms_, IWitnessPool(market_.pool()).minWitnessPay());
        market = market_;
        token = market_.token();
        initiator = initiator_;
        _rules = rules_;
        _terms = terms_;
        openedAt = uint64(block.timestamp);
        escrow = rules_.side == Side.Reverse
            ? uint256(rules_.slots) * (rules_.reserve + terms_.witnessFee)
            : uint256(rules_.slots) * terms_.providerDeposit;
        held = escrow;
    }

    // ---- English -------------------------------------------------------------------

    /// Bid `price` (forward: pay it, plus the witness fee; reverse: offer to serve for it,
    /// posting the provider's deposit). Refunded at once when a better bid displaces it.
    function bid(uint256 price) external {
        _requireBidding(Mechanism.English);
        _requireWithinReserve(price);
        if (_isStanding(msg.sender)) revert AlreadyStanding();
        uint256 count = _standing.length;
        if (count == _rules.slots) {
            uint256 worst = _standing[count - 1].price;
            uint256 step = _rules.increment;
            bool beats = _rules.side == Side.Forward
                ? price > worst && price - worst >= step
                : worst > price && worst - price >= step;
            if (!beats) revert BidNotBetter(worst, step);
        }
        uint64 seq = ++bidCount;
        _collect(msg.sender, _bidEscrow(price));
        _insert(Standing(msg.sender, seq, price), _rules.slots);
        emit BidPlaced(msg.sender, price, seq);
    }

    // ---- Dutch ---------------------------------------------------------------------

    /// Take a slot at the clock's price now. `limit` guards against the clock having moved
    /// while the transaction waited: forward, the most you pay; reverse, the least you take.
    function accept(uint256 limit) external {
        _requireBidding(Mechanism.Dutch);
        if (_standing.length == _rules.slots) revert SoldOut();
        if (_isStanding(msg.sender)) revert AlreadyStanding();
        uint256 price = clockPrice();
        if (_rules.side == Side.Forward ? price > limit : price < limit) revert PriceMoved(price);
        uint64 seq = ++bidCount;
        _collect(msg.sender, _bidEscrow(price));
        _standing.push(Standing(msg.sender, seq, price));
        emit Accepted(msg.sender, price, seq);
    }

    /// The Dutch clock: linear from `startPrice` at opening to `reserve` at `biddingEnds`,
    /// rounded toward the start price (the initiator's side).
    function clockPrice() public view returns (uint256) {
        if (_rules.mechanism != Mechanism.Dutch) revert WrongMechanism();
        uint256 ends = _rules.biddingEnds;
        uint256 elapsed = Math.min(block.timestamp, ends) - openedAt;
        uint256 duration = ends - openedAt;
        uint256 start = _rules.startPrice;
        uint256 reserve = _rules.reserve;
        return start > reserve
            ? start - Math.mulDiv(start - reserve, elapsed, duration)
            : start + Math.mulDiv(reserve - start, elapsed, duration);
    }

    // ---- Sealed bids -----------------------------------------------------------------

    /// The commitment to a sealed bid: bound to the chain, this auction and the bidder, so
    /// a copy of it is worthless to anyone else.
    function commitment(address bidder, uint256 price, bytes32 salt) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), bidder, price, salt));
    }

    /// Commit to a sealed bid, posting the bid deposit: it comes back with the reveal and
    /// is forfeited without one, shared by the winners. A commitment already made
    /// in this auction is refused: a copy is worthless anyway (it names its bidder and
    /// could never be revealed by the copier), and refusing it says so at once. Someone
    /// who sends a copy ahead of the original to block it pays a deposit it cannot get
    /// back; the original commits again with a new salt (`watcher market commit` draws
    /// one each time).
    function commit(bytes32 sealedBid) external {
        _requireSealed();
        _requireBiddingOpen();
        if (sealedBid == bytes32(0)) revert EmptyCommitment();
        if (sealedBids[msg.sender].commitment != bytes32(0)) revert AlreadyCommitted();
        if (commitmentTaken[sealedBid]) revert CommitmentTaken();
        commitmentTaken[sealedBid] = true;
        uint64 seq = ++bidCount;
        sealedBids[msg.sender] = SealedBid(sealedBid, seq, false);
        _collect(msg.sender, _rules.bidDeposit);
        emit Committed(msg.sender, sealedBid, seq);
    }

    /// Open a sealed bid after bidding closed. The deposit comes back; a bid among the best
    /// so far puts in its escrow (forward: the price and the witness fee; reverse: the
    /// provider's deposit), and a bid it pushes out is refunded. A bid outside the reserve
    /// is opened and takes no part.
    function reveal(uint256 price, bytes32 salt) external {
        _requireSealed();
        if (state != State.Open) revert NotOpen();
        if (block.timestamp <= _rules.biddingEnds) revert BiddingNotClosed(_rules.biddingEnds);
        if (block.timestamp > _rules.revealEnds) revert RevealClosed(_rules.revealEnds);
        SealedBid storage sealedBid = sealedBids[msg.sender];
        if (sealedBid.commitment == bytes32(0)) revert NoCommitment();
        if (sealedBid.revealed) revert AlreadyRevealed();
        if (commitment(msg.sender, price, salt) != sealedBid.commitment) revert WrongReveal();
        sealedBid.revealed = true;
        ++revealCount;
        _pay(msg.sender, _rules.bidDeposit);
        bool stands = false;
        if (_withinReserve(price)) {
            uint256 capacity = _capacity();
            Standing memory entry = Standing(msg.sender, sealedBid.seq, price);
            if (_position(entry) < capacity) {
                _collect(msg.sender, _bidEscrow(price));
                _insert(entry, capacity);
                stands = true;
            }
        }
        emit Revealed(msg.sender, price, stands);
    }

    // ---- Settlement ------------------------------------------------------------------

    /// Anyone may settle once the auction is over: each winner is offered a service
    /// agreement holding its fee, the witness fee and the provider's deposit; everything
    /// else goes back to whom it came from. Unrevealed deposits are shared by the winners,
    /// who cannot be had for free: not the initiator, whose sybil could otherwise set a
    /// second price for nothing, and not every revealer, since a sybil's reveal costs
    /// nothing. Only when nobody won do they go to the initiator, with the rounding.
    function settle() external {
        if (state != State.Open) revert NotOpen();
        if (!isOver()) revert StillRunning();
        state = State.Settled;
        uint256 slots = _rules.slots;
        uint256 winners = Math.min(slots, _standing.length);
        bool uniform = _rules.mechanism == Mechanism.SecondPriceSealed;
        uint256 clearing = uniform && _standing.length > slots ? _standing[slots].price : _rules.reserve;
        bool reverse = _rules.side == Side.Reverse;
        uint256 witnessFee = _terms.witnessFee;
        uint256 deposit = _terms.providerDeposit;
        uint256 forfeited = _isSealed() ? uint256(bidCount - revealCount) * _rules.bidDeposit : 0;
        uint256 forfeitShare = winners == 0 ? 0 : forfeited / winners;
        uint256 toInitiator = forfeited - forfeitShare * winners;
        for (uint256 i = 0; i < winners; ++i) {
            Standing memory winner = _standing[i];
            uint256 fee = uniform ? clearing : winner.price;
            address agreement;
            if (reverse) {
                // The customer's budget held the reserve for this slot: the rest goes back.
                toInitiator += _rules.reserve - fee;
                agreement = market.offerAgreement(initiator, winner.bidder, fee, _terms);
                _pay(winner.bidder, forfeitShare);
            } else {
                // The winner put in its own price; a second price may be lower.
                _pay(winner.bidder, winner.price - fee + forfeitShare);
                agreement = market.offerAgreement(winner.bidder, initiator, fee, _terms);
            }
            _pay(agreement, fee + witnessFee + deposit);
            emit Won(winner.bidder, agreement, fee);
        }
        if (_standing.length > slots) {
            Standing memory runnerUp = _standing[slots];
            _pay(runnerUp.bidder, _bidEscrow(runnerUp.price));
        }
        uint256 unsold = slots - winners;
        toInitiator += unsold * (reverse ? _rules.reserve + witnessFee : deposit);
        _pay(initiator, toInitiator);
        _requireEmpty();
        emit Settled(winners, uniform ? clearing : 0, forfeited, toInitiator);
    }

    /// The initiator may call off an auction nobody has bid in yet.
    function cancel() external {
        if (msg.sender != initiator) revert NotInitiator();
        if (state != State.Open) revert NotOpen();
        if (bidCount != 0) revert HasBids();
        state = State.Cancelled;
        uint256 escrow = held;
        _pay(initiator, escrow);
        emit Cancelled(escrow);
    }

    // ---- Views -----------------------------------------------------------------------

    function rules() external view returns (AuctionRules memory) {
        return _rules;
    }

    function terms() external view returns (AgreementTerms memory) {
        return _terms;
    }

    /// The bids still in the running, best first (the winners so far, plus the runner-up
    /// that sets a second price).
    function standing() external view returns (Standing[] memory) {
        return _standing;
    }

    function isOver() public view returns (bool) {
        if (_isSealed()) {
            // Everyone who committed has revealed: nothing is left to wait for.
            return block.timestamp > _rules.revealEnds
                || (block.timestamp > _rules.biddingEnds && revealCount == bidCount);
        }
        if (_rules.mechanism == Mechanism.Dutch && _standing.length == _rules.slots) return true;
        return block.timestamp > _rules.biddingEnds;
    }

    // ---- Internals -------------------------------------------------------------------

    function _checkRules(AuctionRules calldata rules_, AgreementTerms calldata terms_) private view {
        if (rules_.slots == 0 || rules_.slots > MarketLimits.MAX_SLOTS) revert InvalidRules("slots must be 1 to 10");
        if (rules_.biddingEnds <= block.timestamp) revert InvalidRules("bidding must end in the future");
        if (rules_.reserve == 0) revert InvalidRules("the reserve price must be more than 0");
        bool sealedAuction =
            rules_.mechanism == Mechanism.FirstPriceSealed || rules_.mechanism == Mechanism.SecondPriceSealed;
        if (sealedAuction) {
            if (rules_.revealEnds <= rules_.biddingEnds) revert InvalidRules("revealing must end after bidding");
            // A deposit worth losing: a sybil's unrevealed bid must cost something.
            if (rules_.bidDeposit == 0 || rules_.bidDeposit < rules_.reserve / 100) {
                revert InvalidRules("a sealed auction's bid deposit is at least 1% of the reserve");
            }
        } else if (rules_.revealEnds != 0 || rules_.bidDeposit != 0) {
            revert InvalidRules("only sealed auctions have a reveal end and a bid deposit");
        }
        if (rules_.side == Side.Reverse && terms_.providerDeposit == 0) {
            // Without one, filling every slot and never confirming would cost nothing.
            revert InvalidRules("a reverse auction needs a provider deposit");
        }
        if (rules_.mechanism == Mechanism.English) {
            if (rules_.increment == 0) revert InvalidRules("an English auction needs an increment");
            if (rules_.side == Side.Reverse && rules_.increment >= rules_.reserve) {
                revert InvalidRules("a reverse English increment must be below the reserve");
            }
        } else if (rules_.increment != 0) {
            revert InvalidRules("only English auctions have an increment");
        }
        if (rules_.mechanism == Mechanism.Dutch) {
            bool rightWay = rules_.side == Side.Forward
                ? rules_.startPrice > rules_.reserve
                : rules_.startPrice < rules_.reserve && rules_.startPrice > 0;
            if (!rightWay) {
                revert InvalidRules("a Dutch clock starts above the reserve (forward) or below it, above 0 (reverse)");
            }
        } else if (rules_.startPrice != 0) {
            revert InvalidRules("only Dutch auctions have a start price");
        }
    }

    function _isSealed() private view returns (bool) {
        return _rules.mechanism == Mechanism.FirstPriceSealed || _rules.mechanism == Mechanism.SecondPriceSealed;
    }

    function _requireSealed() private view {
        if (!_isSealed()) revert WrongMechanism();
    }

    function _requireBidding(Mechanism mechanism) private view {
        if (_rules.mechanism != mechanism) revert WrongMechanism();
        _requireBiddingOpen();
    }

    function _requireBiddingOpen() private view {
        if (state != State.Open) revert NotOpen();
        if (block.timestamp > _rules.biddingEnds) revert BiddingClosed(_rules.biddingEnds);
    }

    function _withinReserve(uint256 price) private view returns (bool) {
        return _rules.side == Side.Forward ? price >= _rules.reserve : price > 0 && price <= _rules.reserve;
    }

    function _requireWithinReserve(uint256 price) private view {
        if (!_withinReserve(price)) revert OutsideReserve(price, _rules.reserve);
    }

    /// What a standing bid holds here: a forward bidder's price and witness fee, or a
    /// reverse bidder's (a provider's) deposit.
    function _bidEscrow(uint256 price) private view returns (uint256) {
        return _rules.side == Side.Forward ? price + _terms.witnessFee : _terms.providerDeposit;
    }

    function _capacity() private view returns (uint256) {
        return uint256(_rules.slots) + (_rules.mechanism == Mechanism.SecondPriceSealed ? 1 : 0);
    }

    function _isStanding(address bidder) private view returns (bool) {
        uint256 count = _standing.length;
        for (uint256 i = 0; i < count; ++i) {
            if (_standing[i].bidder == bidder) return true;
        }
        return false;
    }

    function _better(Standing memory a, Standing memory b) private view returns (bool) {
        if (a.price == b.price) return a.seq < b.seq;
        return _rules.side == Side.Forward ? a.price > b.price : a.price < b.price;
    }

    /// Where `entry` would go among the standing bids (their count if after all of them).
    function _position(Standing memory entry) private view returns (uint256 at) {
        at = _standing.length;
        while (at > 0 && _better(entry, _standing[at - 1])) --at;
    }

    /// Puts `entry` in its place, pushing out (and refunding) the worst when full.
    function _insert(Standing memory entry, uint256 capacity) private {
        uint256 at = _position(entry);
        uint256 count = _standing.length;
        if (count == capacity) {
            Standing memory dropped = _standing[count - 1];
            _standing.pop();
            --count;
            uint256 refund = _bidEscrow(dropped.price);
            _pay(dropped.bidder, refund);
            emit BidDisplaced(dropped.bidder, dropped.price, refund);
        }
        _standing.push(entry);
        for (uint256 i = count; i > at; --i) {
            _standing[i] = _standing[i - 1];
        }
        _standing[at] = entry;
    }
}
