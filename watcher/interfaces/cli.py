"""The `watcher` command line. Every mistake a user can make ends in one line on stderr:

    watcher: error: <what is wrong>

Exit codes: 0 done, 1 refused or failed (e.g. too little CTK, node unreachable),
2 bad input (arguments, configuration), 130 interrupted.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from watcher import __version__
from watcher.domain.addresses import BURN_ADDRESS, parse_address
from watcher.domain.amounts import format_amount, parse_amount
from watcher.domain.errors import ConfigError, InsufficientFunds, InvalidInput, UserError
from watcher.runtime.config import MAX_BIGINT, SETTINGS, Settings, load_settings, parse_whole_number

if TYPE_CHECKING:
    from watcher.adapters.chain.connection import Chain
    from watcher.adapters.chain.signer import Signer
    from watcher.adapters.chain.token import CloudToken, Transfer
    from watcher.domain.pricing import Plan

# Commands import web3 and eth_account (about a second) only when they talk to a chain, so
# `--help` and a mistyped argument answer at once.

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# A negative amount such as `-1` must reach the amount parser (and its clear message)
# instead of being taken for an unknown option.
AMOUNT_CONTEXT = dict(CONTEXT, ignore_unknown_options=True)
CHAIN: tuple[str, ...] = ("rpc_url", "rpc_timeout")
SIGNING: tuple[str, ...] = (*CHAIN, "tx_timeout", "keystore", "dev_account")
FOLLOW = (
    *CHAIN,
    "token_address",
    "checkout_address",
    "vending",
    "database_url",
    "confirmations",
    "finality",
    "start_block",
    "max_block_range",
    "reorg_history",
    "default_plan",
    "max_orders_per_payment",
)
PROVISION = (
    "database_url",
    "aws_region",
    "aws_endpoint_url",
    "workers",
    "claim_seconds",
    "capacity_attempts",
    "reconcile_interval",
)
RUN = (
    *FOLLOW,
    "ws_url",
    "poll_interval",
    *PROVISION[1:],
    "leases",
    "mqtt_url",
    "http_host",
    "http_port",
    "public_url",
    "explorer_url",
    "metrics_host",
    "metrics_port",
)


class AmountType(click.ParamType[int]):
    name = "AMOUNT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value)
        if text.startswith("-") and not text[1:2].isdigit() and not text.startswith("-."):
            raise click.NoSuchOption(text, ctx=ctx)
        try:
            return parse_amount(text)
        except InvalidInput as exc:
            self.fail(str(exc), param, ctx)


class BlockType(click.ParamType[int]):
    """A block number; with `latest`, also the word latest (returned as -1)."""

    name = "BLOCK"

    def __init__(self, allow_latest: bool = False) -> None:
        self.allow_latest = allow_latest

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if self.allow_latest and text == "latest":
            return -1
        wanted = "a block number or latest" if self.allow_latest else "a block number"
        try:
            number = parse_whole_number(text)
        except ValueError:
            self.fail(f"must be {wanted}, got {value!r}", param, ctx)
        if not 0 <= number <= MAX_BIGINT:
            self.fail(f"must be {wanted} between 0 and {MAX_BIGINT}, got {value!r}", param, ctx)
        return number


class ChainIdType(click.ParamType[int]):
    """A chain id as the ledger stores it: ASCII digits, 0 to 2**63-1 (a signed BIGINT)."""

    name = "CHAIN_ID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            number = parse_whole_number(str(value))
        except ValueError:
            self.fail(f"must be a chain id (a whole number), got {value!r}", param, ctx)
        if not 0 <= number <= MAX_BIGINT:
            self.fail(f"must be between 0 and {MAX_BIGINT}, got {value!r}", param, ctx)
        return number


class SecondsType(click.ParamType[float]):
    """Seconds, 0 to a day, in ASCII: float() also takes `1_0`, other scripts' digits and nan."""

    name = "SECONDS"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            if not text.isascii() or "_" in text:
                raise ValueError(text)
            seconds = float(text)
        except ValueError:
            self.fail(f"must be a number of seconds, got {value!r}", param, ctx)
        if not 0 <= seconds <= 86_400:  # also false for nan
            self.fail(f"must be between 0 and 86400 seconds, got {value!r}", param, ctx)
        return seconds


class AddressType(click.ParamType[str]):
    name = "ADDRESS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return parse_address(str(value))
        except InvalidInput as exc:
            self.fail(str(exc), param, ctx)


