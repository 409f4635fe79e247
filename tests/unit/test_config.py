import re
from datetime import timedelta
from pathlib import Path

import pytest

from watcher.domain.errors import ConfigError
from watcher.domain.kinds.ec2_instance import Ec2Instance
from watcher.domain.leases import LeaseTerms, Refund
from watcher.runtime.config import SETTINGS, Secret, Settings, load_settings

ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def test_defaults_without_any_source() -> None:
    settings = load_settings({}, {})
    assert settings == Settings()
    assert settings.rpc_url == "http://127.0.0.1:8545"
    assert settings.token_address is None


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "watcher.toml"
    config.write_text('rpc_url = "http://file:1"\nrpc_timeout = 3\ndev_account = 2\n')
    env = {"WATCHER_RPC_URL": "http://env:2", "WATCHER_CONFIG": str(config)}
    settings = load_settings({"rpc_url": "ws://flag:3", "rpc_timeout": None}, env)
    assert settings.rpc_url == "ws://flag:3"
    assert settings.rpc_timeout == 3.0
    assert settings.dev_account == 2
    assert settings.config_file == config
    assert load_settings({}, env).rpc_url == "http://env:2"


def test_watcher_toml_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "watcher.toml").write_text(f'token_address = "{ADDRESS.lower()}"\n')
    assert load_settings({}, {}).token_address == ADDRESS


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WATCHER_RPC_URL": "localhost:8545"}, "invalid WATCHER_RPC_URL: 'localhost:8545' is not"),
        ({"WATCHER_RPC_URL": "http://h:99999"}, "invalid WATCHER_RPC_URL: .* invalid port"),
        ({"WATCHER_TOKEN_ADDRESS": "0x12"}, "invalid WATCHER_TOKEN_ADDRESS: must be 0x"),
        ({"WATCHER_RPC_TIMEOUT": "soon"}, "invalid WATCHER_RPC_TIMEOUT: 'soon' is not a number"),
        ({"WATCHER_RPC_TIMEOUT": "-1"}, "between 0 and 86400"),
        ({"WATCHER_RPC_TIMEOUT": "nan"}, "between 0 and 86400"),
        (
            {"WATCHER_DEV_ACCOUNT": "20"},
            "invalid WATCHER_DEV_ACCOUNT: dev account must be between 0 and 19",
        ),
        ({"WATCHER_DEVCHAIN_PORT": "0"}, "port must be between 1 and 65535"),
        ({"WATCHER_CONFIG": "/nonexistent/watcher.toml"}, "does not exist"),
    ],
)
def test_invalid_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings({}, env)
    assert "\n" not in str(info.value)


def test_invalid_flag_is_named_as_a_flag() -> None:
    with pytest.raises(ConfigError, match="invalid --rpc-url"):
        load_settings({"rpc_url": "nope"}, {})


def test_private_key_error_never_echoes_the_value() -> None:
    bad = KEY[:-2]
    with pytest.raises(ConfigError) as info:
        load_settings({}, {"WATCHER_PRIVATE_KEY": bad})
    assert bad[2:20] not in str(info.value)
    assert "WATCHER_PRIVATE_KEY" in str(info.value)


def test_secrets_are_masked_in_repr() -> None:
    settings = load_settings(
        {}, {"WATCHER_PRIVATE_KEY": KEY, "WATCHER_KEYSTORE_PASSWORD": "hunter2"}
    )
    assert isinstance(settings.private_key, Secret)
    assert settings.private_key.reveal() == KEY
    assert KEY[2:] not in repr(settings)
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rpc_ur = 'x'\n", "unknown setting 'rpc_ur'"),
        (f"private_key = '{KEY}'\n", "must not be stored in a file"),
        ("rpc_url = [1]\n", "must be a single value"),
        ("rpc_url = \n", "not valid TOML"),
        ("dev_account = 99\n", r"watcher.toml: dev_account: dev account must be between"),
    ],
)
def test_bad_config_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "watcher.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings({}, {})


def test_every_setting_has_an_env_twin_and_only_secrets_lack_a_flag() -> None:
    for name, spec in SETTINGS.items():
        assert spec.env == "WATCHER_" + name.upper()
        assert spec.flag == "--" + name.replace("_", "-")
    assert {n for n, s in SETTINGS.items() if s.secret} == {"private_key", "keystore_password"}


