"""CPM arithmetic, pure: whole minor units paid, the fraction carried, hand-computed values."""

import pytest

from partnernet.commissions.cpm import cpm_day


def test_a_day_pays_floor_of_the_running_total_minus_what_was_paid():
    # 2.50 per 1,000 (250 minor) × 1,234 impressions = 308,500 thousandths = 308.5 cents.
    first = cpm_day(250, 1234, 0, 0)
    assert (first.value_milli, first.amount_minor, first.carry_milli) == (308_500, 308, 500)
    # Next day 2 impressions: 500 + 500 = 1,000 thousandths → exactly one more cent, carry 0.
    second = cpm_day(250, 2, 308_500, 308)
    assert (second.value_milli, second.amount_minor, second.carry_milli) == (500, 1, 0)


def test_many_small_days_pay_what_one_big_day_would():
    value = paid = 0
    for _ in range(1000):                    # one impression a day at 0.777 cent
        day = cpm_day(777, 1, value, paid)
        value, paid = value + day.value_milli, paid + day.amount_minor
        assert 0 <= day.carry_milli < 1000
    assert paid == cpm_day(777, 1000, 0, 0).amount_minor == 777


def test_rate_changes_keep_the_carry():
    day1 = cpm_day(999, 1, 0, 0)            # 0.999 cent: nothing yet
    day2 = cpm_day(1, 1, day1.value_milli, 0)  # + 0.001 → exactly 1 cent
    assert (day1.amount_minor, day2.amount_minor, day2.carry_milli) == (0, 1, 0)


def test_negative_inputs_are_refused():
    with pytest.raises(ValueError):
        cpm_day(-1, 10, 0, 0)
    with pytest.raises(ValueError):
        cpm_day(10, -1, 0, 0)
