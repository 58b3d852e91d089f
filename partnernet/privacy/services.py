"""Erasure of a person's personal data, keeping every money record (amounts, ledger) intact.

A person is found by email as any of: a customer of a store (conversions carry only the
SHA-256 of the email), a partner, or a user who logs in. Personal fields are cleared or
replaced by a placeholder; commissions, ledger entries and payouts keep their amounts,
so ``partnernet ledger verify`` still passes after an erasure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from partnernet.accounts.models import AuditEvent, Merchant, Partner, User
from partnernet.accounts.services import normalize_email
from partnernet.audit import audit
from partnernet.conversions.models import Conversion, Postback
from partnernet.conversions.services import email_hash
from partnernet.errors import NotFound, ValidationFailed
from partnernet.extensions import db
from partnernet.links.models import Click

#: Raw postback parameters that identify the customer.
PERSONAL_PARAMS = ("customer_email", "customer_id", "email", "ip", "user_agent", "phone", "name")


@dataclass
class Erasure:
    """What an erasure changed (counts), for the operator and the audit trail."""

    conversions: int = 0
    postbacks: int = 0
    clicks: int = 0
    partners: int = 0
    users: int = 0
    audit_events: int = 0
    notes: list[str] = field(default_factory=list)


def erased_email(kind: str, row_id: int) -> str:
    """A unique placeholder that is no address of anybody."""
    return f"erased-{kind}-{row_id}@erased.invalid"


def erase_person(email: str) -> Erasure:
    """Remove the personal data of whoever uses this email; money records stay as they are."""
    address = normalize_email(email)
    hashed = email_hash(address)
    result = Erasure()

    conversions = list(db.session.scalars(select(Conversion).where(Conversion.customer_email_hash == hashed)))
    click_ids = [c.click_id for c in conversions if c.click_id]
    for conversion in conversions:
        conversion.customer_email_hash = None
        conversion.customer_email_domain = None
        conversion.customer_id = None
        conversion.ip_hash = None
    result.conversions = len(conversions)
    if conversions:
        ids = [c.id for c in conversions]
        for postback in db.session.scalars(select(Postback).where(Postback.conversion_id.in_(ids))):
            postback.params = {k: v for k, v in (postback.params or {}).items() if k not in PERSONAL_PARAMS}
            postback.source_ip = None
            result.postbacks += 1
    if click_ids:
        # An UPDATE's result is a CursorResult (Session.execute is typed as returning a Result).
        result.clicks = cast(CursorResult[Any], db.session.execute(
            update(Click).where(Click.id.in_(click_ids))
            .values(ip_hash=None, user_agent=None, referer=None, visitor_id=None))).rowcount or 0

    for partner in db.session.scalars(select(Partner).where(Partner.email == address)):
        partner.name = f"Erased partner #{partner.id}"
        partner.email = erased_email("partner", partner.id)
        partner.website = None
        partner.postback_url = None
        partner.postback_secret = None
        result.partners += 1
    for user in db.session.scalars(select(User).where(User.email == address)):
        user.email = erased_email("user", user.id)
        user.password_hash = None
        user.active = False
        result.users += 1
        result.audit_events += cast(CursorResult[Any], db.session.execute(
            update(AuditEvent).where(AuditEvent.user_id == user.id).values(ip=None))).rowcount or 0
    audit("privacy.erase", email_sha256=hashed, conversions=result.conversions, partners=result.partners,
          users=result.users, clicks=result.clicks)
    db.session.commit()
    return result


# -- per-merchant privacy settings -----------------------------------------------------------

#: Click retention bounds in days: at least a month (attribution windows and disputes need
#: the clicks), at most three years.
RETENTION_MIN_DAYS = 30
RETENTION_MAX_DAYS = 1095


class InvalidPrivacySetting(ValidationFailed):
    code = "invalid_privacy_setting"


@dataclass
class PrivacySettings:
    """A merchant's privacy choices: how long clicks are kept, and cookieless tracking."""

    click_retention_days: int
    cookieless: bool


def privacy_settings(merchant_id: int) -> PrivacySettings:
    """The merchant's current privacy settings."""
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("No such merchant.")
    return PrivacySettings(merchant.click_retention_days, bool(merchant.cookieless))


def update_privacy_settings(merchant_id: int, *, click_retention_days: int, cookieless: bool,
                            user_id: int | None = None) -> PrivacySettings:
    """Set the merchant's click retention (bounded) and cookieless mode; audited. Commits.

    Cookieless takes effect on the next redirect (the link cache is invalidated on commit);
    a shorter retention deletes older clicks at the next ``click-partitions`` job (hourly)."""
    if isinstance(click_retention_days, bool) or not isinstance(click_retention_days, int) \
            or not RETENTION_MIN_DAYS <= click_retention_days <= RETENTION_MAX_DAYS:
        raise InvalidPrivacySetting(
            f"Click retention must be a whole number of days from {RETENTION_MIN_DAYS} "
            f"to {RETENTION_MAX_DAYS}.",
            details={"fields": {"click_retention_days": [
                f"Between {RETENTION_MIN_DAYS} and {RETENTION_MAX_DAYS} days."]}})
    merchant = db.session.get(Merchant, merchant_id, with_for_update=True)
    if merchant is None:
        raise NotFound("No such merchant.")
    before = PrivacySettings(merchant.click_retention_days, bool(merchant.cookieless))
    after = PrivacySettings(click_retention_days, bool(cookieless))
    if before != after:
        merchant.click_retention_days = after.click_retention_days
        merchant.cookieless = after.cookieless
        audit("privacy_settings_changed", user_id=user_id, merchant_id=merchant_id,
              click_retention_days=f"{before.click_retention_days}->{after.click_retention_days}",
              cookieless=f"{before.cookieless}->{after.cookieless}")
    db.session.commit()
    return after
