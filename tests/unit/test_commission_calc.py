"""Plan math without a database: plan types, tiers, override precedence, currencies, rounding."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from partnernet.commissions.calc import (
    Rate,
    TierRate,
    add_months,
    choose_rate,
    commission_amount,
    cpc_amount,
    month_start,
    reversal_target,
    within_recurring_window,
)
from partnernet.money import format_amount, parse_amount

D = Decimal


@pytest.mark.parametrize(("plan_type", "rate", "amount", "expected"), [
    ("cps", Rate(percent=D("10")), 4990, 499),        # 10 % of 49.90
    ("cps", Rate(percent=D("12.5")), 1000, 125),
    ("cps", Rate(percent=D("0")), 1000, 0),
    ("cps", Rate(percent=D("100")), 1234, 1234),
    ("cpa", Rate(amount_minor=500), 99999, 500),     # flat per action, amount ignored
    ("cpa", Rate(amount_minor=500), None, 500),
    ("cpl", Rate(amount_minor=250), None, 250),      # flat per lead
    ("cpc", Rate(amount_minor=7), None, 7),
    ("cps", Rate(amount_minor=300), 4990, 300),      # flat override on a cps plan
    ("cpa", Rate(percent=D("5")), 2000, 100),        # percent override on a flat plan
])
def test_every_plan_type_pays_what_it_says(plan_type, rate, amount, expected):
    assert commission_amount(plan_type, rate, amount) == expected


@pytest.mark.parametrize(("currency", "order", "percent", "expected"), [
    # USD: 2 decimals. 10 % of 0.05 = 0.005 → 0.01 (half up)
    ("USD", "0.05", "10", "0.01"),
    ("USD", "0.04", "10", "0.00"),      # 0.004 → 0.00
    ("USD", "0.15", "10", "0.02"),      # 0.015 → 0.02 (half up, not banker's 0.02/0.01)
    ("USD", "0.25", "10", "0.03"),      # 0.025 → 0.03 (banker's would give 0.02)
    ("USD", "49.90", "7.5", "3.74"),    # 3.7425
    ("USD", "33.30", "15", "5.00"),     # 4.995 → 5.00
    # JPY: no decimals. 5 % of 1999 = 99.95 → 100; 5 % of 1990 = 99.5 → 100; 5 % of 1970 = 98.5 → 99
    ("JPY", "1999", "5", "100"),
    ("JPY", "1990", "5", "100"),
    ("JPY", "1970", "5", "99"),
    ("JPY", "1", "50", "1"),            # 0.5 yen → 1
    ("JPY", "1", "49.9999", "0"),
    # KWD: 3 decimals. 10 % of 0.005 = 0.0005 → 0.001; 12.5 % of 1.234 = 0.15425 → 0.154
    ("KWD", "0.005", "10", "0.001"),
    ("KWD", "1.234", "12.5", "0.154"),
    ("KWD", "0.012", "12.5", "0.002"),  # 0.0015 → 0.002
])
def test_currency_exponents_and_half_up_rounding(currency, order, percent, expected):
    amount = commission_amount("cps", Rate(percent=D(percent)), parse_amount(order, currency))
    assert format_amount(amount, currency) == expected


PLAN = Rate(percent=D("10"), source="plan")
TIERS = [TierRate(10, percent=D("12")), TierRate(50, percent=D("15"))]


@pytest.mark.parametrize(("nth", "source", "percent"), [
    (1, "plan", "10"),
    (9, "plan", "10"),       # one short of the first tier
    (10, "tier:10", "12"),   # the conversion that reaches the tier gets it
    (11, "tier:10", "12"),
    (49, "tier:10", "12"),
    (50, "tier:50", "15"),
    (500, "tier:50", "15"),
])
def test_tier_edges(nth, source, percent):
    rate = choose_rate(PLAN, TIERS, None, nth)
    assert (rate.source, rate.percent) == (source, D(percent))


def test_tiers_need_not_be_sorted():
    rate = choose_rate(PLAN, list(reversed(TIERS)), None, 60)
    assert rate.percent == D("15")


@pytest.mark.parametrize(("override", "nth", "expected_source", "expected_amount"), [
    (None, 1, "plan", 1000),
    (None, 10, "tier:10", 1200),
    (Rate(percent=D("20")), 1, "override", 2000),     # override beats the plan
    (Rate(percent=D("20")), 50, "override", 2000),    # ... and beats every tier
    (Rate(percent=D("5")), 50, "override", 500),      # even a worse override wins
    (Rate(amount_minor=777), 50, "override", 777),    # a flat override on a cps plan
])
def test_override_beats_tier_beats_plan(override, nth, expected_source, expected_amount):
    rate = choose_rate(PLAN, TIERS, override, nth)
    assert rate.source == expected_source
    assert commission_amount("cps", rate, 10000) == expected_amount


def test_flat_tiers():
    plan = Rate(amount_minor=500)
    tiers = [TierRate(3, amount_minor=700)]
    assert commission_amount("cpa", choose_rate(plan, tiers, None, 2), None) == 500
    assert commission_amount("cpa", choose_rate(plan, tiers, None, 3), None) == 700


@pytest.mark.parametrize(("clicks", "expected"), [(0, 0), (1, 7), (1000, 7000)])
def test_cpc_pays_per_unique_click(clicks, expected):
    assert cpc_amount(Rate(amount_minor=7), clicks) == expected


@pytest.mark.parametrize(("commission", "refunded", "order", "expected"), [
    (499, 4990, 4990, 499),     # full
    (499, 9999, 4990, 499),     # more than the order: all of it
    (499, 2495, 4990, 250),     # half: 249.5 → 250 (half up)
    (499, 0, 4990, 0),
    (500, 1, 3, 167),           # 166.67
    (500, 0, 0, 500),           # an order without an amount: a refund reverses all
])
def test_reversal_is_pro_rata_and_rounds_half_up(commission, refunded, order, expected):
    assert reversal_target(commission, refunded, order) == expected


def test_month_and_recurring_windows():
    at = datetime(2026, 1, 31, 15, 30, tzinfo=UTC)
    assert month_start(at) == datetime(2026, 1, 1, tzinfo=UTC)
    assert add_months(at, 1) == datetime(2026, 2, 28, 15, 30, tzinfo=UTC)  # clamped
    assert add_months(at, 12) == datetime(2027, 1, 31, 15, 30, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 5, tzinfo=UTC), 3) == datetime(2027, 2, 5, tzinfo=UTC)
    first = datetime(2026, 1, 10, tzinfo=UTC)
    assert within_recurring_window(first, datetime(2026, 7, 10, tzinfo=UTC), 6)
    assert not within_recurring_window(first, datetime(2026, 7, 10, 0, 0, 1, tzinfo=UTC), 6)
    assert not within_recurring_window(None, first, 6)
    assert not within_recurring_window(first, first, None)
