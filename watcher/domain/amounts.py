"""CTK amounts: exact integers of base units, parsed from and printed as decimal text.

Money never passes through a float: `parse_amount("12.5")` is 12_500_000_000_000_000_000.
"""

import re

from watcher.domain.errors import InvalidInput

CTK_DECIMALS = 18
UINT256_MAX = 2**256 - 1

_DECIMAL = re.compile(r"(?P<whole>[0-9]*)(?:\.(?P<frac>[0-9]*))?")


def parse_amount(text: str, decimals: int = CTK_DECIMALS, *, allow_zero: bool = False) -> int:
    """Parse a decimal token amount ("12", "12.5", ".5") into base units.

    Rejects signs, exponents, separators, more fractional digits than the token has,
    and anything that does not fit a uint256: each with a message that quotes the input.
    """
    raw = text.strip()
    match = _DECIMAL.fullmatch(raw)
    if raw.startswith("-") and _DECIMAL.fullmatch(raw[1:]):
        raise InvalidInput(f"amount must be positive, got {text!r}")
    if not raw or match is None or not (match["whole"] or match["frac"]):
        raise InvalidInput(f"amount must be a decimal number of CTK such as 12.5, got {text!r}")
    whole, frac = match["whole"] or "0", match["frac"] or ""
    if len(frac) > decimals:
        raise InvalidInput(
            f"amount {text!r} has {len(frac)} decimal places; CTK has at most {decimals}"
        )
    scale: int = 10**decimals
    units = int(whole) * scale + int(frac.ljust(decimals, "0") or "0")
    if units > UINT256_MAX:
        raise InvalidInput(f"amount {text!r} is larger than any token balance can be")
    if units == 0 and not allow_zero:
        raise InvalidInput(f"amount must be greater than zero, got {text!r}")
    return units


def format_amount(units: int, decimals: int = CTK_DECIMALS) -> str:
    """Base units as exact decimal text without trailing zeros: 12500000000000000000 -> "12.5"."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    frac_text = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"
