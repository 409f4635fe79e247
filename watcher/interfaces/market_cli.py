"""`watcher market`: the on-chain marketplace from the command line, for each of its roles.

- operator: `deploy` (the Market factory, its clone implementations and witness pool)
- initiator (a customer buying, reverse; a provider selling, forward): `open`, `settle`,
  `cancel`
- bidder: `bid` (English), `accept` (Dutch), `commit` then `reveal` (sealed bids)
- provider: `confirm` the agreement it won
- witness: `register`, `stake`, `withdraw`, `report` then `reveal`, `claim`
- anyone: `show`, `draw` (a committee, once its seed block is mined), `finalize`
  (the committee's judgment, which pays the customer's compensation)

Every command signs with the options of `watcher pay` and checks balances and allowances
before it sends anything; the contracts' refusals come back as one line naming the rule.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from watcher.domain.amounts import format_amount
from watcher.domain.errors import InvalidInput, UserError
from watcher.interfaces.cli import (
    CHAIN,
    CONTEXT,
    SIGNING,
    AddressType,
    AmountType,
    emit_json,
    run_async,
    setting_options,
    settings_from,
    signing_context,
)

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

    from watcher.adapters.chain.connection import Chain
    from watcher.adapters.chain.market import Market, Sent
    from watcher.adapters.chain.signer import Signer
    from watcher.runtime.config import Settings

MARKET = (*SIGNING, "token_address", "market_address")
AMOUNT_CONTEXT = dict(CONTEXT, ignore_unknown_options=True)


class DurationType(click.ParamType[int]):
    """Whole seconds from "90s", "15m", "1h" or "7d"."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        from watcher.domain.leases import parse_duration

        try:
            return int(parse_duration(str(value), "a duration").total_seconds())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class PercentType(click.ParamType[int]):
    """A share of the fee as basis points, from "30%" or "30" (0 to 100, two decimals)."""

    name = "PERCENT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().removesuffix("%").strip()
        whole, _, fraction = text.partition(".")
        if not whole.isascii() or not whole.isdigit() or not (fraction == "" or fraction.isdigit()):
            self.fail(f"must be a percentage like 30% or 12.5%, got {value!r}", param, ctx)
        if len(fraction) > 2:
            self.fail(f"at most two decimals, got {value!r}", param, ctx)
        bps = int(whole) * 100 + int((fraction + "00")[:2])
        if bps > 10_000:
            self.fail(f"must be at most 100%, got {value!r}", param, ctx)
        return bps


DURATION = DurationType()
PERCENT = PercentType()


@dataclass
class Session:
    chain: Chain
    market: Market
    _signer: Signer | None
    settings: Settings

    @property
    def signer(self) -> Signer:
        assert self._signer is not None, "a reading command asked for a signer"
        return self._signer

    @property
    def tx_timeout(self) -> float:
        return self.settings.tx_timeout


@asynccontextmanager
async def market_session(settings: Settings, signing: bool = True) -> AsyncIterator[Session]:
    from watcher.adapters.chain.connection import connect
    from watcher.adapters.chain.market import Market
    from watcher.adapters.chain.token import CloudToken

    address = settings.require_market_address()
    token_address = settings.require_token_address()
    async with connect(settings.rpc_url, settings.rpc_timeout) as chain:
        if signing:
            token, signer = await signing_context(settings, chain)
        else:
            token, signer = await CloudToken.at(chain, token_address), None
        yield Session(chain, await Market.at(chain, address, token), signer, settings)


def in_session(
    options: dict[str, Any], action: Callable[[Session], Awaitable[None]], signing: bool = True
) -> None:
    """Run one command's `action` with the market, the signer (unless it only reads) and
    the settings it names; a contract's refusal is said in words, with dates."""
    from watcher.domain.errors import ChainError

    settings = settings_from(options)

    async def go() -> None:
        async with market_session(settings, signing) as session:
            await action(session)

    try:
        run_async(go())
    except ChainError as exc:
        raise ChainError(humane(str(exc))) from None


# What the contracts' refusals mean, for the ones a person runs into; `{name}` is an
# argument of the error, `{name:when}` one that is a time.
REFUSALS = {
    "BiddingClosed": "bidding closed at {biddingEnds:when}",
    "BiddingNotClosed": "bidding is open until {biddingEnds:when}: reveal after it",
    "RevealClosed": "revealing closed at {revealEnds:when}",
    "StillRunning": "the auction is not over yet: see 'watcher market show' for when it is",
    "NotOpen": "the auction is no longer open (settled or cancelled)",
    "WrongMechanism": "this auction does not take that kind of bid: see 'watcher market show'",
    "AlreadyStanding": "you already hold a standing bid in this auction",
    "SoldOut": "every slot of this Dutch auction is taken",
    "AlreadyCommitted": "you have already committed a bid in this auction",
    "CommitmentTaken": "this commitment was already made (someone sent a copy first): "
    "commit again, a new salt is drawn",
    "WrongReveal": "the price and salt kept on this machine do not open this commitment",
    "AlreadyRevealed": "you have already revealed",
    "NotInitiator": "only the auction's initiator may cancel it",
    "HasBids": "the auction has bids: it can no longer be cancelled",
    "NotProvider": "only the agreement's provider may confirm it",
    "NotOffered": "the agreement no longer waits for confirmation (confirmed or cancelled)",
    "ConfirmationClosed": "the time to confirm ended at {confirmBy:when}",
    "ConfirmationOpen": "the provider may still confirm until {confirmBy:when}: cancel after it",
    "AlreadyDrawn": "the committee is already drawn",
    "ReportingClosed": "reporting closed at {commitEnds:when}",
    "RevealNotOpen": "reports are revealed after {commitEnds:when} and until {revealEnds:when}",
    "NotOver": "the committee judges after {revealEnds:when}",
    "AlreadyFinalized": "the committee has already judged",
    "AlreadyRegistered": "you are already a registered witness: add to your stake with "
    "'watcher market stake'",
    "NotRegistered": "you are not a registered witness",
}


