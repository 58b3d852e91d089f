"""Attribution: which partner a conversion belongs to (coupon, click, first click).

The rules are pure functions of plain values (``within_window``, ``pick_source``),
unit-tested without a database; ``attribute`` loads the click, coupon and offer and
applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from partnernet.commissions.services import OfferTerms, load_offer_terms, reader
from partnernet.conversions.exceptions import ClickExpired, Unattributed
from partnernet.extensions import db
from partnernet.links import services as links
from partnernet.links.models import Click, Coupon


@dataclass
class Attribution:
    """Who gets the credit, through what."""

    offer: OfferTerms
    partner_id: int
    click: Click | None
    coupon: Coupon | None
    via: str  # "click" | "coupon"


def within_window(clicked_at: datetime, now: datetime, window_days: int) -> bool:
    """Whether a click at ``clicked_at`` still attributes at ``now`` (window inclusive)."""
    return now - timedelta(days=window_days) <= clicked_at <= now + timedelta(minutes=5)


def pick_source(click_valid: bool, coupon_valid: bool, priority: str) -> str | None:
    """``"click"``, ``"coupon"`` or None: the coupon wins unless the offer says ``click_first``."""
    if click_valid and coupon_valid:
        return "click" if priority == "click_first" else "coupon"
    if coupon_valid:
        return "coupon"
    if click_valid:
        return "click"
    return None


def earliest_visitor_click(click: Click, offer: OfferTerms, now: datetime) -> Click:
    """For first_click offers: the same visitor's earliest click on the offer within the window.

    Uses ``links.services.clicks_for_visitor`` when the tracking feature provides it (it
    also sees the Redis click buffer); otherwise the Click table.
    """
    if not click.visitor_id:
        return click
    since = now - timedelta(days=offer.attribution_window_days)
    finder = getattr(links, "clicks_for_visitor", None)
    candidates: list[Click]
    if finder is not None:
        candidates = list(finder(click.visitor_id, offer.id, since))
    else:
        candidates = list(db.session.scalars(select(Click).where(
            Click.visitor_id == click.visitor_id, Click.offer_id == offer.id,
            Click.created_at >= since).order_by(Click.created_at, Click.id).limit(1)))
    candidates = [c for c in candidates
                  if c.merchant_id == click.merchant_id and c.created_at <= click.created_at]
    if not candidates:
        return click
    return min(candidates, key=lambda c: c.created_at)


def _offer(offer_id: int) -> OfferTerms | None:
    # The plans and tiers come along: the postback and the engine need them next.
    return load_offer_terms(offer_id)


def attribute(merchant_id: int, click_id: str | None, coupon_code: str | None,
              now: datetime) -> Attribution:
    """Attribute a conversion of the merchant, or raise ``Unattributed`` / ``ClickExpired``."""
    click = links.resolve_click(click_id, reader()) if click_id else None
    if click is not None and click.merchant_id != merchant_id:
        click = None  # another merchant's click does not exist here
    click_offer = _offer(click.offer_id) if click is not None else None
    click_valid = bool(click is not None and click_offer is not None and within_window(
        click.created_at, now, click_offer.attribution_window_days))

    coupon = links.resolve_coupon(merchant_id, coupon_code) if coupon_code else None
    coupon_offer = _offer(coupon.offer_id) if coupon is not None else None
    coupon_valid = coupon is not None and coupon_offer is not None
    if coupon_valid and coupon_offer is not None and coupon_offer.coupon_requires_click:
        # The coupon's partner must also have sent this shopper (a valid click of theirs).
        coupon_valid = click_valid and click is not None and coupon is not None \
            and click.partner_id == coupon.partner_id

    terms = coupon_offer or click_offer
    priority = terms.attribution_priority if terms is not None else "coupon_first"
    source = pick_source(click_valid, coupon_valid, priority)
    if source == "coupon":
        assert coupon is not None and coupon_offer is not None
        same_partner = click_valid and click is not None and click.partner_id == coupon.partner_id
        return Attribution(coupon_offer, coupon.partner_id, click if same_partner else None,
                           coupon, "coupon")
    if source == "click":
        assert click is not None and click_offer is not None
        if click_offer.attribution_model == "first_click":
            click = earliest_visitor_click(click, click_offer, now)
        return Attribution(click_offer, click.partner_id, click, None, "click")
    if click is not None:
        raise ClickExpired(details={"click_id": click.id,
                                    "attribution_window_days": click_offer.attribution_window_days
                                    if click_offer else None})
    details = {}
    if click_id:
        details["click_id"] = "unknown"
    if coupon_code:
        details["coupon"] = "unknown"
    raise Unattributed(details=details)
