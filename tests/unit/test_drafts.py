"""Drafting an order (issue 10): the buyer's plan, periods, SSH key and name are checked
with a message per field, nothing clamped; the quote is price per period times periods."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.keyhelpers import new_ssh_key
from watcher.domain.catalog import Catalog
from watcher.domain.drafts import (
    MAX_PERIODS,
    QUOTE_VALIDITY,
    draft_terms,
    new_reference,
    parse_name,
    parse_periods,
    quote,
)
from watcher.domain.errors import InvalidInput
from watcher.domain.kinds.ec2_instance import ec2_plan

CTK = 10**18
CATALOG = Catalog(
    {
        "small": ec2_plan("small", 10 * CTK, "t3.micro", "ami-0123456789abcdef0"),
        "large": ec2_plan("large", 25 * CTK + CTK // 2, "t3.large", "ami-0123456789abcdef0"),
    },
    "small",
)
KEY = new_ssh_key()


def test_a_quote_is_the_price_per_period_times_the_periods_until_a_deadline() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    terms = draft_terms(CATALOG, "large", "2", KEY + " me@host", "  build box ")
    offer = quote(terms, now)
    assert (terms.plan.name, terms.periods, terms.name) == ("large", 2, "build box")
    assert (offer.unit_price, offer.price) == (25 * CTK + CTK // 2, 51 * CTK)
    assert offer.expires_at == now + QUOTE_VALIDITY
    assert terms.ssh_key.comment == "me@host"


@pytest.mark.parametrize("value", [1, "1", " 7 ", MAX_PERIODS, str(MAX_PERIODS)])
def test_whole_periods_in_range_are_taken_as_typed(value: object) -> None:
    assert parse_periods(value) == int(str(value).strip())


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("150", f"from 1 to {MAX_PERIODS}, got 150"),
        ("2.5", "whole number"),
        (2.5, "whole number"),
        ("0", "got 0"),
        ("-1", "whole number"),
        ("", "whole number"),
        (True, "whole number"),
        ("²", "whole number"),
        ("1e3", "whole number"),
        ("9" * 5000, "whole number"),  # int() of it would raise past Python's digit limit
        (None, "whole number"),
    ],
)
def test_other_periods_get_a_message_never_a_clamp(value: object, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_periods(value)


def test_names_and_plans_are_checked() -> None:
    assert parse_name(None) is None and parse_name("   ") is None
    with pytest.raises(InvalidInput, match="longer than 64"):
        parse_name("x" * 65)
    with pytest.raises(InvalidInput, match="one line"):
        parse_name("a\nb")
    with pytest.raises(InvalidInput, match="no plan 'huge' here \\(plans: large, small\\)"):
        draft_terms(CATALOG, "huge", 1, KEY, None)
    with pytest.raises(InvalidInput, match="no SSH public key given"):
        draft_terms(CATALOG, "small", 1, "", None)


def test_references_are_fresh_32_byte_hex() -> None:
    references = {new_reference() for _ in range(100)}
    assert len(references) == 100
    assert all(len(r) == 66 and r.startswith("0x") and int(r, 16) for r in references)
