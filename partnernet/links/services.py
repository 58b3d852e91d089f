"""Links, coupons and clicks.

``resolve_click``, ``clicks_for_visitor`` and ``resolve_coupon`` are what the postback
flow uses to attribute a conversion; the first two also see clicks still in the Redis
buffer, so a click resolves within a second of its redirect, flushed or not.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Connection, Select, bindparam, select
from sqlalchemy.exc import IntegrityError

from partnernet import tokens
from partnernet.accounts.services import get_program_partner
from partnernet.errors import RuleRefused
from partnernet.extensions import db
from partnernet.links import buffer, tracking
from partnernet.links.exceptions import (
    CouponNotFound,
    CouponTaken,
    LinkNotFound,
    PartnerMayNotPromote,
)
from partnernet.links.models import Click, Coupon, Link
from partnernet.offers.models import Offer
from partnernet.offers.services import get_offer, partner_may_promote

CLICK_ID_RE = re.compile(r"[0-9a-f]{32}")
LINK_FIELDS = ("sub1", "sub2", "sub3", "sub4", "sub5", *tracking.UTM_FIELDS)
CODE_ATTEMPTS = 5


def link_url(link: Link) -> str:
    """The full tracking URL of a link."""
    return f"{current_app.config['BASE_URL']}/r/{link.code}"


def _promotable_offer(merchant_id: int, offer_id: int, partner_id: int) -> Offer:
    """The merchant's offer, if the partner (of this program) may promote it; else 404/422."""
    offer = get_offer(merchant_id, offer_id)
    get_program_partner(merchant_id, partner_id)
    if offer.status == "archived":
        raise RuleRefused("The offer is archived.", code="offer_archived")
    if not partner_may_promote(merchant_id, partner_id, offer):
        raise PartnerMayNotPromote()
    return offer


# -- links -------------------------------------------------------------------------------

def create_link(merchant_id: int, data: dict[str, Any]) -> Link:
    """Give a partner a tracking link for an offer it may promote, with a random code. Commits."""
    offer = _promotable_offer(merchant_id, data["offer_id"], data["partner_id"])
    fields = {f: data.get(f) or None for f in LINK_FIELDS}
    for _attempt in range(CODE_ATTEMPTS):
        link = Link(code=tokens.new_code(8), merchant_id=merchant_id, offer_id=offer.id,
                    partner_id=data["partner_id"], status="active", **fields)
        db.session.add(link)
        try:
            db.session.commit()
        except IntegrityError:  # a code collision (~1 in 10^13): draw again
            db.session.rollback()
            continue
        return link
    raise RuntimeError("could not draw an unused link code")  # pragma: no cover


def links_query(merchant_id: int, *, partner_id: int | None = None, offer_id: int | None = None,
                status: str | None = None) -> Select[Link]:
    """The merchant's links, newest first, optionally filtered."""
    stmt = select(Link).where(Link.merchant_id == merchant_id)
    if partner_id is not None:
        stmt = stmt.where(Link.partner_id == partner_id)
    if offer_id is not None:
        stmt = stmt.where(Link.offer_id == offer_id)
    if status:
        stmt = stmt.where(Link.status == status)
    return stmt.order_by(Link.id.desc())


def get_link(merchant_id: int, link_id: int) -> Link:
    """One of the merchant's links, or 404."""
    link = db.session.scalar(select(Link).where(Link.id == link_id, Link.merchant_id == merchant_id))
    if link is None:
        raise LinkNotFound()
    return link


def set_link_status(merchant_id: int, link_id: int, status: str) -> Link:
    """Disable or re-enable a link; its redirect follows within seconds. Commits."""
    link = get_link(merchant_id, link_id)
    if status == "active" and link.status != "active":
        offer = db.session.get(Offer, link.offer_id)
        assert offer is not None
        if not partner_may_promote(merchant_id, link.partner_id, offer):
            raise PartnerMayNotPromote()
    link.status = status
    db.session.commit()
    tracking.forget_link(link.code)
    return link


# -- coupons -----------------------------------------------------------------------------

def normalize_coupon(code: str) -> str:
    """The lookup key of a coupon code: trimmed, upper-cased."""
    return code.strip().upper()