def setting_options(*names: str, **renamed: str) -> Callable[[F], F]:
    """Add a flag for each named setting (its WATCHER_<NAME> twin is named in the help).
    `renamed` gives a setting a shorter flag on one command, e.g. devchain_port="--port"."""

    def decorate(func: F) -> F:
        for name in reversed((*names, *renamed)):
            spec = SETTINGS[name]
            func = click.option(
                renamed.get(name, spec.flag),
                name,
                default=None,
                metavar=spec.metavar,
                help=f"{spec.help} [env: {spec.env}]",
            )(func)
        return click.option(
            "--config",
            "config_file",
            default=None,
            metavar="PATH",
            help="Settings file. [env: WATCHER_CONFIG; default: ./watcher.toml if present]",
        )(func)

    return decorate


def settings_from(options: dict[str, Any]) -> Settings:
    config_file = options.pop("config_file", None)
    flags = {name: options.pop(name) for name in list(options) if name in SETTINGS}
    return load_settings(flags, config_file=config_file)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def emit_json(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, separators=(",", ":")))


def prompt_password(text: str) -> str:
    if not sys.stdin.isatty():
        raise UserError(f"{text.lower()} is needed: set WATCHER_KEYSTORE_PASSWORD")
    password: str = click.prompt(text, hide_input=True, err=True)
    return password


async def signing_context(settings: Settings, chain: Chain) -> tuple[CloudToken, Signer]:
    from watcher.adapters.chain.token import CloudToken
    from watcher.runtime.keys import resolve_signer

    token_address = settings.require_token_address()
    signer = resolve_signer(settings, chain.chain_id, prompt_password)
    return await CloudToken.at(chain, token_address), signer


def transfer_record(chain: Chain, transfer: Transfer) -> dict[str, Any]:
    return {
        "chain_id": chain.chain_id,
        "tx_hash": transfer.tx_hash,
        "block_number": transfer.block_number,
        "from": transfer.sender,
        "to": transfer.to,
        "amount": str(transfer.amount),
        "amount_ctk": format_amount(transfer.amount),
    }


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="watcher")
def cli() -> None:
    """Token-gated, prepaid cloud provisioning paid in CloudToken (CTK).

    Users pay by sending CTK to the burn address
    0x000000000000000000000000000000000000dEaD from any wallet.
    """


@cli.command(context_settings=CONTEXT)
@setting_options("hardhat_dir", devchain_port="--port")
def devchain(**options: Any) -> int:
    """Run a local Hardhat dev chain (chain id 1337) on 127.0.0.1 until interrupted.

    HTTP and WebSocket JSON-RPC share the port.
    """
    from watcher.dev.devchain import DevChain, hardhat_project, run_foreground

    settings = settings_from(options)
    chain = DevChain(settings.devchain_port, hardhat_project(settings.hardhat_dir))
    return run_foreground(chain)


@cli.group(context_settings=CONTEXT)
def token() -> None:
    """Deploy CloudToken, read balances and send CTK."""


@token.command("deploy", context_settings=CONTEXT)
@setting_options(*SIGNING)
@click.option(
    "--json", "as_json", is_flag=True, help="Print address, chain_id and block_number as JSON."
)
def token_deploy(as_json: bool, **options: Any) -> None:
    """Deploy CloudToken (1,000,000 CTK to the signer) and print its address."""
    settings = settings_from(options)

    async def deploy() -> None:
        from watcher.adapters.chain.connection import connect
        from watcher.adapters.chain.token import CloudToken
        from watcher.runtime.keys import resolve_signer

        async with connect(settings.rpc_url, settings.rpc_timeout) as chain:
            signer = resolve_signer(settings, chain.chain_id, prompt_password)
            deployment = await CloudToken.deploy(chain, signer, settings.tx_timeout)
        if as_json:
            emit_json(
                {
                    "address": deployment.address,
                    "chain_id": deployment.chain_id,
                    "block_number": deployment.block_number,
                    "tx_hash": deployment.tx_hash,
                }
            )
            return
        click.echo(deployment.address)
        click.echo(
            f"deployed CloudToken on chain {deployment.chain_id} in block "
            f"{deployment.block_number} (tx {deployment.tx_hash}); "
            f"export WATCHER_TOKEN_ADDRESS={deployment.address}",
            err=True,
        )

    run_async(deploy())


