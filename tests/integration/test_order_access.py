"""The owner's access details (issue 10), on both databases: a drafted order paid through
the Checkout, provisioned (on the fake provider), shows its owner the public address, the
plan image's SSH user, a ready-to-copy ssh command and the key's fingerprint; another
signed-in wallet gets 403, nobody signed in 401; before it runs, the page says what
happens next."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.keyhelpers import new_ssh_key
from tests.signinhelpers import sign_in
from watcher.adapters.chain.dev_accounts import dev_account
from watcher.adapters.cloud.fake import FakeProvider
from watcher.adapters.ledger import migrations, queries
from watcher.adapters.ledger.database import create_engine
from watcher.adapters.ledger.drafts import Drafts
from watcher.adapters.ledger.jobs import JobQueue
from watcher.adapters.ledger.ledger import Ledger
from watcher.domain.catalog import Catalog
from watcher.domain.drafts import draft_terms, quote
from watcher.domain.host_keys import parse_console
from watcher.domain.kinds.ec2_instance import parse
from watcher.domain.payment import Payment
from watcher.domain.pricing import Plan
from watcher.domain.ssh_keys import parse_ssh_public_key
from watcher.interfaces.web.api import create_api
from watcher.ports.cloud import Cloud
from watcher.services.host_keys import HostKeys
from watcher.services.provisioner import Provisioner, ProvisionerConfig

CTK = 10**18
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHECKOUT = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
IMAGE = "ami-0123456789abcdef0"
ALICE, MALLORY = dev_account(1), dev_account(2)
UBUNTU = Plan(
    "ubuntu",
    12 * CTK,
    parse("ubuntu", {"instance_type": "t3.small", "ami": IMAGE, "ssh_user": "ubuntu"}),
)
CATALOG = Catalog({"ubuntu": UBUNTU}, "ubuntu")
KEY = new_ssh_key()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine: AsyncEngine = create_engine(database_url)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


def client_of(engine: AsyncEngine, host_keys: HostKeys | None = None) -> httpx.AsyncClient:
    app = create_api(
        engine,
        1337,
        TOKEN,
        CATALOG,
        public_url="http://watcher.test",
        checkout_address=CHECKOUT,
        host_keys=host_keys,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://watcher.test")


async def test_only_the_owner_sees_how_to_reach_the_instance(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    terms = draft_terms(CATALOG, "ubuntu", 2, KEY + " alice", "web")
    draft = await Drafts(engine, 1337).create(ALICE.address, terms, quote(terms, now), now)
    paid = Payment(1337, "0x" + "ab" * 32, 0, 5, "0x" + "cd" * 32, ALICE.address, 24 * CTK)  # type: ignore[arg-type]
    await Ledger(engine, 1337, CATALOG, vending=False).record(
        [paid], block_times={5: now}, named={(paid.tx_hash, 0): draft.reference}
    )
    (order,) = await queries.orders(engine)
    fake = FakeProvider(images=[IMAGE])
    async with (
        client_of(engine, HostKeys(engine, Cloud(fake))) as alice,
        client_of(engine) as mallory,
        client_of(engine) as anyone,
    ):
        await sign_in(alice, ALICE)
        await sign_in(mallory, MALLORY)
        url = f"/api/orders/{order.order_id}/access"
        waiting = (await alice.get(url)).json()
        assert (waiting["state"], waiting["public_ip"], waiting["ssh_command"]) == (
            "queued",
            None,
            None,
        )
        assert "being started" in waiting["next_step"] and waiting["host_keys"] == []
        assert fake.calls["console_output"] == 0  # not running: the console is not read

        worker = Provisioner(
            JobQueue(engine, "w", 30), Cloud(fake), CATALOG, ProvisionerConfig(idle_poll=0.01)
        )
        assert await worker.drain(max_wait=10) == 0
        (launch,) = fake.launches
        assert launch.ssh_keys == (KEY,)  # type and body; the comment stays with the buyer

        mine = (await alice.get(url)).json()
        (instance,) = fake.instances()
        assert mine["state"] == "running" and mine["public_ip"] == instance.public_ip
        assert mine["ssh_user"] == "ubuntu" and mine["periods"] == 2 and mine["name"] == "web"
        assert mine["ssh_command"] == f"ssh ubuntu@{instance.public_dns}"
        assert mine["ssh_key_fingerprint"] == parse_ssh_public_key(KEY).fingerprint
        assert mine["summary"] == "t3.small" and "log in" in mine["next_step"]
        # Host keys from the console, kept: the next look reads the ledger, not the cloud.
        expected = parse_console(await fake.console_output(instance.instance_id))  # type: ignore[arg-type]
        assert [(k["type"], k["fingerprint"]) for k in mine["host_keys"]] == [
            (k.type, k.fingerprint) for k in expected
        ]
        looks = fake.calls["console_output"]
        assert (await alice.get(url)).json()["host_keys"] == mine["host_keys"]
        assert fake.calls["console_output"] == looks

        refused = await mallory.get(url)
        assert refused.status_code == 403 and "another wallet" in refused.json()["detail"]
        assert (await anyone.get(url)).status_code == 401
        assert (await alice.get(f"/api/orders/{'0' * 32}/access")).status_code == 404
        # The public views never show where it is reached.
        public = (await anyone.get("/api/orders", params={"payer": ALICE.address})).json()
        assert "public_ip" not in public[0] and "ssh_key" not in public[0]
