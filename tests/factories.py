"""Small factory functions for test data (each call makes new, independent rows)."""

from __future__ import annotations

import itertools
from typing import Any

_seq = itertools.count(1)


def make_merchant(name: str | None = None, currency: str = "USD", password: str | None = None) -> Any:
    """A merchant with owner, API key and postback credentials (a NewMerchant)."""
    from partnernet.accounts.services import create_merchant

    n = next(_seq)
    return create_merchant(name or f"Shop {n}", f"owner{n}@shop{n}.example", password, currency)


def make_partner(merchant_id: int, *, email: str | None = None, name: str | None = None,
                 status: str = "approved", password: str | None = None) -> Any:
    from partnernet.accounts.services import create_partner

    n = next(_seq)
    partner, _ = create_partner(merchant_id, email=email or f"partner{n}@creator{n}.example",
                                name=name or f"Partner {n}", status=status, password=password)
    return partner


def offer_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Spring sale",
        "landing_url": "https://shop.example/landing?src=aff",
        "plans": [{"event": "sale", "type": "cps", "percent": "10"}],
    }
    body.update(overrides)
    return body


def make_offer(merchant_id: int, **overrides: Any) -> Any:
    from partnernet.offers.schemas import OfferIn
    from partnernet.offers.services import create_offer

    return create_offer(merchant_id, OfferIn().load(offer_body(**overrides)))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- clicks and coupons as rows (postback and attribution tests) --------------------------

def make_click_row(offer: Any, partner_id: int, *, at: Any = None, visitor_id: str | None = None,
                   **fields: Any) -> Any:
    """Insert a Link and a Click for the offer and partner directly (no redirect); commits."""
    from partnernet import clock, tokens
    from partnernet.extensions import db
    from partnernet.links.models import Click, Link

    link = Link(code=tokens.new_code(10), merchant_id=offer.merchant_id, offer_id=offer.id,
                partner_id=partner_id)
    db.session.add(link)
    db.session.flush()
    at = at or clock.now()
    click = Click(id=tokens.click_id_for(at), link_id=link.id, merchant_id=offer.merchant_id,
                  offer_id=offer.id, partner_id=partner_id, created_at=at,
                  visitor_id=visitor_id, **fields)
    db.session.add(click)
    db.session.commit()
    return click


def make_coupon_row(offer: Any, partner_id: int, code: str) -> Any:
    """Insert a coupon code for the offer and partner directly; commits."""
    from partnernet.extensions import db
    from partnernet.links.models import Coupon

    coupon = Coupon(merchant_id=offer.merchant_id, offer_id=offer.id, partner_id=partner_id,
                    code=code, code_normalized=code.strip().upper())
    db.session.add(coupon)
    db.session.commit()
    return coupon
