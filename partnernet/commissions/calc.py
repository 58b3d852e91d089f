"""Pure plan math: which rate applies and what it pays. No database, no clock.

Precedence (documented; tested): a partner's **override** for the event beats the
plan's **tiers**, which beat the **plan**'s base rate. A tier applies from the
conversion that reaches its ``min_conversions`` (counting that conversion) onwards,
within the calendar month. Amounts are int minor units in the offer's currency;
the only rounding is ``money.percent_of`` (half-up to the minor unit).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from partnernet.money import percent_of, prorate


@dataclass(frozen=True)
class Rate:
    """A rate: ``percent`` of the amount (cps) or a flat ``amount_minor`` (cpa, cpl, cpc)."""

    percent: Decimal | None = None
    amount_minor: int | None = None
    source: str = "plan"  # plan | tier:<min> | override


@dataclass(frozen=True)
class TierRate:
    min_conversions: int
    percent: Decimal | None = None
    amount_minor: int | None = None


def choose_rate(plan: Rate, tiers: list[TierRate], override: Rate | None,
                nth_conversion_this_month: int) -> Rate:
    """The rate for the partner's ``nth`` conversion this month: override > tier > plan."""
    if override is not None:
        return Rate(override.percent, override.amount_minor, "override")
    reached = [t for t in tiers if t.min_conversions <= nth_conversion_this_month]
    if reached:
        best = max(reached, key=lambda t: t.min_conversions)
        return Rate(best.percent, best.amount_minor, f"tier:{best.min_conversions}")
    return plan


def commission_amount(plan_type: str, rate: Rate, amount_minor: int | None) -> int:
    """What a rate pays: cps is a percent of the conversion's amount, other types are flat."""
    if plan_type == "cps":
        if rate.percent is None:
            # An override given as a flat amount on a cps plan pays that amount.
            return rate.amount_minor or 0
        return percent_of(amount_minor or 0, rate.percent)
    if rate.amount_minor is None and rate.percent is not None:
        return percent_of(amount_minor or 0, rate.percent)
    return rate.amount_minor or 0


def cpc_amount(rate: Rate, unique_clicks: int) -> int:
    """A day's CPC accrual: flat amount per unique, non-bot click."""
    return (rate.amount_minor or 0) * unique_clicks


def month_start(moment: datetime) -> datetime:
    """The first instant of ``moment``'s calendar month (same timezone)."""
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months, clamped to the month's last day (Jan 31 + 1 → Feb 28)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def within_recurring_window(first_sale_at: datetime | None, at: datetime, months: int | None) -> bool:
    """Whether a recurring event at ``at`` still pays: up to ``months`` after the first sale."""
    if first_sale_at is None or not months:
        return False
    return first_sale_at <= at <= add_months(first_sale_at, months)


def reversal_target(commission_minor: int, refunded_minor: int, order_minor: int) -> int:
    """How much of a commission a refund total reverses: all of it, or pro rata (half-up)."""
    if order_minor <= 0 or refunded_minor >= order_minor:
        return commission_minor
    return prorate(commission_minor, refunded_minor, order_minor)
