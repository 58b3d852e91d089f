"""Creative fatigue on synthetic daily series."""

from datetime import date, timedelta
from decimal import Decimal

from partnernet.creatives.fatigue import DayCount, detect

START = date(2026, 1, 1)


def series(days, ctr_of_day, impressions=1000):
    return [DayCount(START + timedelta(days=i), impressions, int(impressions * ctr_of_day(i)))
            for i in range(days)]


def test_ctr_falling_by_more_than_30_percent_is_flagged():
    # 2% for the first 14 days, 1.2% from day 14 on: a 40% drop
    data = series(25, lambda i: 0.02 if i < 14 else 0.012)
    result = detect(data, START, START + timedelta(days=25))
    assert result.tired and result.reasons == ("ctr_drop",)
    assert result.launch_ctr == Decimal("0.02") and result.recent_ctr == Decimal("0.012")


def test_a_25_percent_drop_is_not_flagged_but_a_lower_threshold_flags_it():
    data = series(25, lambda i: 0.02 if i < 14 else 0.015)
    today = START + timedelta(days=25)
    assert not detect(data, START, today).tired
    assert detect(data, START, today, drop=Decimal("0.20")).reasons == ("ctr_drop",)


def test_age_past_the_refresh_interval_is_flagged():
    data = series(30, lambda i: 0.02)
    result = detect(data, START, START + timedelta(days=30))
    assert result.reasons == ("age",)
    assert not detect(data, START, START + timedelta(days=30), refresh_days=60).tired


def test_too_few_impressions_say_nothing():
    data = series(25, lambda i: 0.02 if i < 14 else 0.0, impressions=10)
    result = detect(data, START, START + timedelta(days=25))
    assert not result.tired and result.recent_ctr is None
