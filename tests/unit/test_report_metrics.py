"""The report's integer rounding and printing equal the Decimal rule of ``partnernet.money``
(half-up to the unit, printed like ``str(Decimal)``): the fast path cannot change a number."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from partnernet.money import format_amount, prorate
from partnernet.reports import metrics
from partnernet.reports.metrics import (
    MONEY_SUMS,
    NO_MONEY,
    fixed,
    half_up,
    metric_values,
    money_per,
    money_per_unit,
    percent,
    ratio,
)

amounts = st.integers(-10**15, 10**15)
counts = st.integers(1, 10**9)


@given(amounts, counts)
def test_half_up_is_prorates_rounding(part, whole):
    assert half_up(part, whole) == prorate(part, 1, whole)


def test_half_up_rounds_ties_away_from_zero():
    assert [half_up(n, 2) for n in (-3, -1, 1, 3, 5)] == [-2, -1, 1, 2, 3]
    assert half_up(2, 3) == 1 and half_up(1, 3) == 0 and half_up(-2, 3) == -1


@given(amounts, st.integers(0, 6))
def test_fixed_prints_like_decimal(n, places):
    assert fixed(n, places) == str(Decimal(n).scaleb(-places))


@given(amounts, st.sampled_from(["USD", "JPY", "KWD", "EUR"]))
def test_fixed_is_format_amount(minor, currency):
    assert fixed(minor, metrics.exponent(currency)) == format_amount(minor, currency)


@given(st.integers(0, 10**9), st.integers(0, 10**9), amounts, st.sampled_from(["USD", "JPY", "KWD"]))
def test_ratios_match_the_decimal_definitions(part, whole, minor, currency):
    exp = metrics.exponent(currency)
    if whole == 0:
        assert percent(part, whole) is None and ratio(part, whole) is None
        assert money_per(minor, whole, currency) is None
        return
    assert percent(part, whole) == str(Decimal(prorate(10_000, part, whole)).scaleb(-2))
    assert ratio(part, whole) == str(Decimal(prorate(100, part, whole)).scaleb(-2))
    assert money_per(minor, whole, currency) == \
        str(Decimal(prorate(minor, 100, whole)).scaleb(-(exp + 2)))
    assert money_per_unit(minor, whole, currency) == \
        format_amount(prorate(minor, 1, whole), currency)


def test_metric_values_of_a_row():
    sums = dict.fromkeys(MONEY_SUMS, 0)
    sums.update(conversions=3, sales=2, leads=1, revenue_minor=15_000, refunded_minor=5_000,
                refunded_conversions=1, commission_minor=1_700, reversed_minor=500,
                sale_commission_minor=1_000, lead_commission_minor=200, held=1, rejected=2)
    row = dict(zip(metrics.METRIC_COLUMNS,
                   metric_values(7, 6, 1, tuple(sums[k] for k in MONEY_SUMS), "USD"), strict=True))
    assert row == {
        "currency": "USD", "clicks": 7, "unique_clicks": 6, "bot_clicks": 1, "conversions": 3,
        "sales": 2, "leads": 1, "conversion_rate": "50.00", "revenue": "150.00",
        "refunds": "50.00", "refunded_conversions": 1, "commission": "12.00",
        "epc": "1.7143", "revenue_per_click": "21.4286", "cpa": "5.00", "cpl": "2.00",
        "roas": "12.50", "reversal_rate": "29.41", "held": 1, "rejected": 2}
    no_money = dict(zip(metrics.METRIC_COLUMNS, metric_values(4, 0, 4, NO_MONEY, None),
                        strict=True))
    assert no_money["conversion_rate"] is None and no_money["epc"] is None
    assert no_money["clicks"] == 4 and no_money["revenue"] is None