@token.command("balance", context_settings=CONTEXT)
@click.argument("address", type=AddressType())
@setting_options(*CHAIN, "token_address")
@click.option("--json", "as_json", is_flag=True, help="Print the balance as JSON.")
def token_balance(address: str, as_json: bool, **options: Any) -> None:
    """Show the CTK balance of ADDRESS."""
    settings = settings_from(options)
    owner = parse_address(address)

    async def balance() -> None:
        from watcher.adapters.chain.connection import connect
        from watcher.adapters.chain.token import CloudToken

        token_address = settings.require_token_address()
        async with connect(settings.rpc_url, settings.rpc_timeout) as chain:
            ctk = await CloudToken.at(chain, token_address)
            units = await ctk.balance_of(owner)
        if as_json:
            emit_json(
                {
                    "chain_id": chain.chain_id,
                    "address": owner,
                    "balance": str(units),
                    "balance_ctk": format_amount(units),
                }
            )
        else:
            click.echo(f"{owner}: {format_amount(units)} CTK")

    run_async(balance())


@token.command("transfer", context_settings=AMOUNT_CONTEXT)
@click.argument("to", type=AddressType())
@click.argument("amount", type=AmountType())
@setting_options(*SIGNING, "token_address")
@click.option("--json", "as_json", is_flag=True, help="Print the transfer as JSON.")
def token_transfer(to: str, amount: int, as_json: bool, **options: Any) -> None:
    """Send AMOUNT CTK (up to 18 decimals, e.g. 12.5) to the address TO."""
    settings = settings_from(options)
    recipient = parse_address(to)

    async def transfer() -> None:
        from watcher.adapters.chain.connection import connect

        settings.require_token_address()
        async with connect(settings.rpc_url, settings.rpc_timeout) as chain:
            ctk, signer = await signing_context(settings, chain)
            sent = await ctk.transfer(signer, recipient, amount, settings.tx_timeout)
        if as_json:
            emit_json(transfer_record(chain, sent))
        else:
            click.echo(
                f"sent {format_amount(amount)} CTK from {sent.sender} to {sent.to} "
                f"in tx {sent.tx_hash} (block {sent.block_number})"
            )

    run_async(transfer())


@cli.group(context_settings=CONTEXT)
def checkout() -> None:
    """Deploy the Checkout contract, through which a payment names its order."""


@checkout.command("deploy", context_settings=CONTEXT)
@setting_options(*SIGNING, "token_address")
def checkout_deploy(**options: Any) -> None:
    """Deploy a Checkout for the CTK token and print its address."""
    settings = settings_from(options)

    async def deploy() -> None:
        from watcher.adapters.chain.checkout import Checkout
        from watcher.adapters.chain.connection import connect

        settings.require_token_address()
        async with connect(settings.rpc_url, settings.rpc_timeout) as chain:
            ctk, signer = await signing_context(settings, chain)
            deployment = await Checkout.deploy(chain, signer, ctk.address, settings.tx_timeout)
        click.echo(deployment.address)
        click.echo(
            f"deployed Checkout for {ctk.address} on chain {deployment.chain_id} in block "
            f"{deployment.block_number}; export WATCHER_CHECKOUT_ADDRESS={deployment.address}",
            err=True,
        )

    run_async(deploy())


@cli.command(context_settings=CONTEXT)
@click.argument("plan")
@click.option("--periods", default="1", show_default=True, help="Whole periods to buy (1-100).")
@click.option(
    "--ssh-key",
    "ssh_key",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Your SSH public key file (e.g. ~/.ssh/id_ed25519.pub).",
)
@click.option("--name", default=None, help="A label for the order.")
@click.option(
    "--api-url",
    default=None,
    help="The watcher's web API (default: this machine, at the http_host and http_port "
    "the settings give `watcher run`, e.g. http://127.0.0.1:8080).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=1, max=86_400),
    default=300,
    show_default=True,
    help="Seconds to wait until it runs.",
)
@click.option(
    "--from-credit",
    is_flag=True,
    help="Spend only your credit (paid earlier, unspent): no transaction is sent; refused "
    "when the credit does not cover the order.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the order and its access as JSON.")
