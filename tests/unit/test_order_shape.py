"""The order's shape is declared once (queries.OrderView): the table's columns, the JSON
renderings (the operator's `watcher orders --json`, the API's and MQTT's public view) and
the API's schema must all agree with it. Nothing here adds to the shape; it checks that
every place that derives from it does."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from datetime import UTC, datetime
from typing import Any, get_args, get_type_hints

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from watcher.adapters.ledger import queries
from watcher.adapters.ledger.queries import INTERNAL_ORDER_COLUMNS, ORDER_ROW_FIELDS, OrderView
from watcher.adapters.ledger.schema import OrderRecord
from watcher.domain.catalog import Catalog
from watcher.domain.kinds.ec2_instance import ec2_plan
from watcher.interfaces.web.api import OrderOut, create_api

CTK = 10**18
FIELDS = [f.name for f in fields(OrderView)]
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
# A value of each type, so that a new field needs nothing here.
SAMPLES: dict[Any, Any] = {str: "text", int: 7, bool: True, datetime: AT}
# Every field set (none left None), so each one's JSON form shows; the values whose
# public form differs from the operator's are the ones the public must not read.
ORDER = OrderView(
    **{
        name: SAMPLES[next(t for t in (hint, *get_args(hint)) if t in SAMPLES)]
        for name, hint in get_type_hints(OrderView).items()
    }
    | {
        "amount": 10 * CTK,
        "failure_reason": "UnauthorizedOperation: arn:aws:iam::123456789012:user/watcher",
        "last_error": "RequestLimitExceeded: Request limit exceeded.",
        "resource": json.dumps(
            {"kind": "ec2_instance", "instance_type": "t3.micro", "ami": "ami-0123456789abcdef0"}
        ),
    }
)


def test_every_column_of_orders_is_a_field_or_deliberately_internal() -> None:
    columns = set(OrderRecord.__table__.columns.keys())
    assert columns == set(ORDER_ROW_FIELDS) | INTERNAL_ORDER_COLUMNS
    assert not set(ORDER_ROW_FIELDS) & INTERNAL_ORDER_COLUMNS
    # The other fields come from the order's job: a view read without it (MQTT, audit)
    # must still be whole.
    for f in fields(OrderView):
        if f.name not in columns:
            assert f.default is not MISSING, f.name


def test_every_field_is_declared_with_its_documentation() -> None:
    assert [f.name for f in queries.ORDER_SHAPE] == FIELDS
    assert all(f.doc.strip() for f in queries.ORDER_SHAPE)


@pytest.mark.parametrize("render", [OrderView.as_json, OrderView.as_public_json])
def test_the_json_renderings_have_every_field_and_fit_the_api_schema(render: Any) -> None:
    shown = render(ORDER)
    assert list(shown) == FIELDS
    assert json.loads(json.dumps(shown)) == shown  # plain JSON, nothing left to convert
    # Validation would refuse a datetime or an int where the schema says string.
    assert OrderOut.model_validate(shown).model_dump() == shown
    assert shown["amount"] == str(10 * CTK) and shown["created_at"] == AT.isoformat()


def test_the_public_rendering_keeps_the_operators_details_out() -> None:
    public, operator = ORDER.as_public_json(), ORDER.as_json()
    assert public["resource"] == {"kind": "ec2_instance", "instance_type": "t3.micro"}
    assert operator["resource"]["ami"] == "ami-0123456789abcdef0"
    assert public["failure_reason"] == (
        "UnauthorizedOperation: the operator's cloud account is not allowed to do this"
    )
    assert public["last_error"] == "RequestLimitExceeded: the cloud is throttling requests"
    changed = {"resource", "failure_reason", "last_error"}
    assert {k: v for k, v in public.items() if k not in changed} == {
        k: v for k, v in operator.items() if k not in changed
    }


def test_the_api_schema_documents_every_field_with_its_json_type() -> None:
    catalog = Catalog({"t3.micro": ec2_plan("t3.micro", 10 * CTK, "t3.micro", "ami-0")}, "t3.micro")
    # The schema is built without touching the database.
    app = create_api(create_async_engine("sqlite+aiosqlite://"), 1337, "0x" + "00" * 20, catalog)
    schema = app.openapi()["components"]["schemas"]["OrderOut"]
    assert list(schema["properties"]) == FIELDS
    assert schema["required"] == FIELDS
    for name, shown in schema["properties"].items():
        assert shown["description"], name
    types = {
        name: shown.get("type") or [t["type"] for t in shown["anyOf"]]
        for name, shown in schema["properties"].items()
    }
    assert (types["amount"], types["created_at"], types["paid_at"]) == (
        "string",
        "string",
        ["string", "null"],
    )
    assert (types["resource"], types["overdue"], types["attempts"]) == (
        ["object", "null"],
        "boolean",
        ["integer", "null"],
    )


def test_order_view_reads_a_row_by_its_column_names() -> None:
    row = type("Row", (), {name: getattr(ORDER, name) for name in ORDER_ROW_FIELDS})()
    view = queries.order_view(row)
    assert view.as_json() == {
        **ORDER.as_json(),
        # the job's fields are not in an `orders` row
        "attempts": None,
        "last_error": None,
        "next_attempt_at": None,
        "overdue": False,
    }
