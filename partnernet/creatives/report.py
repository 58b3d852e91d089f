"""Impressions, clicks, CTR, commission and CPM by creative (GET /api/v1/creatives/report).

Definitions (the API documents them too):

- ``impressions``: every recorded view; ``unique_impressions``: unique and not a bot — the
  views CPM plans pay and the base of the two rates below.
- ``clicks``: non-bot clicks that came through the creative's snippet (``?cr=``).
- ``ctr`` = clicks ÷ unique impressions (4 decimals).
- ``commission``: what the creative earned its partners — the commissions (not rejected, less
  reversals) of conversions whose click carried the creative, plus the creative's exact share
  of CPM accruals (the day's rate × its unique impressions that day, in thousandths of a
  minor unit) — rounded once, half-up, by ``money.prorate``.
- ``cpm`` = commission × 1,000 ÷ unique impressions, from the exact worth (half-up by
  ``money.prorate``): a creative paid only by a 2.00 CPM plan shows a CPM of 2.00.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import and_, case, func, select

from partnernet import money
from partnernet.creatives.exceptions import CreativeNotFound
from partnernet.creatives.models import CpmAccrual, Creative, Impression
from partnernet.extensions import db

RATE = Decimal("0.0001")


def creative_stats(merchant_id: int, offer_id: int | None = None, since: datetime | None = None,
                   until: datetime | None = None, creative_id: int | None = None) -> list[dict[str, Any]]:
    """One row per creative of the merchant (of one offer, or one creative), oldest first."""
    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion
    from partnernet.links.models import Click
    from partnernet.offers.models import Offer
    from partnernet.reports.rollup import day_of

    stmt = select(Creative, Offer.currency).join(Offer, Offer.id == Creative.offer_id).where(
        Creative.merchant_id == merchant_id)
    if offer_id is not None:
        stmt = stmt.where(Creative.offer_id == offer_id)
    if creative_id is not None:
        stmt = stmt.where(Creative.id == creative_id)
    creatives = db.session.execute(stmt.order_by(Creative.id)).all()
    if creative_id is not None and not creatives:
        raise CreativeNotFound()
    if not creatives:
        return []
    ids = [c.id for c, _ in creatives]

    def window(column: Any) -> list[Any]:
        where = []
        if since is not None:
            where.append(column >= since)
        if until is not None:
            where.append(column < until)
        return where

    paid_view = and_(Impression.is_unique.is_(True), Impression.is_bot.is_(False))
    imps = {cid: (int(n), int(u)) for cid, n, u in db.session.execute(
        select(Impression.creative_id, func.count(),
               func.coalesce(func.sum(case((paid_view, 1), else_=0)), 0))
        .where(Impression.merchant_id == merchant_id, Impression.creative_id.in_(ids),
               *window(Impression.created_at))
        .group_by(Impression.creative_id))}
    clicks = {cid: int(n) for cid, n in db.session.execute(
        select(Click.creative_id, func.count())
        .where(Click.merchant_id == merchant_id, Click.creative_id.in_(ids), Click.is_bot.is_(False),
               *window(Click.created_at))
        .group_by(Click.creative_id))}
    net = Commission.amount_minor - Commission.reversed_minor
    earned = {cid: int(n) for cid, n in db.session.execute(
        select(Click.creative_id, func.coalesce(func.sum(net), 0))
        .join(Conversion, Conversion.click_id == Click.id)
        .join(Commission, Commission.conversion_id == Conversion.id)
        .where(Click.merchant_id == merchant_id, Click.creative_id.in_(ids), Commission.status != "rejected",
               *window(Conversion.created_at))
        .group_by(Click.creative_id))}
    cpm_milli = {cid: int(n) for cid, n in db.session.execute(
        select(Impression.creative_id, func.coalesce(func.sum(CpmAccrual.rate_minor), 0))
        .join(CpmAccrual, and_(CpmAccrual.offer_id == Impression.offer_id,
                               CpmAccrual.partner_id == Impression.partner_id,
                               CpmAccrual.day == day_of(Impression.created_at)))
        .where(Impression.merchant_id == merchant_id, Impression.creative_id.in_(ids), paid_view,
               *window(Impression.created_at))
        .group_by(Impression.creative_id))}

    rows = []
    for creative, currency in creatives:
        n, unique = imps.get(creative.id, (0, 0))
        k = clicks.get(creative.id, 0)
        # Exact worth in thousandths of a minor unit; each figure shown is rounded once from it.
        exact = earned.get(creative.id, 0) * 1000 + cpm_milli.get(creative.id, 0)
        commission = money.prorate(exact, 1, 1000)
        rows.append({
            "creative_id": creative.id, "offer_id": creative.offer_id, "name": creative.name,
            "kind": creative.kind, "status": creative.status, "impressions": n,
            "unique_impressions": unique, "clicks": k,
            "ctr": str((Decimal(k) / Decimal(unique)).quantize(RATE, ROUND_HALF_UP)) if unique else None,
            "commission": money.format_amount(commission, currency), "currency": currency,
            # commission × 1,000 ÷ unique = exact thousandths ÷ unique, in minor units
            "cpm": money.format_amount(money.prorate(exact, 1, unique), currency) if unique else None,
            "fatigued": creative.fatigued_at is not None, "fatigue_reasons": creative.fatigue_reasons,
        })
    return rows