def humane(message: str) -> str:
    """`the contract refused the transaction: BiddingClosed(biddingEnds=1796331584)` in
    words: `... bidding closed at 2026-12-03 20:00:00 UTC (BiddingClosed)`."""
    import re

    match = re.search(r"the contract refused the transaction: (\w+)\(([^)]*)\)$", message)
    if match is None or match[1] not in REFUSALS:
        return message
    args = dict(part.split("=", 1) for part in match[2].split(", ") if "=" in part)

    def fill(field: re.Match[str]) -> str:
        name, _, kind = field[1].partition(":")
        value = args.get(name, "?")
        return when(int(value)) if kind == "when" and value.isdigit() else value

    text = re.sub(r"\{(\w+(?::when)?)\}", fill, REFUSALS[match[1]])
    return f"the contract refused the transaction: {text} ({match[1]})"


def when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ctk(amount: int) -> str:
    return f"{format_amount(amount)} CTK"


def mined(sent: Sent) -> str:
    return f"tx {sent.tx_hash}, block {sent.block_number}, {sent.gas_used:,} gas"


def sent_record(sent: Sent, **extra: Any) -> dict[str, Any]:
    return {
        "tx_hash": sent.tx_hash,
        "block_number": sent.block_number,
        "gas_used": sent.gas_used,
        "events": [
            {"name": e.name, "address": e.address, "log_index": e.log_index, "args": _plain(e.args)}
            for e in sent.events
        ],
        **extra,
    }


