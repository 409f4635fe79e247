"""Settings: defaults < watcher.toml < WATCHER_<NAME> environment variables < CLI flags.

Each setting is declared once in SETTINGS; the CLI builds its flags from that table and
every source goes through the same parser, so an invalid value gets the same one-line
message (naming where it came from) whichever way it was given.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eth_typing import ChecksumAddress

from watcher.adapters.chain.dev_accounts import DEV_ACCOUNT_COUNT
from watcher.domain.addresses import parse_address
from watcher.domain.catalog import Catalog, parse_plans
from watcher.domain.errors import ConfigError, InvalidInput
from watcher.domain.infra import InfraParams, parse_infra
from watcher.shared.redact import redact

ENV_PREFIX = "WATCHER_"


def data_home() -> Path:
    """The user's data directory: $XDG_DATA_HOME, else ~/.local/share."""
    base = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec: a relative path is invalid and must be ignored.
    return Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"


def default_database_url() -> str:
    """The embedded ledger: a SQLite file in the user's data directory
    ($XDG_DATA_HOME/watcher/ledger.db, else ~/.local/share/watcher/ledger.db). Never the
    working directory: a watcher started from another folder would find an empty ledger
    and take every payment on the chain for a new one."""
    return f"sqlite+aiosqlite:///{data_home() / 'watcher' / 'ledger.db'}"


DEFAULT_CONFIG_FILE = Path("watcher.toml")
# The order of secp256k1's group: a private key is a number in [1, n).
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# Chain ids and block numbers are stored in BIGINT columns (PostgreSQL's is signed).
MAX_BIGINT = 2**63 - 1


