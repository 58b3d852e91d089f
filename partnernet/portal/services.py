"""What only the partner portal needs: invitations, and the partner's own rows across programs."""

from __future__ import annotations

from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from partnernet.accounts.models import Merchant
from partnernet.extensions import db
from partnernet.links.models import Coupon, Link
from partnernet.offers.models import Membership, Offer
from partnernet.offers.services import partner_may_promote

INVITE_MAX_AGE = 14 * 86400


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="partner-invite")


def invite_token(merchant_id: int, email: str, name: str) -> str:
    """A signed, expiring invitation to the merchant's program for one email (no row stored)."""
    return str(_serializer().dumps({"m": merchant_id, "e": email.strip().lower(), "n": name.strip()}))


def read_invite(token: str | None, merchant_id: int) -> dict[str, str] | None:
    """The invitation's email and name if the token is genuine, fresh and for this merchant."""
    if not token:
        return None
    try:
        data = _serializer().loads(token, max_age=INVITE_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("m") != merchant_id:
        return None
    return {"email": str(data["e"]), "name": str(data["n"])}


def email_registered(email: str) -> bool:
    """Whether someone already logs in with this email (sign-up must not reuse their account)."""
    from partnernet.accounts.models import Partner, User

    return (db.session.scalar(select(User.id).where(User.email == email)) is not None
            or db.session.scalar(select(Partner.id).where(Partner.email == email)) is not None)


def memberships(partner_id: int) -> list[tuple[Membership, Merchant]]:
    """The partner's program memberships with their merchants (one query)."""
    rows = db.session.execute(
        select(Membership, Merchant).join(Merchant, Merchant.id == Membership.merchant_id)
        .where(Membership.partner_id == partner_id, Membership.offer_id.is_(None))
        .order_by(Merchant.name)).all()
    return [(m, merchant) for m, merchant in rows]


def programs_open(partner_id: int) -> list[Merchant]:
    """Programs the partner has not applied to yet."""
    joined = select(Membership.merchant_id).where(Membership.partner_id == partner_id,
                                                  Membership.offer_id.is_(None))
    return list(db.session.scalars(select(Merchant).where(Merchant.id.not_in(joined))
                                   .order_by(Merchant.name)))


def promotable_offers(partner_id: int) -> list[tuple[Offer, Merchant, bool]]:
    """Active offers of the programs that approved the partner, and whether each may be promoted."""
    approved = [(m, merchant) for m, merchant in memberships(partner_id) if m.status == "approved"]
    by_id = {merchant.id: merchant for _, merchant in approved}
    if not by_id:
        return []
    rows = db.session.scalars(select(Offer).where(Offer.merchant_id.in_(by_id), Offer.status == "active")
                              .order_by(Offer.id.desc()))
    return [(o, by_id[o.merchant_id], partner_may_promote(o.merchant_id, partner_id, o)) for o in rows]


def links_query(partner_id: int) -> Any:
    """The partner's tracking links, newest first."""
    return select(Link).where(Link.partner_id == partner_id).order_by(Link.id.desc())


def coupons_query(partner_id: int) -> Any:
    """The partner's coupon codes, newest first."""
    return select(Coupon).where(Coupon.partner_id == partner_id).order_by(Coupon.id.desc())


def commissions_query(partner_id: int, status: str | None = None) -> Any:
    """The partner's commissions, newest first."""
    from partnernet.commissions.models import Commission

    stmt = select(Commission).where(Commission.partner_id == partner_id)
    if status:
        stmt = stmt.where(Commission.status == status)
    return stmt.order_by(Commission.id.desc())


def payouts_query(partner_id: int) -> Any:
    """The partner's payouts, newest first (None until the payouts feature has its model)."""
    from partnernet.payouts import models

    payout = getattr(models, "Payout", None)
    if payout is None:
        return None
    return select(payout).where(payout.partner_id == partner_id).order_by(payout.id.desc())


def set_postback_url(partner_id: int, url: str | None) -> None:
    """The partner's own outgoing postback URL template (None: no postbacks). Commits."""
    from partnernet.accounts.models import Partner

    partner = db.session.get(Partner, partner_id)
    assert partner is not None
    partner.postback_url = url or None
    db.session.commit()


def partner_api_keys(partner_id: int) -> list[Any]:
    """The partner's API keys (prefixes only), newest first."""
    from partnernet.accounts.models import ApiKey

    return list(db.session.scalars(select(ApiKey).where(ApiKey.partner_id == partner_id)
                                   .order_by(ApiKey.id.desc())))


def create_partner_api_key(partner_id: int, name: str) -> str:
    """A key for the partner's own reporting API calls; returned once. Commits."""
    from partnernet.accounts.services import issue_api_key

    key = issue_api_key(partner_id=partner_id, name=name)
    db.session.commit()
    return key


def revoke_partner_api_key(partner_id: int, key_id: int) -> bool:
    """Revoke one of the partner's own keys; False when it is not theirs. Commits."""
    from partnernet import clock
    from partnernet.accounts.models import ApiKey

    row = db.session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.partner_id == partner_id))
    if row is None:
        return False
    row.revoked_at = clock.now()
    db.session.commit()
    return True


def partner_link(partner_id: int, link_id: int) -> Link | None:
    """One of the partner's own links (None for anyone else's)."""
    return db.session.scalar(select(Link).where(Link.id == link_id, Link.partner_id == partner_id))


def qr_svg(text: str) -> str:
    """An SVG QR code of ``text`` (for influencers: the tracking link on a story or a poster)."""
    import io

    import segno

    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="svg", scale=6, border=2, xmldecl=False,
                                     svgclass="qr", lineclass=None)
    return buf.getvalue().decode()