def create_coupon(merchant_id: int, data: dict[str, Any]) -> Coupon:
    """Credit a coupon code to a partner; 409 when the program already has it. Commits."""
    offer = _promotable_offer(merchant_id, data["offer_id"], data["partner_id"])
    code = data["code"].strip()
    normalized = normalize_coupon(code)
    taken = db.session.scalar(select(Coupon.id).where(
        Coupon.merchant_id == merchant_id, Coupon.code_normalized == normalized))
    if taken is not None:
        raise CouponTaken(details={"code": code})
    coupon = Coupon(merchant_id=merchant_id, offer_id=offer.id, partner_id=data["partner_id"],
                    code=code, code_normalized=normalized, status="active")
    db.session.add(coupon)
    try:
        db.session.commit()
    except IntegrityError:  # the same code created concurrently
        db.session.rollback()
        raise CouponTaken(details={"code": code}) from None
    return coupon


def coupons_query(merchant_id: int, *, partner_id: int | None = None,
                  offer_id: int | None = None) -> Select[Coupon]:
    """The merchant's coupons, newest first."""
    stmt = select(Coupon).where(Coupon.merchant_id == merchant_id)
    if partner_id is not None:
        stmt = stmt.where(Coupon.partner_id == partner_id)
    if offer_id is not None:
        stmt = stmt.where(Coupon.offer_id == offer_id)
    return stmt.order_by(Coupon.id.desc())


def get_coupon(merchant_id: int, coupon_id: int) -> Coupon:
    """One of the merchant's coupons, or 404."""
    coupon = db.session.scalar(select(Coupon).where(Coupon.id == coupon_id,
                                                    Coupon.merchant_id == merchant_id))
    if coupon is None:
        raise CouponNotFound()
    return coupon


def set_coupon_status(merchant_id: int, coupon_id: int, status: str) -> Coupon:
    """Disable or re-enable a coupon (a disabled one attributes nothing). Commits."""
    coupon = get_coupon(merchant_id, coupon_id)
    coupon.status = status
    db.session.commit()
    return coupon


def resolve_coupon(merchant_id: int, code: str) -> Coupon | None:
    """The merchant's active coupon with this code, case-insensitively."""
    if not code or len(code) > 64:
        return None
    return db.session.scalar(select(Coupon).where(
        Coupon.merchant_id == merchant_id, Coupon.code_normalized == normalize_coupon(code),
        Coupon.status == "active"))


# -- clicks ------------------------------------------------------------------------------

def _transient(row: dict[str, Any]) -> Click:
    """A Click object, not in the session (a buffered click, or a row read with Core)."""
    return Click(**row)


_CLICK = select(Click.__table__).where(Click.__table__.c.id == bindparam("click_id")).limit(1)
#: The same within one day's partition (the day a click id carries).
_CLICK_ON_DAY = _CLICK.where(Click.__table__.c.created_at >= bindparam("start"),
                             Click.__table__.c.created_at < bindparam("end"))


def resolve_click(click_id: str, conn: Connection | None = None) -> Click | None:
    """The click with this id: from the Redis buffer if not flushed yet, else the database.

    Read with Core on ``conn`` (default: the session's connection), first from the partition
    of the day the id carries; the Click comes back outside the session: callers only read it.
    """
    if not click_id or len(click_id) != 32:
        return None
    click_id = click_id.lower()
    if not CLICK_ID_RE.fullmatch(click_id):
        return None
    row = buffer.buffered_click(click_id)
    if row is not None:
        return _transient(row)
    conn = conn if conn is not None else db.session.connection()
    found = None
    day = tokens.click_id_day(click_id)
    if day is not None:  # the day's partition first (ids carry their day)
        found = conn.execute(_CLICK_ON_DAY, {"click_id": click_id, "start": day[0],
                                             "end": day[1]}).first()
    if found is None:  # an id from before ids carried their day: any partition
        found = conn.execute(_CLICK, {"click_id": click_id}).first()
    return _transient(found._asdict()) if found is not None else None


def clicks_for_visitor(visitor_id: str, offer_id: int, since: datetime) -> list[Click]:
    """The visitor's clicks on the offer since ``since``, oldest first (database and buffer)."""
    if not visitor_id:
        return []
    stored = list(db.session.scalars(select(Click).where(
        Click.visitor_id == visitor_id, Click.offer_id == offer_id,
        Click.created_at >= since).order_by(Click.created_at, Click.id).limit(500)))
    seen = {c.id for c in stored}
    buffered = [_transient(r) for r in buffer.buffered_visitor_clicks(visitor_id, offer_id, since)
                if r["id"] not in seen]
    return sorted(stored + buffered, key=lambda c: (c.created_at, c.id))