def _plain(value: Any) -> Any:
    """JSON-safe: bytes as 0x-hex, amounts and other big integers as strings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) >= 2**53 else value
    return str(value)


@click.group(context_settings=CONTEXT)
def market() -> None:
    """The on-chain marketplace (after AWESOME): auctions, service agreements with their
    fee in escrow, and witness committees that judge them."""


@market.command("deploy", context_settings=CONTEXT)
@click.option(
    "--min-stake",
    type=AmountType(),
    default="100",
    show_default=True,
    help="CTK a witness stakes to register.",
)
@click.option(
    "--duty-stake",
    type=AmountType(),
    default="50",
    show_default=True,
    help="CTK locked per committee seat.",
)
@click.option(
    "--silence-penalty",
    type=AmountType(),
    default="20",
    show_default=True,
    help="CTK lost for a duty with no revealed report.",
)
@click.option(
    "--dissent-penalty",
    type=AmountType(),
    default="10",
    show_default=True,
    help="CTK lost for a report against the outcome.",
)
@click.option(
    "--min-reputation",
    type=click.IntRange(0, 100),
    default=60,
    show_default=True,
    help="Below it (of 200; witnesses start at 100) a witness is not drawn.",
)
@click.option(
    "--min-witness-pay",
    type=AmountType(),
    default="1",
    show_default=True,
    help="CTK an agreement pays at least per committee seat.",
)
@setting_options(*SIGNING, "token_address")
def deploy(
    min_stake: int,
    duty_stake: int,
    silence_penalty: int,
    dissent_penalty: int,
    min_reputation: int,
    min_witness_pay: int,
    **options: Any,
) -> None:
    """Deploy a Market for the CTK token (operator) and print its address."""
    settings = settings_from(options)
    from watcher.domain.market import PoolRules

    rules = PoolRules(
        min_stake, duty_stake, silence_penalty, dissent_penalty, min_reputation, min_witness_pay
    )

    async def go() -> None:
        from watcher.adapters.chain.connection import connect
        from watcher.adapters.chain.market import Market

        settings.require_token_address()
        async with connect(settings.rpc_url, settings.rpc_timeout) as chain:
            token, signer = await signing_context(settings, chain)
            done = await Market.deploy(chain, signer, token.address, rules, settings.tx_timeout)
        click.echo(done.address)
        click.echo(
            f"deployed the Market for {token.address} on chain {done.chain_id} in block "
            f"{done.block_number} (witness pool {done.pool}, {done.gas_used:,} gas in all); "
            f"export WATCHER_MARKET_ADDRESS={done.address}",
            err=True,
        )

    run_async(go())


@market.command("open", context_settings=AMOUNT_CONTEXT)
@click.option(
    "--side",
    type=click.Choice(["forward", "reverse"]),
    required=True,
    help="reverse: you buy, providers bid down; forward: you sell, customers bid up.",
)
@click.option(
    "--model",
    type=click.Choice(["english", "dutch", "first-price", "second-price"]),
    required=True,
    help="The auction model.",
)
@click.option(
    "--slots",
    type=click.IntRange(1, 10),
    default=1,
    show_default=True,
    help="Winners, each with its own agreement.",
)
@click.option(
    "--reserve",
    type=AmountType(),
    required=True,
    help="CTK: the most paid (reverse) or the least sold at (forward), per slot.",
)
@click.option(
    "--start-price", type=AmountType(), default=None, help="Dutch: where the price clock starts."
)
@click.option(
    "--increment",
    type=AmountType(),
    default=None,
    help="English: how much a bid must beat the worst standing one by.",
)
@click.option(
    "--bid-deposit",
    type=AmountType(),
    default=None,
    help="Sealed: CTK posted with a commitment, forfeited without a reveal.",
)
@click.option(
    "--bidding", type=DURATION, default="1h", show_default=True, help="How long bidding stays open."
)
@click.option(
    "--revealing",
    type=DURATION,
    default="1h",
    show_default=True,
    help="Sealed: how long bids may be revealed after bidding.",
)
@click.option(
    "--terms",
    "terms_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The SLA's text; its keccak256 goes on chain.",
)
@click.option(
    "--service",
    type=DURATION,
    default="30d",
    show_default=True,
    help="The service window, from the provider's confirmation.",
)
@click.option(
    "--confirm-within",
    type=DURATION,
    default="1h",
    show_default=True,
    help="How long a winner has to confirm.",
)
@click.option(
    "--reports-within",
    type=DURATION,
    default="1h",
    show_default=True,
    help="Witnesses commit reports up to this long after the window.",
)
@click.option(
    "--report-reveals-within",
    type=DURATION,
    default="1h",
    show_default=True,
    help="Then reveal them within this long.",
)
@click.option(
    "--compensation",
    type=PERCENT,
    default="30%",
    show_default=True,
    help="Of the fee, back to the customer on a confirmed violation.",
)
@click.option(
    "--witnesses",
    type=click.IntRange(3, 21),
    default=3,
    show_default=True,
    help="N: the committee's size.",
)
@click.option(
    "--quorum",
    type=click.IntRange(2, 20),
    default=2,
    show_default=True,
    help="M: reports that confirm a violation (N/2 < M < N).",
)
@click.option(
    "--deposit",
    type=AmountType(),
    default=None,
    help="CTK the provider posts per agreement, forfeited on a no-show.",
)
@click.option(
    "--witness-fee",
    type=AmountType(),
    default=None,
    help="CTK the customer pays per agreement to its witnesses.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the transaction as JSON.")
@setting_options(*MARKET)
def open_auction(
    side: str,
    model: str,
    slots: int,
    reserve: int,
    start_price: int | None,
    increment: int | None,
    bid_deposit: int | None,
    bidding: int,
    revealing: int,
    terms_file: Path,
    service: int,
    confirm_within: int,
    reports_within: int,
    report_reveals_within: int,
    compensation: int,
    witnesses: int,
    quorum: int,
    deposit: int | None,
    witness_fee: int | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Open an auction (initiator): your escrow goes in now, a reverse auction's budget
    (slots x (reserve + witness fee)) or a forward one's provider deposits."""
    from eth_utils.crypto import keccak

    from watcher.domain.market import (
        AgreementTerms,
        AuctionRules,
        initiator_escrow,
        parse_mechanism,
        parse_side,
    )

    try:
        text = terms_file.expanduser().read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the terms file {terms_file}: {exc.strerror}") from None
    if not text.strip():
        raise InvalidInput(f"the terms file {terms_file} is empty")
    mechanism = parse_mechanism(model)

    async def go(session: Session) -> None:
        _, now = await session.market.head()
        rules = AuctionRules(
            side=parse_side(side),
            mechanism=mechanism,
            slots=slots,
            bidding_ends=now + bidding,
            reveal_ends=now + bidding + revealing if mechanism.sealed else 0,
            reserve=reserve,
            start_price=start_price or 0,
            increment=increment or 0,
            bid_deposit=bid_deposit or 0,
        )
        terms = AgreementTerms(
            terms_hash=keccak(text),
            service_seconds=service,
            confirm_seconds=confirm_within,
            report_seconds=reports_within,
            reveal_seconds=report_reveals_within,
            compensation_bps=compensation,
            witnesses=witnesses,
            quorum=quorum,
            provider_deposit=deposit or 0,
            witness_fee=witness_fee or 0,
        )
        sent = await session.market.open_auction(session.signer, rules, terms, session.tx_timeout)
        auction = sent.event("AuctionOpened").args["auction"]
        if as_json:
            emit_json(sent_record(sent, auction=auction))
            return
        click.echo(auction)
        click.echo(
            f"opened a {side} {model} auction for {slots} slot(s), reserve {ctk(reserve)}, "
            f"bidding until {when(rules.bidding_ends)}"
            + (f", revealing until {when(rules.reveal_ends)}" if mechanism.sealed else "")
            + f"; {ctk(initiator_escrow(rules, terms))} in escrow ({mined(sent)})",
            err=True,
        )

    in_session(options, go)