class Secret:
    """A credential that must never reach a log or a terminal: its repr and str are masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    rpc_url: str = "http://127.0.0.1:8545"
    token_address: ChecksumAddress | None = None
    # The Checkout contract whose OrderPaid events name drafted orders (None: payments
    # name nothing, every full price of credit buys the plan on offer).
    checkout_address: ChecksumAddress | None = None
    # The thesis's vending: every full price of a payer's credit buys the plan on offer.
    # None: on without a Checkout (plain transfers are the only way to pay), off with one
    # (a payment whose OrderPaid a node failed to return then stays credit, never buys a
    # plan its payer did not choose).
    vending: bool | None = None
    # The marketplace's factory (`watcher market deploy`): auctions, agreements, committees.
    market_address: ChecksumAddress | None = None
    # Whether leases run out (stop at the end of paid time, terminate after grace); off,
    # they are recorded but nothing is stopped (an operator's choice, e.g. while moving
    # buyers over from orders that never ended).
    leases: bool = True

    @property
    def vends(self) -> bool:
        return self.vending if self.vending is not None else self.checkout_address is None

    rpc_timeout: float = 10.0
    tx_timeout: float = 120.0
    private_key: Secret | None = None
    keystore: Path | None = None
    keystore_password: Secret | None = None
    dev_account: int | None = None
    devchain_port: int = 8545
    hardhat_dir: Path | None = None
    database_url: str = field(default_factory=default_database_url)
    ws_url: str | None = None
    confirmations: int = 2
    finality: str = "confirmations"
    start_block: int = 0
    poll_interval: float = 2.0
    max_block_range: int = 10_000
    reorg_history: int = 256
    default_plan: str | None = None
    max_orders_per_payment: int = 100
    aws_region: str = "eu-north-1"
    aws_endpoint_url: str | None = None
    workers: int = 4
    claim_seconds: float = 60.0
    capacity_attempts: int = 5
    reconcile_interval: int = 300
    mqtt_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # The site's address as buyers reach it (behind a proxy): what sign-in messages must
    # name. None: the address each request came to.
    public_url: str | None = None
    # A block explorer (https://etherscan.io): the pages link transactions to it.
    explorer_url: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    catalog: Catalog = field(default_factory=Catalog)
    # Endpoints that receive every order and lease event, signed (`[[webhooks]]` tables).
    webhooks: tuple[WebhookEndpoint, ...] = ()
    # The thesis's cloud as `watcher infra` declares it (`[infra]`).
    infra: InfraParams = field(default_factory=InfraParams)
    config_file: Path | None = field(default=None, compare=False)

    @property
    def events_on(self) -> bool:
        """Whether order events go to the outbox: someone drains it (MQTT, webhooks)."""
        return self.mqtt_url is not None or bool(self.webhooks)

    def require_token_address(self) -> ChecksumAddress:
        if self.token_address is None:
            raise ConfigError(
                "no CTK contract configured: set WATCHER_TOKEN_ADDRESS or pass --token-address "
                "(deploy one with 'watcher token deploy')"
            )
        return self.token_address

    def require_market_address(self) -> ChecksumAddress:
        if self.market_address is None:
            raise ConfigError(
                "no market configured: set WATCHER_MARKET_ADDRESS or pass --market-address "
                "(deploy one with 'watcher market deploy')"
            )
        return self.market_address


# --- value parsers: each raises ValueError with a message that never echoes a secret ---


def _url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in {"http", "https", "ws", "wss"} or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s):// or ws(s):// URL")
    try:
        parts.port  # noqa: B018 - urlsplit validates the port lazily
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    return text.strip()


def _address(text: str) -> ChecksumAddress:
    try:
        return parse_address(text, "value")
    except InvalidInput as exc:
        raise ValueError(str(exc).removeprefix("value ")) from None


# Python's int() and float() also take `1_0` and the digits of every script (Arabic-Indic
# ten reads as 10; `str.isdigit` even passes a superscript two, which int() then refuses):
# a setting or argument is plain ASCII digits, or it is a mistake.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def parse_whole_number(text: str) -> int:
    """ASCII decimal digits (an optional sign) into an int; ValueError for anything else."""
    value = text.strip()
    if not _WHOLE_NUMBER.fullmatch(value):
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


def _seconds(text: str) -> float:
    try:
        if not text.isascii() or "_" in text:
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= 86_400:
        raise ValueError(f"{text!r} must be between 0 and 86400 seconds")
    return value


def _int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = parse_whole_number(text)
        if not low <= value <= high:
            raise ValueError(f"{what} must be between {low} and {high}, got {value}")
        return value

    return parse


def _path(text: str) -> Path:
    if not text.strip():
        raise ValueError("path is empty")
    return Path(text.strip()).expanduser()


def _private_key(text: str) -> Secret:
    body = text.strip().removeprefix("0x")
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise ValueError("not a 32-byte hex private key (64 hex digits, optional 0x)")
    if not 0 < int(body, 16) < SECP256K1_ORDER:
        # Never the value, not even in decimal: a key one digit off is still a key.
        raise ValueError("not a valid secp256k1 private key (zero, or not below the curve order)")
    return Secret("0x" + body.lower())


def _password(text: str) -> Secret:
    return Secret(text)


def _ws_url(text: str) -> str:
    url = _url(text)
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"{text!r} is not a ws:// or wss:// URL")
    return url


def _database_url(text: str) -> str:
    # Imported here: SQLAlchemy takes a quarter of a second to load, and every command
    # (even `--help` or a mistyped amount) reads the configuration.
    from watcher.adapters.ledger.database import normalize_database_url

    return normalize_database_url(text)


def _finality(text: str) -> str:
    value = text.strip().lower()
    if value not in {"confirmations", "finalized", "safe"}:
        raise ValueError(f"{text!r} must be confirmations, safe or finalized")
    return value


def _http_url(text: str) -> str:
    url = _url(text)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{text!r} is not an http(s):// URL")
    return url


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not true or false")


def _public_url(text: str) -> str:
    """scheme://host[:port], nothing after it."""
    url = _http_url(text).rstrip("/")
    if "/" in url.split("://", 1)[1]:
        raise ValueError(f"{text!r} must be scheme://host[:port], with no path")
    return url


def _region(text: str) -> str:
    value = text.strip()
    if not value or not all(c.isalnum() or c == "-" for c in value):
        raise ValueError(f"{text!r} is not an AWS region name such as eu-north-1")
    return value


def _mqtt_url(text: str) -> str:
    from watcher.services.notify import parse_mqtt_url

    parse_mqtt_url(text)
    return text.strip()


