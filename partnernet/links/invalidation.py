"""Keep the redirect's link cache honest: when what a cached ``LinkTarget`` holds changes —
an offer's landing URL, its split-test variants, its creatives, the merchant's cookie mode —
the affected links leave this process's LRU and Redis once the change is committed.

Done with SQLAlchemy session events, so every writer (API, admin panel, jobs) is covered
without calling anything. Other processes' LRUs still hold an entry for up to
``tracking.LOCAL_TTL`` seconds.
"""

from __future__ import annotations

from typing import Any

from flask import has_app_context
from sqlalchemy import event, inspect, or_, select
from sqlalchemy.orm import Session

from partnernet.accounts.models import Merchant
from partnernet.creatives.models import Creative, LandingVariant
from partnernet.links.models import Link
from partnernet.offers.models import Offer

_PENDING = "partnernet_forget_links"
#: Offer columns a LinkTarget is built from.
OFFER_FIELDS = ("landing_url", "click_id_param", "status", "attribution_model")
MERCHANT_FIELDS = ("cookieless",)


def _changed(obj: Any, fields: tuple[str, ...]) -> bool:
    state = inspect(obj)
    return any(state.attrs[f].history.has_changes() for f in fields)


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _flush_context: Any) -> None:
    """Note the codes of links whose cached target the flushed changes make stale."""
    offers: set[int] = set()
    merchants: set[int] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, LandingVariant | Creative):
            if obj.offer_id is not None:
                offers.add(obj.offer_id)
        elif isinstance(obj, Offer):
            if obj in session.dirty and _changed(obj, OFFER_FIELDS):
                offers.add(obj.id)
        elif isinstance(obj, Merchant) and obj in session.dirty and _changed(obj, MERCHANT_FIELDS):
            merchants.add(obj.id)
    if not offers and not merchants:
        return
    # session.connection(): no autoflush from inside a flush.
    codes = session.connection().scalars(select(Link.code).where(or_(
        Link.offer_id.in_(offers), Link.merchant_id.in_(merchants))))
    session.info.setdefault(_PENDING, set()).update(codes)


@event.listens_for(Session, "after_commit")
def _forget(session: Session) -> None:
    """After the commit (never before: a redirect could cache the old state again)."""
    codes = session.info.pop(_PENDING, None)
    if codes and has_app_context():
        from partnernet.links.tracking import forget_links

        forget_links(codes)


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_PENDING, None)
