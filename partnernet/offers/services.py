"""Offers and their commission plans, tiers and per-partner overrides; program membership."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select

from partnernet.accounts.models import Merchant
from partnernet.accounts.services import get_program_partner
from partnernet.extensions import db
from partnernet.money import parse_amount, parse_percent
from partnernet.offers.exceptions import OfferNotFound
from partnernet.offers.models import CommissionPlan, Membership, Offer, PlanOverride, PlanTier

_SCALARS = (
    "name", "landing_url", "hold_days", "attribution_window_days", "attribution_model",
    "attribution_priority", "status", "daily_cap", "click_id_param", "allow_paid_search",
    "coupon_requires_click", "recurring_months", "requires_approval",
)


def _rate(currency: str, rate: dict[str, Any]) -> tuple[Decimal | None, int | None]:
    """(percent, amount_minor) of a plan, tier or override, validated for the currency."""
    percent = rate.get("percent")
    amount = rate.get("amount")
    return (
        parse_percent(percent) if percent is not None else None,
        parse_amount(amount, currency) if amount is not None else None,
    )


def _build_plans(currency: str, plans: list[dict[str, Any]]) -> list[CommissionPlan]:
    built = []
    for spec in plans:
        percent, amount = _rate(currency, spec)
        plan = CommissionPlan(event=spec["event"], type=spec["type"], percent=percent,
                              amount_minor=amount)
        for tier in spec.get("tiers") or []:
            t_percent, t_amount = _rate(currency, tier)
            plan.tiers.append(PlanTier(min_conversions=tier["min_conversions"],
                                       percent=t_percent, amount_minor=t_amount))
        built.append(plan)
    return built


def create_offer(merchant_id: int, data: dict[str, Any]) -> Offer:
    """Create an offer with its plans. The currency defaults to the merchant's. Commits."""
    merchant = db.session.get(Merchant, merchant_id)
    assert merchant is not None
    currency = data.get("currency") or merchant.currency
    offer = Offer(merchant_id=merchant_id, currency=currency)
    for field in _SCALARS:
        if field in data:
            setattr(offer, field, data[field])
    offer.name = offer.name.strip()
    offer.plans = _build_plans(currency, data["plans"])
    db.session.add(offer)
    db.session.commit()
    return offer


def offers_query(merchant_id: int, status: str | None = None) -> Select[Offer]:
    """The merchant's offers, newest first."""
    stmt = select(Offer).where(Offer.merchant_id == merchant_id)
    if status:
        stmt = stmt.where(Offer.status == status)
    return stmt.order_by(Offer.id.desc())


def get_offer(merchant_id: int, offer_id: int) -> Offer:
    """One of the merchant's offers, or 404 (another merchant's offer does not exist here)."""
    offer = db.session.scalar(select(Offer).where(Offer.id == offer_id,
                                                  Offer.merchant_id == merchant_id))
    if offer is None:
        raise OfferNotFound()
    return offer


def update_offer(merchant_id: int, offer_id: int, data: dict[str, Any]) -> Offer:
    """Change an offer; ``plans`` replaces all plans. Currency is fixed once created. Commits."""
    offer = get_offer(merchant_id, offer_id)
    if "currency" in data and data["currency"] != offer.currency:
        from partnernet.errors import RuleRefused

        raise RuleRefused("An offer's currency cannot change; create a new offer.",
                          code="currency_locked")
    for field in _SCALARS:
        if field in data:
            setattr(offer, field, data[field])
    if "plans" in data:
        offer.plans.clear()
        db.session.flush()
        offer.plans.extend(_build_plans(offer.currency, data["plans"]))
    db.session.commit()
    return offer


def set_override(merchant_id: int, offer_id: int, data: dict[str, Any]) -> PlanOverride:
    """Give one partner its own rate for an event of an offer (replacing an earlier one). Commits."""
    offer = get_offer(merchant_id, offer_id)
    get_program_partner(merchant_id, data["partner_id"])
    plan = next((p for p in offer.plans if p.event == data["event"]), None)
    if plan is None:
        from partnernet.errors import RuleRefused

        raise RuleRefused(f"The offer has no plan for event {data['event']!r}.",
                          code="unknown_event")
    if (plan.type == "cps") != (data.get("percent") is not None):
        from partnernet.errors import ValidationFailed

        field = "percent" if plan.type == "cps" else "amount"
        raise ValidationFailed(f"A {plan.type} plan is overridden with {field}.",
                               details={"fields": {field: ["Required for this plan type."]}})
    percent, amount = _rate(offer.currency, data)
    override = db.session.scalar(select(PlanOverride).where(
        PlanOverride.offer_id == offer.id, PlanOverride.partner_id == data["partner_id"],
        PlanOverride.event == data["event"]))
    if override is None:
        override = PlanOverride(offer_id=offer.id, partner_id=data["partner_id"],
                                event=data["event"])
        db.session.add(override)
    override.percent, override.amount_minor = percent, amount
    db.session.commit()
    return override


def partner_may_promote(merchant_id: int, partner_id: int, offer: Offer) -> bool:
    """Whether the partner's program (and, if the offer requires it, offer) membership is approved."""
    rows = db.session.execute(select(Membership.offer_id, Membership.status).where(
        Membership.merchant_id == merchant_id, Membership.partner_id == partner_id,
        (Membership.offer_id.is_(None)) | (Membership.offer_id == offer.id))).all()
    statuses = {offer_id: status for offer_id, status in rows}
    if statuses.get(None) != "approved":
        return False
    if offer.requires_approval:
        return statuses.get(offer.id) == "approved"
    return statuses.get(offer.id) not in ("rejected", "banned")