@market.command("show", context_settings=CONTEXT)
@click.argument("address", type=AddressType())
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@setting_options(*CHAIN, "token_address", "market_address")
def show(address: str, as_json: bool, **options: Any) -> None:
    """Show an auction, agreement or committee of the market, a witness's record, or the
    market itself; says what happens next. Reads only: no key needed."""

    async def go(session: Session) -> None:
        from watcher.domain.market import Kind

        target = _checksum(address)
        market = session.market
        found = await market.kind_of(target)
        view: Any
        extra: dict[str, Any] = {}
        if found is Kind.AUCTION:
            view = await market.auction(target)
        elif found is Kind.AGREEMENT:
            view = await market.agreement(target)
            if view.committee is not None:
                extra["committee_members"] = len((await market.committee(view.committee)).members)
        elif found is Kind.COMMITTEE:
            view = await market.committee(target)
        elif target in (market.address, market.pool):
            rules = await market.pool_rules()
            record = {"kind": "market", "market": market.address, "pool": market.pool}
            record.update(asdict(rules))
            if as_json:
                emit_json(_plain(record))
                return
            click.echo(
                f"the Market {market.address} (its witness pool: {market.pool}); witnesses "
                f"stake {ctk(rules.min_stake)} to register, {ctk(rules.duty_stake)} per "
                f"seat, lose {ctk(rules.silence_penalty)} for silence and "
                f"{ctk(rules.dissent_penalty)} for dissent; a seat pays at least "
                f"{ctk(rules.min_witness_pay)}"
            )
            return
        else:
            view = await market.witness(target)
            if not view.registered and view.duties == 0:
                raise UserError(
                    f"{address} is not an auction, agreement or committee of this market, "
                    "nor one of its witnesses"
                )
        _, now = await market.head()
        record = {"kind": found.label if found is not Kind.NONE else "witness", **asdict(view)}
        record.update(extra)
        if as_json:
            emit_json(_plain(record))
            return
        for line in describe(record, now):
            click.echo(line)

    in_session(options, go, signing=False)