def test_plan_catalog_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "watcher.toml").write_text(
        'default_plan = "big"\n'
        '[plans."t3.micro"]\nprice = "10"\n'
        '[plans.big]\nprice = 42\ninstance_type = "t3.large"\nami = "ami-0123456789abcdef0"\n'
        'key_name = "ops"\nsecurity_group_ids = ["sg-0123abcd"]\nsubnet_id = "subnet-0123abcd"\n'
    )
    catalog = load_settings({}, {}).catalog
    big = catalog.default_plan
    ec2 = Ec2Instance.of(big.spec)
    assert (big.name, big.price, ec2.instance_type, ec2.ami) == (
        "big",
        42 * 10**18,
        "t3.large",
        "ami-0123456789abcdef0",
    )
    assert (ec2.key_name, ec2.security_group_ids, ec2.subnet_id) == (
        "ops",
        ("sg-0123abcd",),
        "subnet-0123abcd",
    )
    # The thesis's AMI by default.
    assert catalog.plans["t3.micro"].spec.get("ami") == "ami-09278528675a8d54e"
    assert big.spec.kind == "ec2_instance"  # the default kind
    # Lease terms: an hour, a day of grace, warnings a day and an hour ahead, by default.
    assert big.lease == LeaseTerms()
    (tmp_path / "watcher.toml").write_text(
        '[plans.quick]\nprice = "1"\nperiod = "10s"\ngrace = "5s"\nwarn = ["8s", "2s"]\n'
        'refund = "none"\nmax_prepaid = 3\n'
    )
    quick = load_settings({}, {}).catalog.plans["quick"].lease
    assert quick == LeaseTerms(
        timedelta(seconds=10),
        timedelta(seconds=5),
        (timedelta(seconds=8), timedelta(seconds=2)),
        Refund.NONE,
        3,
    )


@pytest.mark.parametrize(
    ("plans", "message"),
    [
        ("[plans.a]\nprice = 10.5\n", "string or integer of CTK"),
        ('[plans.a]\nprice = "-1"\n', "amount must be positive"),
        ('[plans.a]\nprice = "1"\nami = "ubuntu"\n', "must look like ami-"),
        ('[plans.a]\nprice = "1"\nsecurity_group_ids = "sg-1"\n', "must be a list"),
        ('[plans.a]\nprice = "1"\nsize = 3\n', "unknown key 'size'"),
        ('[plans.a]\nprice = "1"\nperiod = "1.5h"\n', "plans.a.period must be a whole number"),
        ('[plans.a]\nprice = "1"\nperiod = "0s"\n', "plans.a: a lease period must be longer"),
        ('[plans.a]\nprice = "1"\nwarn = "1h"\n', "plans.a.warn must be a list"),
        ('[plans.a]\nprice = "1"\nrefund = "all"\n', 'refund must be "unused-periods" or "none"'),
        ('[plans.a]\nprice = "1"\nmax_prepaid = 0\n', "max_prepaid must be a whole number"),
        (
            '[plans.a]\nprice = "1"\nkind = "rds"\n',
            "plans.a.kind must be one of ec2_instance, s3_bucket, scaling_pool, not 'rds'",
        ),
        (
            'default_plan = "nope"\n[plans.a]\nprice = "1"\n',
            "default plan 'nope' is not in the catalog",
        ),
    ],
)
def test_bad_plans_are_one_line_errors(tmp_path: Path, plans: str, message: str) -> None:
    (tmp_path / "watcher.toml").write_text(plans)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings({}, {})
    assert "\n" not in str(info.value)


def test_an_empty_environment_variable_counts_as_unset() -> None:
    settings = load_settings({}, {"WATCHER_AWS_ENDPOINT_URL": "", "WATCHER_RPC_URL": ""})
    assert settings.aws_endpoint_url is None
    assert settings.rpc_url == "http://127.0.0.1:8545"


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://broker", "not an mqtt:// or mqtts:// URL"), ("mqtt://broker:99999", "invalid port")],
)
def test_mqtt_url_is_checked(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({}, {"WATCHER_MQTT_URL": url})


# --- issue 8, item 11: bad input is one line, never a traceback or a silent guess ---


@pytest.mark.parametrize("text", ["1_0", "\u0661\u0660", "\u00b2", "1e3", "0x10", " ", "10.0"])
def test_integer_settings_are_plain_ascii_digits(text: str) -> None:
    # int() reads "1_0" and Arabic-Indic one-zero as 10 without a word.
    with pytest.raises(ConfigError, match=r"invalid WATCHER_CONFIRMATIONS: .* is not a whole"):
        load_settings({}, {"WATCHER_CONFIRMATIONS": text})


@pytest.mark.parametrize("text", ["1_0", "\u0661\u0660"])
def test_seconds_settings_are_plain_ascii(text: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid WATCHER_RPC_TIMEOUT: .* not a number"):
        load_settings({}, {"WATCHER_RPC_TIMEOUT": text})


def test_integer_settings_still_accept_plain_numbers(tmp_path: Path) -> None:
    (tmp_path / "watcher.toml").write_text("confirmations = 1_2\n")  # TOML's own integer syntax
    assert load_settings({}, {}).confirmations == 12
    assert load_settings({}, {"WATCHER_CONFIRMATIONS": " 7 "}).confirmations == 7


SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.mark.parametrize("number", [SECP256K1_ORDER, SECP256K1_ORDER + 1, 2**256 - 1])
def test_private_key_at_or_above_the_curve_order_is_refused_without_echo(number: int) -> None:
    key = f"0x{number:064x}"
    with pytest.raises(ConfigError) as info:
        load_settings({}, {"WATCHER_PRIVATE_KEY": key})
    message = str(info.value)
    assert message.startswith("invalid WATCHER_PRIVATE_KEY: not a valid secp256k1 private key")
    for form in (key[2:], key[2:].upper(), str(number), key[2:18]):
        assert form not in message


def test_largest_private_key_is_accepted() -> None:
    key = f"0x{SECP256K1_ORDER - 1:064x}"
    assert load_settings({}, {"WATCHER_PRIVATE_KEY": key}).private_key == Secret(key)


def test_config_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "watcher.toml").write_bytes(b'rpc_url = "http://h\xe9:8545"\n')
    with pytest.raises(ConfigError, match=r"^watcher.toml is not UTF-8 text") as info:
        load_settings({}, {})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("300.1.1.1", "is not a valid IP address"),
        ("1.2.3", "is not a valid IP address"),
        ("2001:db8::zz", "is not a valid IP address"),
        ("a host", "is not a host name or address"),
        ("h/x", "is not a host name or address"),
    ],
)
def test_bad_hosts_are_refused_for_what_they_are(host: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"invalid WATCHER_HTTP_HOST: .*{message}"):
        load_settings({}, {"WATCHER_HTTP_HOST": host})


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", "::1", "2001:db8::1", "[::1]", "local"])
def test_good_hosts_are_accepted(host: str) -> None:
    assert load_settings({}, {"WATCHER_HTTP_HOST": host}).http_host == host.strip("[]")


