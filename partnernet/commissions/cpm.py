"""CPM accrual: a daily commission per partner × offer for its unique, non-bot impressions.

The arithmetic is exact and loses no money. A plan pays ``rate`` minor units per 1,000
impressions, so ``n`` impressions are worth ``rate × n`` *thousandths* of a minor unit, an
integer. Each (offer, partner) keeps a running total of that worth over all its accrual
days; a day pays the whole minor units the total has newly reached:

    paid on a day = floor(total worth after the day / 1000) − floor(total worth before / 1000)

So a day's fraction of a minor unit is not rounded away but carried to the next day, and
after any run of days the partner has been paid exactly ``floor(Σ worth / 1000)``: never
more than earned, less by under one minor unit (the carry still waiting). This is a floor,
not ``money.py``'s half-up rule, on purpose: half-up would pay a fraction of a cent before
it is earned and take it back the next day. No rounding rule is applied at all: every value
is an exact integer. A day that reaches no whole minor unit is recorded (its worth carries)
but creates no commission.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from partnernet.commissions.accrual import daily_counts
from partnernet.commissions.models import Commission
from partnernet.creatives.models import CpmAccrual, Impression
from partnernet.extensions import db

PER = 1000


@dataclass(frozen=True)
class CpmDay:
    """One day's CPM accrual: worth in thousandths of a minor unit, and what it pays."""

    value_milli: int
    amount_minor: int
    carry_milli: int


def cpm_day(rate_minor: int, impressions: int, prior_value_milli: int, prior_paid_minor: int) -> CpmDay:
    """Pure: what a day of ``impressions`` at ``rate_minor`` per 1,000 pays, given the pair's
    earlier worth (thousandths) and payments (minor units). See the module docstring."""
    if rate_minor < 0 or impressions < 0:
        raise ValueError("rate and impressions must not be negative")
    value = rate_minor * impressions
    total = prior_value_milli + value
    amount = total // PER - prior_paid_minor
    return CpmDay(value, max(amount, 0), total - (prior_paid_minor + max(amount, 0)) * PER)


def _serialize_runs() -> None:
    """PostgreSQL: one accrual run at a time (the running total is read, then extended)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('partnernet-accrue-cpm'))"))


def accrue_cpm(day: date | None = None) -> int:
    """Job: one commission per partner × offer for a UTC day's unique, non-bot impressions
    on a ``cpm`` plan. Commits. Defaults to yesterday; safe to run twice (one accrual per
    partner × offer × day). Returns how many commissions it created."""
    _serialize_runs()
    created = 0
    for item in daily_counts("cpm", Impression, day):
        offer, partner_id = item.offer, item.partner_id
        done = db.session.scalar(select(CpmAccrual.id).where(
            CpmAccrual.offer_id == offer.id, CpmAccrual.partner_id == partner_id,
            CpmAccrual.day == item.day))
        if done is not None:
            continue
        rate = item.rate()
        prior_value, prior_paid = db.session.execute(
            select(func.coalesce(func.sum(CpmAccrual.value_milli), 0),
                   func.coalesce(func.sum(CpmAccrual.amount_minor), 0))
            .where(CpmAccrual.offer_id == offer.id, CpmAccrual.partner_id == partner_id,
                   CpmAccrual.currency == offer.currency)).one()
        accrued = cpm_day(rate.amount_minor or 0, item.count, int(prior_value), int(prior_paid))
        try:
            with db.session.begin_nested():
                commission = None
                if accrued.amount_minor > 0:
                    commission = Commission(
                        merchant_id=offer.merchant_id, partner_id=partner_id, offer_id=offer.id,
                        conversion_id=None, kind="cpm", amount_minor=accrued.amount_minor,
                        currency=offer.currency, reversed_minor=0, status="pending",
                        hold_until=item.hold_until(), flags=[])
                    db.session.add(commission)
                    db.session.flush()
                db.session.add(CpmAccrual(
                    merchant_id=offer.merchant_id, offer_id=offer.id, partner_id=partner_id,
                    day=item.day, impressions=item.count, rate_minor=rate.amount_minor or 0,
                    value_milli=accrued.value_milli, amount_minor=accrued.amount_minor,
                    currency=offer.currency,
                    commission_id=commission.id if commission is not None else None))
        except IntegrityError:
            continue  # another run accrued it meanwhile
        if commission is not None:
            created += 1
    db.session.commit()
    return created
