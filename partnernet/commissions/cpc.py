"""CPC accrual: a daily commission per partner × offer for its unique, non-bot clicks."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from partnernet import clock
from partnernet.accounts.models import Merchant
from partnernet.commissions import calc
from partnernet.commissions.models import Commission
from partnernet.commissions.services import hold_days_for, override_rate, plan_rates
from partnernet.extensions import db
from partnernet.links.models import Click
from partnernet.offers.models import CommissionPlan


def accrue_cpc(day: date | None = None) -> int:
    """Job: one commission per partner × offer for a UTC day's unique, non-bot clicks. Commits.

    Defaults to yesterday; safe to run twice (one accrual per partner × offer × day).
    """
    day = day or (clock.now() - timedelta(days=1)).date()
    start = datetime.combine(day, time.min, tzinfo=clock.now().tzinfo)
    end = start + timedelta(days=1)
    created = 0
    plans = list(db.session.scalars(select(CommissionPlan).where(CommissionPlan.type == "cpc")))
    for plan in plans:
        offer = plan.offer
        merchant = db.session.get(Merchant, offer.merchant_id)
        assert merchant is not None
        counts = db.session.execute(
            select(Click.partner_id, func.count()).where(
                Click.offer_id == offer.id, Click.created_at >= start, Click.created_at < end,
                Click.is_unique.is_(True), Click.is_bot.is_(False))
            .group_by(Click.partner_id)).all()
        for partner_id, clicks in counts:
            exists = db.session.scalar(select(Commission.id).where(
                Commission.offer_id == offer.id, Commission.partner_id == partner_id,
                Commission.accrual_date == day))
            if exists is not None:
                continue
            base, _ = plan_rates(plan)
            rate = calc.choose_rate(base, [], override_rate(offer.id, partner_id, plan.event), 1)
            commission = Commission(
                merchant_id=offer.merchant_id, partner_id=partner_id, offer_id=offer.id,
                conversion_id=None, kind="cpc", amount_minor=calc.cpc_amount(rate, int(clicks)),
                currency=offer.currency, reversed_minor=0, status="pending",
                hold_until=end + timedelta(days=hold_days_for(offer, merchant, partner_id)),
                flags=[], accrual_date=day, click_count=int(clicks))
            try:
                with db.session.begin_nested():
                    db.session.add(commission)
            except IntegrityError:
                continue  # another run accrued it meanwhile
            created += 1
    db.session.commit()
    return created
