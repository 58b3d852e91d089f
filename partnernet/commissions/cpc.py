"""CPC accrual: a daily commission per partner × offer for its unique, non-bot clicks."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from partnernet.commissions import calc
from partnernet.commissions.accrual import daily_counts
from partnernet.commissions.models import Commission
from partnernet.extensions import db
from partnernet.links.models import Click


def accrue_cpc(day: date | None = None) -> int:
    """Job: one commission per partner × offer for a UTC day's unique, non-bot clicks. Commits.

    Defaults to yesterday; safe to run twice (one accrual per partner × offer × day).
    """
    created = 0
    for item in daily_counts("cpc", Click, day):
        offer = item.offer
        exists = db.session.scalar(select(Commission.id).where(
            Commission.offer_id == offer.id, Commission.partner_id == item.partner_id,
            Commission.accrual_date == item.day))
        if exists is not None:
            continue
        commission = Commission(
            merchant_id=offer.merchant_id, partner_id=item.partner_id, offer_id=offer.id,
            conversion_id=None, kind="cpc", amount_minor=calc.cpc_amount(item.rate(), item.count),
            currency=offer.currency, reversed_minor=0, status="pending",
            hold_until=item.hold_until(), flags=[], accrual_date=item.day, click_count=item.count)
        try:
            with db.session.begin_nested():
                db.session.add(commission)
        except IntegrityError:
            continue  # another run accrued it meanwhile
        created += 1
    db.session.commit()
    return created
