"""The walk CPC and CPM accruals share: a UTC day's unique, non-bot events per partner × offer.

Both plan types pay per counted event, once per partner × offer × day; what they count
(clicks or impressions) and how a count becomes money differ, and stay in ``cpc.py`` and
``cpm.py``. This is only the walk: which plans, which day, which counts, which rate, and when
the hold ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from partnernet import clock
from partnernet.accounts.models import Merchant
from partnernet.commissions import calc
from partnernet.commissions.services import hold_days_for, override_rate, plan_rates
from partnernet.extensions import db
from partnernet.offers.models import CommissionPlan, Offer


@dataclass
class DailyCount:
    """One partner's count of counted events on one offer's plan for the day."""

    plan: CommissionPlan
    offer: Offer
    merchant: Merchant
    partner_id: int
    count: int
    day: date
    end: datetime

    def rate(self) -> calc.Rate:
        """The plan's rate for this partner (its override, if any; no tiers for daily accruals)."""
        base, _ = plan_rates(self.plan)
        return calc.choose_rate(base, [], override_rate(self.offer.id, self.partner_id, self.plan.event), 1)

    def hold_until(self) -> datetime:
        """The day's end plus the hold that applies to this partner on this offer."""
        return self.end + timedelta(days=hold_days_for(self.offer, self.merchant, self.partner_id))


def day_bounds(day: date | None) -> tuple[date, datetime, datetime]:
    """The UTC day (yesterday by default) and its [start, end) instants."""
    day = day or (clock.now() - timedelta(days=1)).date()
    start = datetime.combine(day, time.min, tzinfo=clock.now().tzinfo)
    return day, start, start + timedelta(days=1)


def daily_counts(plan_type: str, event_model: Any, day: date | None) -> Iterator[DailyCount]:
    """For every ``plan_type`` plan (by id) and every partner with unique, non-bot rows of
    ``event_model`` (Click or Impression: ``offer_id``, ``partner_id``, ``created_at``,
    ``is_unique``, ``is_bot``) on the day, in partner order: one DailyCount."""
    day, start, end = day_bounds(day)
    plans = list(db.session.scalars(select(CommissionPlan).where(CommissionPlan.type == plan_type)
                                    .order_by(CommissionPlan.id)))
    for plan in plans:
        offer = plan.offer
        merchant = db.session.get(Merchant, offer.merchant_id)
        assert merchant is not None
        counts = db.session.execute(
            select(event_model.partner_id, func.count()).where(
                event_model.offer_id == offer.id, event_model.created_at >= start,
                event_model.created_at < end, event_model.is_unique.is_(True),
                event_model.is_bot.is_(False))
            .group_by(event_model.partner_id).order_by(event_model.partner_id)).all()
        for partner_id, count in counts:
            yield DailyCount(plan, offer, merchant, int(partner_id), int(count), day, end)