@setting_options(*SIGNING, "token_address", "checkout_address")
def buy(
    plan: str,
    periods: str,
    ssh_key: Path,
    name: str | None,
    api_url: str | None,
    wait: float,
    from_credit: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Buy PLAN for --periods with your SSH key: sign in, draft, pay through the Checkout
    (one transaction, with a permit), wait until it runs, print how to reach it. Your
    credit is applied first: the Checkout is paid only what it does not cover, and nothing
    at all when it covers the whole order."""
    settings = settings_from(options)
    from watcher.domain.drafts import parse_periods
    from watcher.domain.ssh_keys import parse_ssh_public_key

    try:
        key = parse_ssh_public_key(ssh_key.expanduser().read_text("utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read the SSH key file {ssh_key}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{ssh_key} is not a text file: give the .pub file") from None
    count = parse_periods(periods)
    base_url = _api_url(settings, api_url)
    # The private key beside the .pub file, for the ssh command (`ssh -i`), if it is there.
    identity = ssh_key.expanduser().with_suffix("") if ssh_key.suffix == ".pub" else None

    async def order() -> None:
        import aiohttp

        from watcher.adapters.chain.checkout import Checkout
        from watcher.adapters.chain.connection import connect
        from watcher.interfaces.buy import Api, buy_from_credit, how_to_use, wait_for

        if settings.checkout_address is None:
            raise ConfigError("set WATCHER_CHECKOUT_ADDRESS (or --checkout-address) to buy")
        async with (
            connect(settings.rpc_url, settings.rpc_timeout) as chain,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        ):
            ctk, signer = await signing_context(settings, chain)
            pay_through = await Checkout.at(chain, settings.checkout_address, ctk)
            api = Api(http, base_url)
            await api.sign_in(signer, chain.chain_id)
            if from_credit:
                # Refused before anything is drafted when the credit cannot cover it.
                offered = {p["name"]: p for p in await api.call("GET", "/api/plans")}
                owned = await api.call("GET", f"/api/credit/{signer.address}")
                if plan in offered:
                    cost = int(offered[plan]["price"]) * count
                    if int(owned["balance"]) < cost:
                        raise UserError(
                            f"your credit is {owned['balance_ctk']} CTK and {count} period(s) "
                            f"of {plan} cost {format_amount(cost)} CTK: run without "
                            "--from-credit to pay the rest through the Checkout"
                        )
            draft = await api.call(
                "POST",
                "/api/drafts",
                {"plan": plan, "periods": periods, "ssh_key": key.line(), "name": name},
            )
            if (draft.get("plan"), draft.get("periods")) != (plan, int(periods)):
                raise UserError(
                    f"the watcher drafted {draft.get('periods')} x {draft.get('plan')!r}, not "
                    f"{periods} x {plan!r}: nothing was paid"
                )
            reference, due = draft["reference"], int(draft["due"])
            shown = draft["plan"] + (
                f" ({draft['summary']})" if draft["summary"] != draft["plan"] else ""
            )
            what = (
                f"draft {reference}: {draft['price_ctk']} CTK for {draft['periods']} "
                f"period(s) of {shown}"
            )
            tx_hash: str | None = None
            if from_credit or due == 0:
                click.echo(f"{what}; buying it from your credit...", err=True)
                await buy_from_credit(api, reference, from_credit)
                paid_with = f"bought from credit with draft {reference}"
            else:
                credit = int(draft["credit_applied"])
                applied = f" ({format_amount(credit)} CTK of credit applied)" if credit else ""
                click.echo(
                    f"{what}; paying {format_amount(due)} CTK{applied} through the Checkout...",
                    err=True,
                )
                try:
                    paid = await pay_through.pay_with_permit(
                        signer, ctk, reference, due, settings.tx_timeout
                    )
                except InsufficientFunds:
                    raise  # checked before anything was sent
                except UserError as exc:
                    raise UserError(
                        f"{exc}; the payment for draft {reference} may still be mined: check "
                        "it (`watcher orders`, GET /api/drafts/REF) before buying again"
                    ) from None
                tx_hash = paid.tx_hash
                paid_with = f"paid in tx {tx_hash} for draft {reference}"
            click.echo(f"{paid_with}; waiting for the order to run...", err=True)
            try:
                placed, access = await wait_for(api, reference, wait)
            except UserError as exc:
                raise UserError(f"{exc} ({paid_with}: do not buy again)") from None
        if as_json:
            emit_json({"draft": placed, "tx_hash": tx_hash, "access": access})
            return
        shown = str(identity) if identity is not None and identity.is_file() else None
        for line in how_to_use(access, shown):
            click.echo(line)

    run_async(order())


def _api_url(settings: Settings, given: str | None) -> str:
    """`given`, or where `watcher run` with these settings serves its pages."""
    if given is not None:
        return given
    # Served on every interface: reach it on this machine's loopback.
    everywhere = settings.http_host in ("0.0.0.0", "::")  # noqa: S104 - compared, not bound
    host = "127.0.0.1" if everywhere else settings.http_host
    return (
        f"http://[{host}]:{settings.http_port}"
        if ":" in host
        else f"http://{host}:{settings.http_port}"
    )


API_URL = click.option(
    "--api-url",
    default=None,
    help="The watcher's web API (default: this machine, at the http_host and http_port "
    "the settings give `watcher run`).",
)
ORDER_ID = click.argument("order_id", metavar="ORDER_ID")


def _order_id(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{32}", text):
        raise InvalidInput(
            "ORDER_ID must be an order's 32 hexadecimal digits (see `watcher orders`), "
            f"got {text!r}"
        )
    return text


async def _signed_in_api(settings: Settings, api_url: str | None, http: Any) -> Any:
    """The API, signed in with the signer's key (as `watcher buy` does)."""
    from watcher.adapters.chain.connection import connect
    from watcher.interfaces.buy import Api

    async with connect(settings.rpc_url, settings.rpc_timeout) as chain:
        _, signer = await signing_context(settings, chain)
        api = Api(http, _api_url(settings, api_url))
        await api.sign_in(signer, chain.chain_id)
    return api


@cli.command(context_settings=CONTEXT)
@ORDER_ID
@click.option("--periods", default=None, help="Whole periods to add, paid from your credit.")
@click.option(
    "--auto-renew",
    type=click.Choice(["on", "off"]),
    default=None,
    help="Renew from your credit a period at a time near the end (within the plan's cap).",
)
@API_URL
@click.option("--json", "as_json", is_flag=True, help="Print the lease as JSON.")
@setting_options(*SIGNING, "token_address")
def extend(
    order_id: str,
    periods: str | None,
    auto_renew: str | None,
    api_url: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Extend your order's lease by --periods, paid from your credit (in grace, it starts
    again), and/or turn --auto-renew on or off."""
    settings = settings_from(options)
    from watcher.domain.drafts import parse_periods

    order_id = _order_id(order_id)
    count = parse_periods(periods) if periods is not None else None
    if count is None and auto_renew is None:
        raise InvalidInput("give --periods N, --auto-renew on|off, or both")

    async def change() -> None:
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            api = await _signed_in_api(settings, api_url, http)
            lease: dict[str, Any] = {}
            if count is not None:
                lease = await api.call("POST", f"/api/orders/{order_id}/extend", {"periods": count})
            if auto_renew is not None:
                body = {"on": auto_renew == "on"}
                lease = await api.call("POST", f"/api/orders/{order_id}/auto-renew", body)
        if as_json:
            emit_json(lease)
            return
        charged = int(lease.get("charged", "0"))
        paid = f"; {format_amount(charged)} CTK from your credit" if charged else ""
        click.echo(
            f"order {order_id}: {lease['lease_state']}, paid until {lease['paid_until']}"
            f"{paid}; auto-renew {'on' if lease['auto_renew'] else 'off'}"
        )

    run_async(change())


@cli.command(context_settings=CONTEXT)
@ORDER_ID
@click.option("--yes", is_flag=True, help="Do not ask: cancel at once.")
@API_URL
@setting_options(*SIGNING, "token_address")
def cancel(order_id: str, yes: bool, api_url: str | None, **options: Any) -> None:
    """End your order's lease now: its resource is terminated and the whole periods not
    begun go back to your credit (shown before you confirm)."""
    settings = settings_from(options)
    order_id = _order_id(order_id)

    async def end() -> None:
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            api = await _signed_in_api(settings, api_url, http)
            quote = await api.call("GET", f"/api/orders/{order_id}/cancel")
            click.echo(
                f"cancelling order {order_id} terminates its resource and gives back "
                f"{quote['refund_ctk']} CTK ({quote['unused_periods']} unused period(s), "
                f"rule {quote['rule']})",
                err=True,
            )
            if not yes and not click.confirm("cancel it?", err=True):
                raise UserError("not cancelled: nothing changed")
            done = await api.call(
                "POST", f"/api/orders/{order_id}/cancel", {"expected_refund": quote["refund"]}
            )
        click.echo(
            f"order {order_id}: {done['lease_state']}; {done['refunded_ctk']} CTK back to credit"
        )

    run_async(end())


@cli.command(context_settings=AMOUNT_CONTEXT)
@click.argument("amount", type=AmountType())
@setting_options(*SIGNING, "token_address")
@click.option("--json", "as_json", is_flag=True, help="Print the payment as JSON.")
def pay(amount: int, as_json: bool, **options: Any) -> None:
    """Pay AMOUNT CTK: a transfer to the burn address, refused if the balance is too low."""
    settings = settings_from(options)

    async def pay_burn() -> None:
        from watcher.adapters.chain.connection import connect

        settings.require_token_address()
        async with connect(settings.rpc_url, settings.rpc_timeout) as chain:
            ctk, signer = await signing_context(settings, chain)
            sent = await ctk.pay(signer, amount, settings.tx_timeout)
        if as_json:
            emit_json(transfer_record(chain, sent))
        else:
            click.echo(
                f"paid {format_amount(amount)} CTK from {sent.sender} to the burn address "
                f"{BURN_ADDRESS} in tx {sent.tx_hash} (block {sent.block_number})"
            )

    run_async(pay_burn())


@cli.command(context_settings=CONTEXT)
@setting_options("hardhat_dir")
def demo(**options: Any) -> None:
    """Start a dev chain, replay the thesis's three payment experiments, then stop."""
    from watcher.dev.demo import run_demo
    from watcher.dev.moto import moto_server_command

    settings = settings_from(options)
    # Before any dev chain starts: without the demo extra this is one line saying what to install.
    moto_server_command()
    run_async(run_demo(settings))


@cli.command(context_settings=CONTEXT)
@click.option(
    "--max-wait",
    type=SecondsType(),
    default=300.0,
    show_default=True,
    help="Seconds to wait for jobs in backoff before giving up.",
)
@setting_options(*PROVISION)
def drain(max_wait: float, **options: Any) -> None:
    """Provision every queued order, then exit (for cron and tests)."""
    from watcher.interfaces.runner import run_drain

    settings = settings_from(options)
    run_async(run_drain(settings, max_wait))


@cli.command(context_settings=CONTEXT)
@setting_options(*RUN)
def run(**options: Any) -> None:
    """Follow the chain and provision what was paid for: record every CTK payment to the burn
    address, turn paid credit into orders, launch one EC2 instance per order. Stops cleanly
    on SIGINT or SIGTERM."""
    from watcher.interfaces.runner import run_service

    settings = settings_from(options)
    run_async(run_service(settings))


@cli.command(context_settings=CONTEXT)
@click.option(
    "--from-block", "first", required=True, type=BlockType(), help="First block to replay."
)
@click.option(
    "--to-block",
    "last",
    default="latest",
    type=BlockType(allow_latest=True),
    show_default=True,
    help="Last block: a number, or latest (the newest confirmed block).",
)
@setting_options(*FOLLOW)
def replay(first: int, last: int, **options: Any) -> None:
    """Backfill payments of a block range through the same path as `watcher run`.

    Safe beside a running watcher; running it twice changes nothing.
    """
    from watcher.interfaces.runner import run_replay

    settings = settings_from(options)
    run_async(run_replay(settings, first, None if last < 0 else last))


@cli.command(context_settings=CONTEXT)
@click.argument("order_id", required=False)
@click.option("--payer", type=AddressType(), default=None, help="Only this payer's orders.")
@click.option("--chain-id", type=ChainIdType(), default=None, help="Only this chain.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@setting_options("database_url")
def orders(
    order_id: str | None, payer: str | None, chain_id: int | None, as_json: bool, **options: Any
) -> None:
    """List orders: what each payment bought and how far provisioning got.

    With ORDER_ID (or its first characters, as the list shows them): that order in full,
    with why it failed or waits.
    """
    from watcher.interfaces.runner import show_orders

    settings = settings_from(options)
    run_async(show_orders(settings, payer, chain_id, as_json, order_id))


@cli.command(context_settings=CONTEXT)
@click.argument("address", type=AddressType(), required=False)
@click.option("--chain-id", type=ChainIdType(), default=None, help="Only this chain.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@setting_options("database_url")
def credit(address: str | None, chain_id: int | None, as_json: bool, **options: Any) -> None:
    """Show credit balances: paid CTK not yet spent on an order (all payers, or ADDRESS)."""
    from watcher.interfaces.runner import show_credit

    settings = settings_from(options)
    run_async(show_credit(settings, address, chain_id, as_json))


@cli.group(context_settings=CONTEXT)
def webhooks() -> None:
    """The webhook delivery log, and sending an event again."""


@webhooks.command("log", context_settings=CONTEXT)
@click.option("--endpoint", default=None, help="Only this endpoint (its name in watcher.toml).")
@click.option(
    "--limit", type=click.IntRange(min=1, max=10_000), default=50, show_default=True,
    help="How many attempts, newest first.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@setting_options("database_url")
def webhooks_log(endpoint: str | None, limit: int, as_json: bool, **options: Any) -> None:
    """Every delivery attempt, newest first: endpoint, event, attempt, answer."""
    from watcher.interfaces.runner import show_webhook_log

    settings = settings_from(options)
    run_async(show_webhook_log(settings, endpoint, limit, as_json))


@webhooks.command("redeliver", context_settings=CONTEXT)
@click.argument("event_id", type=click.IntRange(min=1), metavar="EVENT_ID")
@click.option("--endpoint", required=True, help="The endpoint's name in watcher.toml.")
@setting_options("database_url")
def webhooks_redeliver(event_id: int, endpoint: str, **options: Any) -> None:
    """Send event EVENT_ID (see `watcher webhooks log`) to the endpoint again, now, with
    the same webhook-id (receivers dedupe by it); logged as a redelivery."""
    from watcher.interfaces.runner import redeliver_webhook

    settings = settings_from(options)
    run_async(redeliver_webhook(settings, endpoint, event_id))


@cli.command(context_settings=CONTEXT)
@click.option("--skip-chain", is_flag=True, help="Do not compare with a replay of the chain.")
@click.option("--skip-cloud", is_flag=True, help="Do not compare with the cloud's resources.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@setting_options(*FOLLOW, "aws_region", "aws_endpoint_url")
def audit(skip_chain: bool, skip_cloud: bool, as_json: bool, **options: Any) -> int:
    """Compare the ledger with a fresh replay of the chain (payments, credit, orders) and
    with the cloud (one tagged resource per order that holds one, none without an order).
    Changes nothing. Exit 0: clean; 1: differences found; 2: bad input."""
    from watcher.interfaces.runner import run_audit

    if skip_chain and skip_cloud:
        raise click.UsageError("--skip-chain and --skip-cloud leave nothing to audit")
    settings = settings_from(options)
    return run_async(
        run_audit(settings, chain=not skip_chain, cloud=not skip_cloud, as_json=as_json)
    )


@cli.group(context_settings=CONTEXT)
def infra() -> None:
    """The thesis's cloud as code: role, key pair, storage pool, launch template, scaling
    group, scale-out policy and CPU alarm, with the watcher's least-privilege policy.

    Declared once from [infra] in watcher.toml (names and numbers default to the
    thesis's); `plan` shows what `apply` would change, `apply` makes it so (twice changes
    nothing), `destroy` removes only what `apply` created (tagged ManagedBy=watcher-infra),
    `template` prints the same declaration as a CloudFormation template.
    """


INFRA = ("aws_region", "aws_endpoint_url")


def _infra(command: str, options: dict[str, Any], key_file: Path | None = None) -> int:
    from watcher.runtime.infra import run_infra
    from watcher.services.infra import Action

    settings = settings_from(options)
    changes = run_async(
        run_infra(settings, command, key_file, lambda change: click.echo(change.line()))
    )
    counts: dict[Action, int] = {}
    for change in changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    summary = ", ".join(f"{n} {action.value}" for action, n in counts.items())
    where = settings.aws_endpoint_url or f"AWS {settings.aws_region}"
    click.echo(f"infra {command} on {where}: {summary}", err=True)
    if command == "plan" and counts.get(Action.CONFLICT):
        return 1
    if command == "destroy" and counts.get(Action.KEPT):
        return 1  # not everything is gone: the line above says what is left and why
    return 0


@infra.command("plan", context_settings=CONTEXT)
@setting_options(*INFRA)
def infra_plan(**options: Any) -> int:
    """Show what `apply` would change; changes nothing. Exit 1 when a declared name is
    taken by a resource `watcher infra` did not create."""
    return _infra("plan", options)


@infra.command("apply", context_settings=CONTEXT)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the new key pair's private key goes (mode 0600, never over a file); "
    "not needed with infra.public_key.",
)
@setting_options(*INFRA)
def infra_apply(key_file: Path | None, **options: Any) -> int:
    """Create or change what differs from the declaration, in order; refuses before
    acting when a declared name is taken by a resource it did not create."""
    return _infra("apply", options, key_file)


@infra.command("destroy", context_settings=CONTEXT)
@click.option("--yes", is_flag=True, help="Do not ask: remove at once.")
@setting_options(*INFRA)
def infra_destroy(yes: bool, **options: Any) -> int:
    """Remove what `apply` created (the scaling group with its instances), the last
    declared first; anything else is left as it is. A bucket holding objects is kept."""
    if not yes:
        if not sys.stdin.isatty():
            raise UserError("destroy removes the declared resources: pass --yes to confirm")
        if not click.confirm("Remove the declared resources that watcher infra created?"):
            raise UserError("nothing removed")
    return _infra("destroy", options)


@infra.command("template", context_settings=CONTEXT)
@setting_options()
def infra_template(**options: Any) -> None:
    """Print the declaration as a CloudFormation template (JSON)."""
    from watcher.domain.infra import template
    from watcher.runtime.infra import declaration

    settings = settings_from(options)
    click.echo(json.dumps(template(declaration(settings)), indent=2))


@cli.group(context_settings=CONTEXT)
def db() -> None:
    """The ledger database."""


@db.command("upgrade", context_settings=CONTEXT)
@setting_options("database_url")
def db_upgrade(**options: Any) -> None:
    """Apply the ledger's migrations (needed before `run` on PostgreSQL)."""
    from watcher.adapters.ledger.database import describe
    from watcher.runtime.service import upgrade_database

    settings = settings_from(options)
    before, after = run_async(upgrade_database(settings))
    where = describe(settings.database_url)
    if before == after:
        click.echo(f"ledger {where} is up to date (schema {after})")
    else:
        click.echo(f"ledger {where} upgraded from schema {before or 'none'} to {after}")


@cli.command("config", context_settings=CONTEXT)
@setting_options(*SETTINGS)
def show_config(**options: Any) -> None:
    """Print the effective settings (secrets are only said to be set)."""
    from watcher.domain.catalog import THESIS_PLAN, Catalog
    from watcher.shared.redact import mask_url

    settings = settings_from(options)
    if settings.config_file is not None:
        click.echo(f"# from {settings.config_file}, the environment and flags")
    catalog = settings.catalog
    for name, spec in SETTINGS.items():
        value = getattr(settings, name)
        if spec.secret:
            shown = "(set)" if value is not None else "(not set)"
        elif name == "default_plan":
            # The plan in effect, and why: a setting, or the catalog's own default.
            if value is not None:
                origin = "set"
            elif catalog.default == THESIS_PLAN.name:
                origin = "built-in default, not set"
            else:
                origin = "first plan of the catalog, not set"
            shown = f"{catalog.default} ({origin})"
        elif value is None:
            shown = "(not set)"
        else:
            # Every URL setting (RPC, WebSocket, database, AWS endpoint, MQTT) may carry a
            # user, a password or an API key.
            shown = mask_url(str(value)) if "://" in str(value) else str(value)
        click.echo(f"{spec.env}={shown}")
    source = "built-in" if catalog.plans == Catalog().plans else f"from {settings.config_file}"
    click.echo(f"# plans ({source}):")
    for plan in catalog.plans.values():
        default = "  (default)" if plan.name == catalog.default else ""
        click.echo(
            f"plan {plan.name}: price={format_amount(plan.price)} CTK {_spec_line(plan)}{default}"
        )


def _spec_line(plan: Plan) -> str:
    from watcher.domain.kinds.ec2_instance import KIND, Ec2Instance

    if plan.spec.kind != KIND:
        from watcher.domain.kinds import summary

        params = " ".join(f"{k}={v}" for k, v in plan.spec.params if v not in (None, ()))
        return f"kind={plan.spec.kind} ({summary(plan.spec)}) {params}"
    ec2 = Ec2Instance.of(plan.spec)
    return (
        f"instance_type={ec2.instance_type} ami={ec2.ami} "
        f"key_pair={ec2.key_name or '(none)'} "
        f"security_groups={','.join(ec2.security_group_ids) or '(default)'} "
        f"subnet={ec2.subnet_id or '(default)'}"
    )


# The marketplace's commands live in their own module, which builds on the helpers above.
from watcher.interfaces.market_cli import market  # noqa: E402

cli.add_command(market)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        result = cli.main(args=argv, prog_name="watcher", standalone_mode=False)
    except UserError as exc:
        _fail(str(exc))
        return exc.exit_code
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _fail(f"{exc.format_message().rstrip('.')}{hint}")
        return 2
    except click.ClickException as exc:
        _fail(exc.format_message())
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("interrupted")
        return 130
    return result if isinstance(result, int) else 0


def _fail(message: str) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    click.echo(f"watcher: error: {first_line}", err=True)
