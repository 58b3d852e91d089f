"""Commission engine (interface used by the postback flow).

FOUNDATION STUB: the commissions issue replaces the bodies (tiers, overrides, caps,
fraud rules, holds, ledger) and keeps these signatures.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from partnernet import clock
from partnernet.accounts.models import Merchant
from partnernet.commissions.models import Commission
from partnernet.conversions.models import Conversion
from partnernet.extensions import db
from partnernet.links.models import Click
from partnernet.money import format_amount, percent_of, prorate
from partnernet.offers.models import Offer


def commission_for_conversion(conversion: Conversion, click: Click | None = None, *,
                              postback_ip: str | None = None) -> Commission | None:
    """Compute the commission of a new conversion and add it (flush, no commit).

    Returns None when the offer has no plan for the conversion's event.
    """
    offer = db.session.get(Offer, conversion.offer_id)
    assert offer is not None
    plan = next((p for p in offer.plans if p.event == conversion.event), None)
    if plan is None:
        return None
    if plan.type == "cps":
        assert plan.percent is not None
        amount = percent_of(conversion.amount_minor or 0, plan.percent)
    else:
        amount = plan.amount_minor or 0
    merchant = db.session.get(Merchant, conversion.merchant_id)
    assert merchant is not None
    hold_days = offer.hold_days if offer.hold_days is not None else merchant.default_hold_days
    commission = Commission(
        merchant_id=conversion.merchant_id, partner_id=conversion.partner_id,
        offer_id=conversion.offer_id, conversion_id=conversion.id, amount_minor=amount,
        currency=offer.currency, status="pending",
        hold_until=conversion.created_at + timedelta(days=hold_days), flags=[])
    db.session.add(commission)
    db.session.flush()
    return commission


def reverse_for_refund(conversion: Conversion, refunded_minor_total: int) -> Commission | None:
    """Reverse the conversion's commission for a refund, pro rata when partial (flush only)."""
    commission = db.session.scalar(select(Commission).where(
        Commission.conversion_id == conversion.id))
    if commission is None or commission.status in ("rejected", "reversed"):
        return commission
    whole = conversion.amount_minor or 0
    target = commission.amount_minor if whole == 0 or refunded_minor_total >= whole else \
        prorate(commission.amount_minor, refunded_minor_total, whole)
    commission.reversed_minor = target
    if target >= commission.amount_minor:
        commission.status = "reversed"
    commission.updated_at = clock.now()
    db.session.flush()
    return commission


def commission_view(commission: Commission) -> dict[str, Any]:
    """The JSON object of a commission (GET /api/v1/commissions and postback answers)."""
    return {
        "id": commission.id,
        "conversion_id": commission.conversion_id,
        "partner_id": commission.partner_id,
        "offer_id": commission.offer_id,
        "amount": format_amount(commission.amount_minor, commission.currency),
        "currency": commission.currency,
        "status": commission.status,
        "hold_until": commission.hold_until.isoformat(),
        "flags": [{"rule": f["rule"], "reason": f["reason"]} for f in commission.flags or []],
    }