def span(seconds: int) -> str:
    """Seconds as a person says them: 30 days, 2 hours, 90 seconds."""
    for size, word in ((86_400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {word}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def describe(record: dict[str, Any], now: int) -> list[str]:
    """A few lines a person reads: what it is, where it stands, what happens next."""
    kind = record["kind"]
    if kind == "auction":
        return _describe_auction(record, now)
    if kind == "service agreement":
        return _describe_agreement(record, now)
    if kind == "witness committee":
        return _describe_committee(record, now)
    duties = record["duties"]
    state = "" if record["registered"] else " (no longer registered)"
    return [
        f"witness {record['address']}{state}: stake {ctk(record['stake'])} "
        f"({ctk(record['locked'])} locked on duty), reputation {record['reputation']}/200, "
        f"{duties} {'duty' if duties == 1 else 'duties'} judged"
    ]


def _describe_auction(record: dict[str, Any], now: int) -> list[str]:
    from watcher.domain.market import MECHANISM_NAMES, SIDE_NAMES

    rules, terms = record["rules"], record["terms"]
    lines = [
        f"auction {record['address']}: {SIDE_NAMES[rules['side']]} "
        f"{MECHANISM_NAMES[rules['mechanism']]}, {rules['slots']} slot(s), reserve "
        f"{ctk(rules['reserve'])}, {record['state']}",
        f"  bidding until {when(rules['bidding_ends'])}"
        + (f", revealing until {when(rules['reveal_ends'])}" if rules["reveal_ends"] else "")
        + f"; {record['bids']} bid(s), {record['reveals']} revealed",
    ]
    if record["clock_price"] is not None:
        lines.append(f"  the Dutch clock stands at {ctk(record['clock_price'])}")
    for rank, entry in enumerate(record["standing"], start=1):
        lines.append(f"  {rank}. {entry['bidder']} at {ctk(entry['price'])}")
    lines.append(
        f"  each agreement: {span(terms['service_seconds'])} of service, provider deposit "
        f"{ctk(terms['provider_deposit'])}, witness fee {ctk(terms['witness_fee'])}, "
        f"{terms['compensation_bps'] / 100:g}% back on a violation confirmed by "
        f"{terms['quorum']} of {terms['witnesses']} witnesses"
    )
    if record["state"] != "open":
        return lines
    if record["over"]:
        lines.append("  next: anyone may settle it (watcher market settle)")
    elif now <= rules["bidding_ends"]:
        lines.append(f"  next: bidding goes on until {when(rules['bidding_ends'])}")
    else:
        lines.append(
            f"  next: bidders reveal (watcher market reveal) until "
            f"{when(rules['reveal_ends'])}; then anyone may settle it"
        )
    return lines


def _describe_agreement(record: dict[str, Any], now: int) -> list[str]:
    fee, terms = record["fee"], record["terms"]
    lines = [
        f"agreement {record['address']}: {record['state']}, fee {ctk(fee)}",
        f"  customer {record['customer']}, provider {record['provider']}",
    ]
    state = record["state"]
    if state == "offered":
        if now > record["confirm_by"]:
            lines.append(
                f"  not confirmed by its deadline {when(record['confirm_by'])}: anyone may "
                "cancel it (watcher market cancel); the customer gets everything back and "
                "the provider's deposit"
            )
        else:
            lines.append(f"  next: the provider confirms by {when(record['confirm_by'])}")
    elif state == "active":
        lines.append(
            f"  service from {when(record['started_at'])} to {when(record['ends_at'])}, "
            f"judged by committee {record['committee']}"
        )
        if not record.get("committee_members"):
            lines.append(
                "  next: its committee is not drawn yet: anyone may draw it (watcher market "
                "draw); undrawn, it judges no violation and the provider is paid"
            )
        else:
            lines.append(
                "  next: its witnesses report and reveal; then anyone may finalize it "
                "(watcher market finalize)"
            )
    elif state == "closed":
        compensation = fee * terms["compensation_bps"] // 10_000
        lines.append(
            f"  closed: a violation was confirmed; the customer got {ctk(compensation)} of "
            f"the fee back, the provider {ctk(fee - compensation)} and its deposit"
            if record["violated"]
            else f"  closed: no violation confirmed; the provider got the {ctk(fee)} fee and "
            "its deposit"
        )
    else:
        lines.append("  cancelled: its provider never confirmed; the customer got everything back")
    return lines


def _describe_committee(record: dict[str, Any], now: int) -> list[str]:
    members = record["members"]
    lines = [
        f"committee {record['address']} for agreement {record['agreement']}: "
        f"{len(members)} of {record['size']} drawn, quorum {record['quorum']}"
    ]
    lines += [f"  {member}" for member in members]
    lines.append(
        f"  reports until {when(record['commit_ends'])}, reveals until "
        f"{when(record['reveal_ends'])}; {record['revealed']} revealed, "
        f"{record['violation_reports']} say violated"
    )
    if record["finalized"]:
        verdict = "violation confirmed" if record["violated"] else "no violation"
        lines.append(
            f"  judged: {verdict}; witnesses who judged right collect their reward with "
            "'watcher market claim'"
            if members
            else f"  judged: {verdict} (it was never drawn)"
        )
    elif now > record["reveal_ends"]:
        lines.append("  next: anyone may finalize it (watcher market finalize)")
    elif not members and now > record["commit_ends"]:
        lines.append("  never drawn: it judges no violation once its reveal window ends")
    elif not members:
        lines.append(
            f"  next: anyone draws it (watcher market draw) once block {record['seed_block']} "
            "is mined, from the witnesses registered before its agreement was confirmed"
        )
    elif now <= record["commit_ends"]:
        lines.append(
            f"  next: members commit reports (watcher market report) until "
            f"{when(record['commit_ends'])}"
        )
    else:
        lines.append(
            f"  next: members reveal (watcher market reveal) until {when(record['reveal_ends'])}"
        )
    return lines


def _checksum(address: str) -> ChecksumAddress:
    from watcher.domain.addresses import to_checksum_address

    return to_checksum_address(address)


async def _auction(session: Session, address: str) -> Any:
    return await session.market.auction(_checksum(address))


@market.command("bid", context_settings=AMOUNT_CONTEXT)
@click.argument("auction", type=AddressType())
@click.argument("price", type=AmountType())
@setting_options(*MARKET)
def bid(auction: str, price: int, **options: Any) -> None:
    """Bid PRICE CTK in an English AUCTION (forward: you pay it plus the witness fee while
    you stand; reverse: you post the provider's deposit). Refunded when outbid."""

    async def go(session: Session) -> None:
        view = await _auction(session, auction)
        sent = await session.market.bid(session.signer, view, price, session.tx_timeout)
        click.echo(f"bid {ctk(price)} in auction {auction} ({mined(sent)})")
        for displaced in sent.all("BidDisplaced"):
            click.echo(
                f"  displaced {displaced.args['bidder']}, refunded {ctk(displaced.args['refund'])}"
            )

    in_session(options, go)


@market.command("accept", context_settings=AMOUNT_CONTEXT)
@click.argument("auction", type=AddressType())
@click.option(
    "--limit",
    type=AmountType(),
    default=None,
    help="Forward: the most you pay; reverse: the least you take (default: the clock's price now).",
)
@setting_options(*MARKET)
def accept(auction: str, limit: int | None, **options: Any) -> None:
    """Take a slot of a Dutch AUCTION at the clock's price."""

    async def go(session: Session) -> None:
        view = await _auction(session, auction)
        if view.clock_price is None:
            raise UserError(f"auction {auction} is not a Dutch auction: bid or commit instead")
        # Forward the clock only falls, reverse it only rises: today's price is a safe limit.
        chosen = view.clock_price if limit is None else limit
        sent = await session.market.accept(session.signer, view, chosen, session.tx_timeout)
        taken = sent.event("Accepted")
        click.echo(
            f"took a slot of auction {auction} at {ctk(taken.args['price'])} ({mined(sent)})"
        )

    in_session(options, go)


@market.command("commit", context_settings=AMOUNT_CONTEXT)
@click.argument("auction", type=AddressType())
@click.argument("price", type=AmountType())
@setting_options(*MARKET)
def commit(auction: str, price: int, **options: Any) -> None:
    """Commit to a sealed bid of PRICE CTK in AUCTION, posting its bid deposit. The price
    and salt are kept on this machine until `watcher market reveal`."""

    async def go(session: Session) -> None:
        from watcher.domain.market import Side, bid_commitment
        from watcher.runtime.sealed import SealedSecrets

        view = await _auction(session, auction)
        if not view.rules.mechanism.sealed:
            raise UserError(f"auction {auction} takes open bids: use watcher market bid/accept")
        signer, chain_id = session.signer, session.chain.chain_id
        if await session.market.commitment_of(view.address, signer.address) != bytes(32):
            raise UserError(f"{signer.address} has already committed a bid in auction {auction}")
        reserve = view.rules.reserve
        forward = view.rules.side is Side.FORWARD
        if price < reserve if forward else price > reserve:
            limit = "at least" if forward else "at most"
            raise UserError(
                f"a bid in auction {auction} must be {limit} the reserve {ctk(reserve)}: "
                f"{ctk(price)} could never win; nothing was sent"
            )
        salt = os.urandom(32)
        kept = SealedSecrets().add(
            chain_id,
            view.address,
            signer.address,
            {"price": str(price), "salt": "0x" + salt.hex()},
        )
        sealed = bid_commitment(chain_id, view.address, signer.address, price, salt)
        sent = await session.market.commit_bid(signer, view, sealed, session.tx_timeout)
        click.echo(
            f"committed a sealed bid in auction {auction} ({mined(sent)}); reveal it after "
            f"{when(view.rules.bidding_ends)} and by {when(view.rules.reveal_ends)} with "
            f"'watcher market reveal {auction}' and the same signer (kept in {kept}: "
            "without it the deposit is lost)"
        )

    in_session(options, go)


@market.command("reveal", context_settings=CONTEXT)
@click.argument("address", type=AddressType())
@setting_options(*MARKET)
def reveal(address: str, **options: Any) -> None:
    """Reveal your sealed bid in an auction, or your report to a committee, from what
    `commit` or `report` kept on this machine."""

    async def go(session: Session) -> None:
        from watcher.domain.market import Kind, bid_commitment, report_commitment
        from watcher.runtime.sealed import SealedSecrets

        target = _checksum(address)
        found = await session.market.kind_of(target)
        if found not in (Kind.AUCTION, Kind.COMMITTEE):
            raise UserError(f"{address} is not an auction or a committee of this market")
        signer, chain_id = session.signer, session.chain.chain_id
        store = SealedSecrets()
        kept = store.load(chain_id, target, signer.address)
        if not kept:
            raise UserError(
                f"nothing was committed from {signer.address} to {address} on this machine"
            )
        # The value whose commitment the chain holds (a report may have been replaced).
        if found is Kind.AUCTION:
            on_chain = await session.market.commitment_of(target, signer.address)
        else:
            on_chain = await session.market.report_of(target, signer.address)

        def opens(entry: dict[str, Any]) -> bool:
            salt = bytes.fromhex(str(entry["salt"]).removeprefix("0x"))
            if found is Kind.AUCTION:
                made = bid_commitment(chain_id, target, signer.address, int(entry["price"]), salt)
            else:
                made = report_commitment(
                    chain_id, target, signer.address, bool(entry["violated"]), salt
                )
            return made == on_chain

        chosen = next((entry for entry in reversed(kept) if opens(entry)), None)
        if chosen is None:
            raise UserError(
                f"nothing kept on this machine opens {signer.address}'s commitment to "
                f"{address} (was it made elsewhere, or never mined?)"
            )
        salt = bytes.fromhex(str(chosen["salt"]).removeprefix("0x"))
        if found is Kind.AUCTION:
            view = await session.market.auction(target)
            price = int(chosen["price"])
            sent = await session.market.reveal_bid(signer, view, price, salt, session.tx_timeout)
            standing = sent.event("Revealed").args["standing"]
            click.echo(
                f"revealed {ctk(price)} in auction {address}, deposit returned; "
                + ("among the best so far" if standing else "not among the best")
                + f" ({mined(sent)})"
            )
        else:
            violated = bool(chosen["violated"])
            sent = await session.market.reveal_report(
                signer, target, violated, salt, session.tx_timeout
            )
            click.echo(
                f"revealed your report to committee {address}: "
                f"{'violated' if violated else 'met'} ({mined(sent)})"
            )
        store.remove(chain_id, target, signer.address)

    in_session(options, go)


@market.command("settle", context_settings=CONTEXT)
@click.argument("auction", type=AddressType())
@setting_options(*MARKET)
def settle(auction: str, **options: Any) -> None:
    """Settle an AUCTION that is over (anyone): each winner gets an agreement to confirm."""

    async def go(session: Session) -> None:
        await _auction(session, auction)
        sent = await session.market.settle(session.signer, _checksum(auction), session.tx_timeout)
        done = sent.event("Settled")
        won = sent.all("Won")
        click.echo(f"settled auction {auction}: {len(won)} winner(s) ({mined(sent)})")
        for event in won:
            click.echo(
                f"  {event.args['bidder']} won agreement {event.args['agreement']} "
                f"for {ctk(event.args['fee'])}"
            )
        if done.args["forfeited"]:
            to = f"shared by the {len(won)} winner(s)" if won else "to the initiator (nobody won)"
            click.echo(
                f"  {ctk(done.args['forfeited'])} of unrevealed bid deposits forfeited, {to}"
            )
        click.echo(f"  {ctk(done.args['returnedToInitiator'])} back to the initiator")

    in_session(options, go)


@market.command("cancel", context_settings=CONTEXT)
@click.argument("address", type=AddressType())
@setting_options(*MARKET)
def cancel(address: str, **options: Any) -> None:
    """Cancel an auction nobody bid in (its initiator), or an agreement its provider did
    not confirm in time (anyone: the customer gets everything back and the deposit)."""

    async def go(session: Session) -> None:
        from watcher.domain.market import Kind

        target = _checksum(address)
        found = await session.market.kind_of(target)
        if found is Kind.AUCTION:
            sent = await session.market.cancel_auction(session.signer, target, session.tx_timeout)
            back = sent.event("Cancelled").args["returnedToInitiator"]
            click.echo(f"cancelled auction {address}: {ctk(back)} back ({mined(sent)})")
        elif found is Kind.AGREEMENT:
            sent = await session.market.cancel_agreement(session.signer, target, session.tx_timeout)
            event = sent.event("Cancelled").args
            click.echo(
                f"cancelled agreement {address}: {ctk(event['refund'])} back to the customer "
                f"with the provider's {ctk(event['forfeitedDeposit'])} deposit ({mined(sent)})"
            )
        else:
            raise UserError(f"{address} is not an auction or agreement of this market")

    in_session(options, go)


@market.command("confirm", context_settings=CONTEXT)
@click.argument("agreement", type=AddressType())
@setting_options(*MARKET)
def confirm(agreement: str, **options: Any) -> None:
    """Confirm an AGREEMENT you won (provider): the service window starts now."""

    async def go(session: Session) -> None:
        await session.market.agreement(_checksum(agreement))
        sent = await session.market.confirm(
            session.signer, _checksum(agreement), session.tx_timeout
        )
        event = sent.event("Confirmed").args
        formed = sent.event("CommitteeFormed").args
        click.echo(
            f"confirmed agreement {agreement}: serve until {when(event['endsAt'])}; committee "
            f"{event['committee']} is drawn once block {formed['seedBlock']} is mined "
            f"(watcher market draw {event['committee']}) ({mined(sent)})"
        )

    in_session(options, go)


async def _committee_of(session: Session, address: str) -> ChecksumAddress:
    """A committee's address, given it or its agreement."""
    from watcher.domain.market import Kind

    target = _checksum(address)
    found = await session.market.kind_of(target)
    if found is Kind.COMMITTEE:
        return target
    if found is Kind.AGREEMENT:
        view = await session.market.agreement(target)
        if view.committee is None:
            raise UserError(
                f"agreement {address} has no committee yet: its provider has not confirmed it"
            )
        return view.committee
    raise UserError(f"{address} is not a committee or agreement of this market")


@market.command("draw", context_settings=CONTEXT)
@click.argument("committee", type=AddressType())
@setting_options(*MARKET)
def draw(committee: str, **options: Any) -> None:
    """Draw a COMMITTEE (or an agreement's) by sortition, once its seed block is mined."""

    async def go(session: Session) -> None:
        target = await _committee_of(session, committee)
        view = await session.market.committee(target)
        head, _ = await session.market.head()
        if head <= view.seed_block:
            raise UserError(
                f"committee {target} is drawn from block {view.seed_block}'s hash, and the "
                f"chain is at block {head}: try again after block {view.seed_block} is mined"
            )
        sent = await session.market.draw(session.signer, target, session.tx_timeout)
        if sent.all("Reseeded"):
            seed = sent.event("Reseeded").args["seedBlock"]
            click.echo(
                f"the seed block was too old to read: committee {target} now draws from "
                f"block {seed}; draw again after it is mined"
            )
            return
        members = sent.event("Drawn").args["members"]
        click.echo(f"drew committee {target}: {', '.join(members)} ({mined(sent)})")

    in_session(options, go)


@market.command("register", context_settings=AMOUNT_CONTEXT)
@click.argument("stake", type=AmountType())
@setting_options(*MARKET)
def register(stake: int, **options: Any) -> None:
    """Register as a witness with STAKE CTK."""

    async def go(session: Session) -> None:
        sent = await session.market.register(session.signer, stake, session.tx_timeout)
        click.echo(
            f"registered {session.signer.address} as a witness with {ctk(stake)} ({mined(sent)})"
        )

    in_session(options, go)


@market.command("stake", context_settings=AMOUNT_CONTEXT)
@click.argument("amount", type=AmountType())
@setting_options(*MARKET)
def add_stake(amount: int, **options: Any) -> None:
    """Add AMOUNT CTK to your witness stake."""

    async def go(session: Session) -> None:
        sent = await session.market.add_stake(session.signer, amount, session.tx_timeout)
        click.echo(f"staked {ctk(amount)} more ({mined(sent)})")

    in_session(options, go)


@market.command("withdraw", context_settings=AMOUNT_CONTEXT)
@click.argument("amount", type=AmountType())
@setting_options(*MARKET)
def withdraw(amount: int, **options: Any) -> None:
    """Take AMOUNT CTK of your free witness stake back; all of it leaves the pool."""

    async def go(session: Session) -> None:
        sent = await session.market.withdraw(session.signer, amount, session.tx_timeout)
        left = "left the pool" if sent.all("Left") else "still registered"
        click.echo(f"withdrew {ctk(amount)}; {left} ({mined(sent)})")

    in_session(options, go)


@market.command("report", context_settings=CONTEXT)
@click.argument("committee", type=AddressType())
@click.option(
    "--violated/--met", required=True, help="Whether the agreement's terms were violated."
)
@setting_options(*MARKET)
def report(committee: str, violated: bool, **options: Any) -> None:
    """Commit your report to a COMMITTEE you sit on (witness); reveal it after reporting
    closes with `watcher market reveal`."""

    async def go(session: Session) -> None:
        from watcher.domain.market import report_commitment
        from watcher.runtime.sealed import SealedSecrets

        target = await _committee_of(session, committee)
        view = await session.market.committee(target)
        signer, chain_id = session.signer, session.chain.chain_id
        if signer.address not in view.members:
            raise UserError(f"{signer.address} does not sit on committee {target}")
        _, now = await session.market.head()
        if now > view.commit_ends:
            raise UserError(
                f"reporting to committee {target} closed at {when(view.commit_ends)}: reveal "
                "what you committed with 'watcher market reveal'"
            )
        again = await session.market.report_of(target, signer.address) != bytes(32)
        salt = os.urandom(32)
        kept = SealedSecrets().add(
            chain_id, target, signer.address, {"violated": violated, "salt": "0x" + salt.hex()}
        )
        sealed = report_commitment(chain_id, target, signer.address, violated, salt)
        sent = await session.market.commit_report(signer, target, sealed, session.tx_timeout)
        replaced = " in place of your earlier one" if again else ""
        click.echo(
            f"committed your report to committee {target}{replaced} ({mined(sent)}); reveal "
            f"it after {when(view.commit_ends)} and by {when(view.reveal_ends)} with "
            f"'watcher market reveal {target}' and the same signer (kept in {kept}: without "
            "it your report counts as silence)"
        )

    in_session(options, go)


@market.command("finalize", context_settings=CONTEXT)
@click.argument("committee", type=AddressType())
@setting_options(*MARKET)
def finalize(committee: str, **options: Any) -> None:
    """Judge an agreement after its committee's reveals (anyone): pays the customer's
    compensation on a confirmed violation, the provider otherwise, and the witnesses."""

    async def go(session: Session) -> None:
        target = await _committee_of(session, committee)
        sent = await session.market.finalize(session.signer, target, session.tx_timeout)
        _say_judged(sent, target)

    in_session(options, go)


def _say_judged(sent: Sent, committee: str) -> None:
    judged = sent.event("Judged").args
    closed = sent.event("Closed").args
    if judged["violated"]:
        verdict = "violation confirmed"
    elif judged["decided"]:
        verdict = "no violation confirmed"
    else:
        verdict = "undecided (neither side reached the quorum), so no violation"
    click.echo(
        f"committee {committee} judged: {verdict} ({judged['violationReports']} of "
        f"{judged['revealed']} revealed reports said violated); customer "
        f"{ctk(closed['toCustomer'])}, provider {ctk(closed['toProvider'])}"
        + (
            f", witnesses {ctk(closed['toWitnesses'])} and the penalties"
            if sent.all("DutyJudged")
            else " (the committee was never drawn)"
        )
        + f" ({mined(sent)})"
    )


@market.command("claim", context_settings=CONTEXT)
@click.argument("committee", type=AddressType())
@setting_options(*MARKET)
def claim(committee: str, **options: Any) -> None:
    """Collect what a COMMITTEE (or an agreement's) owes you: finalizes it first when it
    is due (the customer's compensation is paid then), then takes your witness reward."""

    async def go(session: Session) -> None:
        target = await _committee_of(session, committee)
        view = await session.market.committee(target)
        _, now = await session.market.head()
        if not view.finalized:
            if now <= view.reveal_ends:
                raise UserError(
                    f"committee {target} judges after {when(view.reveal_ends)}: nothing is due yet"
                )
            _say_judged(
                await session.market.finalize(session.signer, target, session.tx_timeout),
                target,
            )
        owed = await session.market.owed(target, session.signer.address)
        if owed:
            sent = await session.market.claim(session.signer, target, session.tx_timeout)
            click.echo(f"claimed {ctk(owed)} of witness reward ({mined(sent)})")
        elif view.finalized:
            raise UserError(f"committee {target} owes {session.signer.address} nothing")

    in_session(options, go)