def _host(text: str) -> str:
    value = text.strip()
    if ":" in value or all(label.isdigit() for label in value.split(".")):
        # Numeric: it must be an address, or a bind would send `300.1.1.1` to DNS.
        try:
            ipaddress.ip_address(value.strip("[]"))
        except ValueError:
            raise ValueError(f"{text!r} is not a valid IP address") from None
        return value.strip("[]")
    if not value or any(c.isspace() or c in "/:@[]" for c in value):
        raise ValueError(f"{text!r} is not a host name or address")
    return value


def _plan_name(text: str) -> str:
    if not text.strip():
        raise ValueError("plan name is empty")
    return text.strip()


@dataclass(frozen=True)
class SettingSpec:
    name: str
    parse: Callable[[str], Any]
    help: str
    # Secrets have no flag (a command line is visible in `ps` and shell history) and may
    # not sit in watcher.toml in plain text.
    secret: bool = False
    metavar: str = "TEXT"

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: dict[str, SettingSpec] = {
    spec.name: spec
    for spec in (
        SettingSpec(
            "rpc_url",
            _url,
            "JSON-RPC endpoint of the chain (http, https, ws or wss).",
            metavar="URL",
        ),
        SettingSpec(
            "token_address",
            _address,
            "Address of the CloudToken (CTK) contract.",
            metavar="ADDRESS",
        ),
        SettingSpec(
            "checkout_address",
            _address,
            "Address of the Checkout contract: payments made through it name a drafted order "
            "(default: none, payments name nothing).",
            metavar="ADDRESS",
        ),
        SettingSpec(
            "market_address",
            _address,
            "Address of the marketplace's Market contract (auctions, service agreements, "
            "witness committees).",
            metavar="ADDRESS",
        ),
        SettingSpec(
            "vending",
            _boolean,
            "Whether every full price of a payer's credit buys the plan on offer, as in the "
            "thesis (true/false; default: true without a Checkout, false with one).",
            metavar="BOOL",
        ),
        SettingSpec(
            "leases",
            _boolean,
            "Whether leases run out: a resource is stopped at the end of its paid time and "
            "terminated after the plan's grace (true/false; off, leases are recorded but "
            "nothing is stopped).",
            metavar="BOOL",
        ),
        SettingSpec(
            "rpc_timeout", _seconds, "Seconds to wait for one RPC answer.", metavar="SECONDS"
        ),
        SettingSpec(
            "tx_timeout",
            _seconds,
            "Seconds to wait for a transaction to be mined.",
            metavar="SECONDS",
        ),
        SettingSpec(
            "private_key", _private_key, "Hex private key that signs transactions.", secret=True
        ),
        SettingSpec(
            "keystore", _path, "Encrypted JSON keystore that signs transactions.", metavar="PATH"
        ),
        SettingSpec("keystore_password", _password, "Password of the keystore.", secret=True),
        SettingSpec(
            "dev_account",
            _int_in(0, DEV_ACCOUNT_COUNT - 1, "dev account"),
            "Sign with Hardhat dev account N (chain 1337 only).",
            metavar="N",
        ),
        SettingSpec(
            "devchain_port",
            _int_in(1, 65535, "port"),
            "Port of the local dev chain.",
            metavar="PORT",
        ),
        SettingSpec(
            "database_url",
            _database_url,
            "Ledger database: sqlite:///FILE (default ~/.local/share/watcher/ledger.db) "
            "or postgresql://...",
            metavar="URL",
        ),
        SettingSpec(
            "ws_url", _ws_url, "WebSocket endpoint for newHeads (else HTTP polling).", metavar="URL"
        ),
        SettingSpec(
            "confirmations",
            _int_in(0, 10_000, "confirmations"),
            "Blocks a payment must be buried under before it counts.",
            metavar="N",
        ),
        SettingSpec(
            "finality",
            _finality,
            "confirmations (latest minus N), or the node's safe or finalized block.",
            metavar="MODE",
        ),
        SettingSpec(
            "start_block",
            _int_in(0, MAX_BIGINT, "start block"),
            "First block to follow on an empty ledger.",
            metavar="N",
        ),
        SettingSpec(
            "poll_interval", _seconds, "Seconds between head polls over HTTP.", metavar="SECONDS"
        ),
        SettingSpec(
            "max_block_range",
            _int_in(1, 1_000_000, "max block range"),
            "Most blocks one eth_getLogs asks for.",
            metavar="N",
        ),
        SettingSpec(
            "reorg_history",
            _int_in(1, 1_000_000, "reorg history"),
            "Processed block hashes kept to find a reorg's common block.",
            metavar="BLOCKS",
        ),
        SettingSpec(
            "max_orders_per_payment",
            _int_in(1, 100_000, "max orders per payment"),
            "Most orders one payment creates; the rest stays as credit.",
            metavar="N",
        ),
        SettingSpec("aws_region", _region, "AWS region to launch instances in.", metavar="REGION"),
        SettingSpec(
            "aws_endpoint_url",
            _http_url,
            "EC2 endpoint, e.g. moto's server or LocalStack (default: AWS itself).",
            metavar="URL",
        ),
        SettingSpec(
            "workers",
            _int_in(0, 64, "workers"),
            "Provisioning workers per process (0: follow only; provision with `watcher drain`).",
            metavar="N",
        ),
        SettingSpec(
            "claim_seconds",
            _seconds,
            "How long a claimed job is held without a heartbeat before another worker may take it.",
            metavar="SECONDS",
        ),
        SettingSpec(
            "capacity_attempts",
            _int_in(1, 100, "capacity attempts"),
            "Launch tries on capacity errors before the order fails (and is refunded).",
            metavar="N",
        ),
        SettingSpec(
            "reconcile_interval",
            _int_in(0, 86_400, "reconcile interval"),
            "Seconds between sweeps comparing orders with the cloud's tagged instances "
            "(0: off); differences are logged and counted in watcher_cloud_differences.",
            metavar="SECONDS",
        ),
        SettingSpec(
            "mqtt_url",
            _mqtt_url,
            "MQTT broker for order events, mqtt://[user:password@]host[:port] (default: off).",
            metavar="URL",
        ),
        SettingSpec(
            "http_host",
            _host,
            "Address of the web API `watcher run` serves (0.0.0.0: every interface).",
            metavar="HOST",
        ),
        SettingSpec(
            "http_port",
            _int_in(0, 65535, "port"),
            "Port of the web API and its OpenAPI document (0: off).",
            metavar="PORT",
        ),
        SettingSpec(
            "public_url",
            _public_url,
            "The pages' address as buyers reach them, e.g. https://cloud.example.org (behind a "
            "proxy): sign-in messages must name it (default: the address a request came to).",
            metavar="URL",
        ),
        SettingSpec(
            "explorer_url",
            _http_url,
            "A block explorer for this chain, e.g. https://etherscan.io: receipts link each "
            "transaction to <URL>/tx/<hash> (default: no link).",
            metavar="URL",
        ),
        SettingSpec(
            "metrics_host",
            _host,
            "Address `watcher run` serves /metrics on (0.0.0.0: every interface).",
            metavar="HOST",
        ),
        SettingSpec(
            "metrics_port",
            _int_in(0, 65535, "port"),
            "Port of the Prometheus /metrics endpoint (0: off).",
            metavar="PORT",
        ),
        SettingSpec(
            "default_plan", _plan_name, "Plan new payers get (from the catalog).", metavar="NAME"
        ),
        SettingSpec(
            "hardhat_dir",
            _path,
            "Folder holding hardhat.config.js and node_modules.",
            metavar="PATH",
        ),
    )
}

