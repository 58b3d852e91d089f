"""What the postback fast path keeps in process: each merchant's fraud settings and its
offers' terms (plans, tiers), valid for one *config version* of that merchant.

The version is a random token in Redis (``<prefix>pbcfg:<merchant id>``). Every committed
change to a merchant, one of its offers, plans or tiers replaces it (SQLAlchemy session
events, so every writer — API, admin panel, jobs — is covered without calling anything).
The fast path reads the version in the same Redis round trip as the click and uses a
cached entry only if it was loaded under the version it just read, so the very next
postback after a change answers with the new terms, in every process.

Why this is never stale: the version is replaced *after* the commit. A postback that
reads the new version loads the terms after that, so it sees the change; one that read
the old version may have loaded either state, but its entry is filed under the old
version, which no later postback uses. A random token (not a counter) means a Redis that
lost the key never brings an old version back. Partners and per-partner overrides are not
cached at all: the fast path reads them with the click.

If Redis refuses the replacement (it is down at that moment), this process drops its own
entries at once and every process's entries expire after ``MAX_AGE`` seconds anyway; while
Redis is down the fast path is not used at all (it needs Redis for the rate limit).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from partnernet.accounts.models import Merchant
from partnernet.commissions.services import OfferTerms
from partnernet.extensions import app_state
from partnernet.offers.models import CommissionPlan, Offer, PlanTier

log = logging.getLogger(__name__)

#: A cached entry is dropped after this long even if no version change was seen.
MAX_AGE = 60.0
VERSION_TTL = 30 * 24 * 3600
_PENDING = "partnernet_postback_terms"


@dataclass
class MerchantTerms:
    """One merchant's settings and offers' terms as loaded under ``version``."""

    version: bytes
    loaded_at: float
    fraud_settings: Any
    ip_blocklist: Any
    default_hold_days: int
    offers: dict[int, OfferTerms | None] = field(default_factory=dict)
    #: Whether any of the merchant's offers has plan tiers / a daily cap: when none has, the
    #: postback's read leaves those counts out (a plan or offer change replaces the version).
    any_tiers: bool = True
    any_cap: bool = True
    #: ``fraud.rule_settings(fraud_settings)``, worked out once.
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from partnernet.commissions import fraud

        self.rules = fraud.rule_settings(self.fraud_settings)


class TermsCache:
    def __init__(self) -> None:
        self.items: dict[int, MerchantTerms] = {}
        self.lock = threading.Lock()

    def get(self, merchant_id: int, version: bytes) -> MerchantTerms | None:
        entry = self.items.get(merchant_id)
        if entry is None or entry.version != version or time.monotonic() - entry.loaded_at > MAX_AGE:
            return None
        return entry

    def put(self, merchant_id: int, entry: MerchantTerms) -> None:
        with self.lock:
            if len(self.items) > 10_000:
                self.items.clear()
            self.items[merchant_id] = entry

    def drop(self, merchant_ids: set[int]) -> None:
        with self.lock:
            for merchant_id in merchant_ids:
                self.items.pop(merchant_id, None)


def cache(app: Flask) -> TermsCache:
    return app_state(app, "partnernet_postbacks", "terms", TermsCache)


def version_key(app: Flask, merchant_id: int) -> bytes:
    return f"{app.config['REDIS_KEY_PREFIX']}pbcfg:{merchant_id}".encode()


def new_version() -> bytes:
    return secrets.token_hex(8).encode()


def bump(app: Flask, merchant_ids: set[int]) -> None:
    """Replace the merchants' config versions (after a commit) and drop this process's entries."""
    cache(app).drop(merchant_ids)
    from partnernet.links import buffer

    client = buffer.click_redis(app)
    if client is None:
        return
    try:
        pipe = client.pipeline(transaction=False)
        for merchant_id in merchant_ids:
            pipe.set(version_key(app, merchant_id), new_version(), ex=VERSION_TTL)
        pipe.execute()
    except buffer.redis_errors() as exc:
        log.error("could not replace the postback config version of merchants %s (%s); "
                  "other processes use their cached terms for up to %.0f s",
                  sorted(merchant_ids), exc, MAX_AGE)


# -- invalidation: every committed change to what the cache holds -----------------------

@event.listens_for(Session, "after_flush")
def _collect(session: Session, _flush_context: Any) -> None:
    merchants: set[int] = set()
    offers: set[int] = set()
    plans: set[int] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Merchant):
            if obj.id is not None:
                merchants.add(obj.id)
        elif isinstance(obj, Offer):
            if obj.merchant_id is not None:
                merchants.add(obj.merchant_id)
        elif isinstance(obj, CommissionPlan):
            if obj.offer_id is not None:
                offers.add(obj.offer_id)
            elif obj.offer is not None and obj.offer.merchant_id is not None:
                merchants.add(obj.offer.merchant_id)
        elif isinstance(obj, PlanTier):
            if obj.plan_id is not None:
                plans.add(obj.plan_id)
            elif obj.plan is not None and obj.plan.offer_id is not None:
                offers.add(obj.plan.offer_id)
    if plans:
        offers.update(session.connection().scalars(
            select(CommissionPlan.offer_id).where(CommissionPlan.id.in_(plans))))
    if offers:
        merchants.update(session.connection().scalars(
            select(Offer.merchant_id).where(Offer.id.in_(offers))))
    if merchants:
        session.info.setdefault(_PENDING, set()).update(merchants)


@event.listens_for(Session, "after_commit")
def _bump(session: Session) -> None:
    merchants = session.info.pop(_PENDING, None)
    if merchants and has_app_context():
        bump(current_app._get_current_object(), merchants)  # type: ignore[attr-defined]


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
