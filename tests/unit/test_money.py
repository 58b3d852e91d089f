"""Money: parsing, formatting and the one rounding rule, for 0-, 2- and 3-decimal currencies."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnernet.money import (
    CURRENCIES,
    MoneyError,
    exponent,
    format_amount,
    parse_amount,
    parse_percent,
    percent_of,
    prorate,
)

currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD", "KRW", "BHD"])
minor_units = st.integers(min_value=-(10**14), max_value=10**14)
percents = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("49.90", "USD", 4990), ("49.9", "USD", 4990), ("0.01", "usd", 1), ("1000", "JPY", 1000),
    ("1.234", "KWD", 1234), ("0", "EUR", 0), (" 12.00 ", "GBP", 1200), ("5", "KWD", 5000),
])
def test_parse_amount(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(("value", "currency", "code"), [
    ("1.999", "USD", "invalid_amount"),      # more decimals than USD has
    ("1.5", "JPY", "invalid_amount"),        # yen has none
    ("1.2345", "KWD", "invalid_amount"),
    ("abc", "USD", "invalid_amount"), ("", "USD", "invalid_amount"),
    ("NaN", "USD", "invalid_amount"), ("Infinity", "USD", "invalid_amount"),
    ("-1.00", "USD", "invalid_amount"), ("1e30", "USD", "invalid_amount"),
    ("1.00", "XXX", "unknown_currency"), ("1.00", "", "unknown_currency"),
    (1.5, "USD", "invalid_amount"),          # a float is refused, never converted
])
def test_parse_amount_refuses(value, currency, code):
    with pytest.raises(MoneyError) as exc:
        parse_amount(value, currency)
    assert exc.value.code == code


def test_exponents():
    assert (exponent("USD"), exponent("JPY"), exponent("KWD")) == (2, 0, 3)
    assert len(CURRENCIES) > 150


@pytest.mark.parametrize(("minor", "percent", "expected"), [
    (1005, "10", 101),     # 100.5 → 101: half rounds up
    (1015, "10", 102),     # 101.5 → 102
    (1004, "10", 100),     # 100.4 → 100
    (333, "33.3333", 111),
    (1, "50", 1),          # 0.5 → 1
    (999, "0", 0),
    (12345, "100", 12345),
    (-1005, "10", -101),   # negative: half away from zero
])
def test_percent_of_rounds_half_up(minor, percent, expected):
    assert percent_of(minor, Decimal(percent)) == expected


@given(minor_units, currencies)
def test_format_parse_round_trip(minor, currency):
    assert parse_amount(format_amount(minor, currency), currency, allow_negative=True) == minor


@given(minor_units, percents)
def test_percent_of_within_half_a_minor_unit(minor, percent):
    result = percent_of(minor, percent)
    assert isinstance(result, int)
    exact = Decimal(minor) * percent / 100
    assert abs(Decimal(result) - exact) <= Decimal("0.5")


@given(st.integers(0, 10**12), st.integers(0, 10**6), st.integers(1, 10**6))
def test_prorate_exact_within_half(minor, part, whole):
    result = prorate(minor, part, whole)
    assert abs(Decimal(result) - Decimal(minor) * part / whole) <= Decimal("0.5")


def test_no_float_anywhere():
    with pytest.raises(TypeError):
        percent_of(100, 10.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_amount(1.0, "USD")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        parse_percent(12.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["-1", "100.01", "abc", "1.00001"])
def test_parse_percent_refuses(value):
    with pytest.raises(MoneyError):
        parse_percent(value)


def test_format_amount():
    assert format_amount(4990, "USD") == "49.90"
    assert format_amount(5, "USD") == "0.05"
    assert format_amount(1000, "JPY") == "1000"
    assert format_amount(1234, "KWD") == "1.234"
    assert format_amount(-150, "EUR") == "-1.50"