assert set(SETTINGS) == {f.name for f in fields(Settings)} - {
    "config_file",
    "catalog",
    "webhooks",
    "infra",
}


@dataclass(frozen=True)
class WebhookEndpoint:
    """A receiver of signed events: its name (in the delivery log), URL, and the
    environment variable holding its signing secret (never in the file, never printed)."""

    name: str
    url: str
    secret_env: str

    def secret(self, environ: Mapping[str, str] | None = None) -> str:
        """The signing secret (`whsec_...`), or ConfigError naming the variable."""
        value = (os.environ if environ is None else environ).get(self.secret_env, "")
        if not value:
            raise ConfigError(
                f"set {self.secret_env}: the signing secret of webhook {self.name!r} "
                "(whsec_ and base64, as Standard Webhooks secrets are)"
            )
        return value


_WEBHOOK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


def parse_webhooks(raw: Any, path: Path) -> tuple[WebhookEndpoint, ...]:
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError(f"{path}: webhooks must be [[webhooks]] tables (name, url, secret_env)")
    found: list[WebhookEndpoint] = []
    for n, table in enumerate(raw):
        where = f"{path}: webhooks[{n}]"
        unknown = set(table) - {"name", "url", "secret_env"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        name, url, env = table.get("name"), table.get("url"), table.get("secret_env")
        if not isinstance(name, str) or not _WEBHOOK_NAME.fullmatch(name):
            raise ConfigError(f"{where}.name must be lowercase letters, digits, - or _")
        try:
            url = _http_url(str(url)) if isinstance(url, str) else None
        except ValueError as exc:
            raise ConfigError(f"{where}.url: {exc}") from None
        if url is None:
            raise ConfigError(f"{where}.url is missing")
        if not isinstance(env, str) or not _ENV_NAME.fullmatch(env):
            raise ConfigError(
                f"{where}.secret_env must name an environment variable (like "
                "WATCHER_WEBHOOK_SECRET), which holds the secret: never the secret itself"
            )
        if name in {e.name for e in found}:
            raise ConfigError(f"{where}: two webhooks are named {name!r}")
        found.append(WebhookEndpoint(name, url, env))
    return tuple(found)


def load_settings(
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Merge every source into validated Settings, or raise ConfigError naming the culprit."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    path, explicit = _config_path(config_file, environ)
    values: dict[str, Any] = {}
    plans = None
    webhooks: tuple[WebhookEndpoint, ...] = ()
    infra = InfraParams()
    if path is not None and (explicit or path.exists()):
        for key, raw in _read_toml(path).items():
            if key == "webhooks":
                webhooks = parse_webhooks(raw, path)
                continue
            if key == "infra":
                try:
                    infra = parse_infra(raw)
                except ValueError as exc:
                    raise ConfigError(f"{path}: {exc}") from None
                continue
            if key == "plans":
                try:
                    plans = parse_plans(raw)
                except ValueError as exc:
                    raise ConfigError(f"{path}: {exc}") from None
                continue
            spec = SETTINGS.get(key)
            if spec is None:
                raise ConfigError(f"{path}: unknown setting {key!r}")
            if spec.secret:
                raise ConfigError(
                    f"{path}: {key} must not be stored in a file in plain text; use {spec.env}"
                )
            if isinstance(raw, (dict, list)):
                raise ConfigError(f"{path}: {key} must be a single value")
            values[key] = _parse(
                spec, str(raw).lower() if isinstance(raw, bool) else str(raw), f"{path}: {key}"
            )
    for spec in SETTINGS.values():
        # An empty variable counts as unset (compose files and shells produce them).
        if environ.get(spec.env, "") != "":
            values[spec.name] = _parse(spec, environ[spec.env], spec.env)
    for name, raw_flag in flags.items():
        if raw_flag is not None:
            spec = SETTINGS[name]
            values[name] = _parse(spec, raw_flag, spec.flag)
    catalog = _catalog(plans, values.get("default_plan"), path)
    return Settings(
        **values,
        catalog=catalog,
        webhooks=webhooks,
        infra=infra,
        config_file=path if path is not None and path.exists() else None,
    )


def _catalog(plans: dict[str, Any] | None, default: str | None, path: Path | None) -> Catalog:
    base = Catalog()
    try:
        if plans is None:
            return Catalog(base.plans, default or base.default)
        return Catalog(
            plans, default or (base.default if base.default in plans else next(iter(plans)))
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}" if plans is not None else str(exc)) from None


def _config_path(flag: str | None, environ: Mapping[str, str]) -> tuple[Path | None, bool]:
    if flag is not None:
        return Path(flag).expanduser(), True
    if ENV_PREFIX + "CONFIG" in environ:
        return Path(environ[ENV_PREFIX + "CONFIG"]).expanduser(), True
    return DEFAULT_CONFIG_FILE, False


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start} is not valid UTF-8; TOML files must be "
            "UTF-8)"
        ) from None


def _parse(spec: SettingSpec, raw: str, source: str) -> Any:
    try:
        return spec.parse(raw)
    except ValueError as exc:
        # Parsers quote what they were given: a URL with a password or an API key in it
        # must not come back in the message.
        raise ConfigError(f"invalid {source}: {redact(str(exc), raw)}") from None
