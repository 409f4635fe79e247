import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.domain.amounts import UINT256_MAX, format_amount, parse_amount
from watcher.domain.errors import InvalidInput

CTK = 10**18


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("10", 10 * CTK),
        ("12.5", 12 * CTK + CTK // 2),
        (".5", CTK // 2),
        ("7.", 7 * CTK),
        ("0.000000000000000001", 1),
        (" 3 ", 3 * CTK),
        ("1000000", 1_000_000 * CTK),
    ],
)
def test_parse_exact_base_units(text: str, units: int) -> None:
    assert parse_amount(text) == units


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "must be positive"),
        ("-0.5", "must be positive"),
        ("abc", "decimal number"),
        ("", "decimal number"),
        (".", "decimal number"),
        ("1e3", "decimal number"),
        ("1,5", "decimal number"),
        ("0x10", "decimal number"),
        ("nan", "decimal number"),
        ("inf", "decimal number"),
        ("+1", "decimal number"),
        ("1.0000000000000000001", "19 decimal places"),
        ("0", "greater than zero"),
        ("0.000", "greater than zero"),
        (str(UINT256_MAX), "larger than any token balance"),
    ],
)
def test_parse_rejects_with_a_message_naming_the_input(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_amount(text)
    assert "\n" not in str(info.value)


def test_zero_is_allowed_only_when_asked() -> None:
    assert parse_amount("0", allow_zero=True) == 0


def test_largest_representable_amount() -> None:
    whole, frac = divmod(UINT256_MAX, CTK)
    text = f"{whole}.{str(frac).rjust(18, '0')}"
    assert parse_amount(text) == UINT256_MAX
    assert format_amount(UINT256_MAX) == text


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (0, "0"),
        (1, "0.000000000000000001"),
        (10 * CTK, "10"),
        (CTK * 25 // 2, "12.5"),
        (-CTK, "-1"),
    ],
)
def test_format(units: int, text: str) -> None:
    assert format_amount(units) == text


@given(st.integers(min_value=1, max_value=UINT256_MAX))
def test_format_then_parse_round_trips(units: int) -> None:
    assert parse_amount(format_amount(units)) == units
