"""Links, coupons and clicks.

``resolve_click`` and ``resolve_coupon`` are what the postback flow uses to attribute
a conversion; the tracking issue extends ``resolve_click`` to clicks still in the
Redis buffer.
"""

from __future__ import annotations

from sqlalchemy import select

from partnernet.extensions import db
from partnernet.links.models import Click, Coupon


def resolve_click(click_id: str) -> Click | None:
    """The click with this id, from the database (or, with Redis, the click buffer)."""
    if not click_id or len(click_id) != 32:
        return None
    return db.session.get(Click, click_id.lower())


def resolve_coupon(merchant_id: int, code: str) -> Coupon | None:
    """The merchant's active coupon with this code, case-insensitively."""
    if not code or len(code) > 64:
        return None
    return db.session.scalar(select(Coupon).where(
        Coupon.merchant_id == merchant_id, Coupon.code_normalized == code.strip().upper(),
        Coupon.status == "active"))