def test_a_plain_file_path_is_a_sqlite_ledger(tmp_path: Path) -> None:
    settings = load_settings({}, {"WATCHER_DATABASE_URL": str(tmp_path / "other.db")})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    home = load_settings({}, {"WATCHER_DATABASE_URL": "~/ledgers/test.db"}).database_url
    assert home == f"sqlite+aiosqlite:///{Path.home() / 'ledgers' / 'test.db'}"


# --- issue 8, item 10: a rejected URL is not echoed with its credentials ---


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("WATCHER_RPC_URL", "ftp://robert:hunter2@node/v3/9aa3d95b3bc440fa88ea12eaa4456161"),
        (
            "WATCHER_RPC_URL",
            "https://robert:hunter2@node:99999/v3/9aa3d95b3bc440fa88ea12eaa4456161",
        ),
        ("WATCHER_WS_URL", "http://robert:hunter2@node/v3/9aa3d95b3bc440fa88ea12eaa4456161"),
        ("WATCHER_DATABASE_URL", "mysql://robert:hunter2@db/ledger"),
        ("WATCHER_MQTT_URL", "http://robert:hunter2@broker"),
        ("WATCHER_AWS_ENDPOINT_URL", "ws://robert:hunter2@moto:5000"),
    ],
)
def test_invalid_url_settings_do_not_echo_credentials(name: str, url: str) -> None:
    with pytest.raises(ConfigError, match=f"invalid {name}") as info:
        load_settings({}, {name: url})
    for secret in ("robert", "hunter2", "9aa3d95b3bc440fa88ea12eaa4456161"):
        assert secret not in str(info.value)


def test_webhooks_are_read_from_the_file_and_their_secrets_from_the_environment(
    tmp_path: Path,
) -> None:
    (tmp_path / "watcher.toml").write_text(
        '[[webhooks]]\nname = "crm"\nurl = "https://crm.example.org/hooks"\n'
        'secret_env = "CRM_SECRET"\n'
    )
    settings = load_settings({}, {"WATCHER_CONFIG": str(tmp_path / "watcher.toml")})
    (crm,) = settings.webhooks
    assert (crm.name, crm.url, crm.secret_env) == (
        "crm",
        "https://crm.example.org/hooks",
        "CRM_SECRET",
    )
    assert settings.events_on
    with pytest.raises(ConfigError, match=r"^set CRM_SECRET: the signing secret of webhook 'crm'"):
        crm.secret({})
    assert crm.secret({"CRM_SECRET": "whsec_abc"}) == "whsec_abc"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('webhooks = "x"\n', "webhooks must be [[webhooks]] tables"),
        ('[[webhooks]]\nname = "Crm!"\nurl = "https://a.b"\nsecret_env = "S"\n', "name must be"),
        ('[[webhooks]]\nname = "a"\nurl = "ftp://a.b"\nsecret_env = "S"\n', "url:"),
        (
            '[[webhooks]]\nname = "a"\nurl = "https://a.b"\nsecret_env = "whsec_x"\n',
            "never the secret",
        ),
        ('[[webhooks]]\nname = "a"\nurl = "https://a.b"\nsecret = "S"\n', "unknown key 'secret'"),
    ],
)
def test_bad_webhooks_are_one_line_errors(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "watcher.toml").write_text(table)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_settings({}, {"WATCHER_CONFIG": str(tmp_path / "watcher.toml")})
    assert "\n" not in str(info.value)
