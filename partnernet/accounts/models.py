"""Merchants, users, partners, API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from partnernet import clock
from partnernet.dbtypes import BigIntPK, UTCDateTime
from partnernet.extensions import Model

ROLES = ("admin", "merchant", "partner")
CHANNEL_TYPES = (
    "affiliate_site", "influencer", "email", "social", "coupon_site", "search",
    "display", "ctv", "retail_media", "other",
)


class Merchant(Model):
    """A program: its currency, holds, payout minimum, postback credentials and fraud settings."""

    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    default_hold_days: Mapped[int] = mapped_column(default=30)
    #: Minimum payout in minor units of ``currency``.
    min_payout_minor: Mapped[int] = mapped_column(BigInteger, default=5000)
    #: SHA-256 of the postback token; the token itself is shown once.
    postback_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    postback_token_prefix: Mapped[str] = mapped_column(String(16))
    #: HMAC key for signed postbacks. Kept, as HMAC verification needs the key itself.
    postback_secret: Mapped[str] = mapped_column(String(128))
    postback_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list)
    ip_blocklist: Mapped[list[str]] = mapped_column(JSON, default=list)
    fraud_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    payout_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    click_retention_days: Mapped[int] = mapped_column(default=395)
    #: No visitor cookie is set or read on this merchant's redirects and pixels; attribution
    #: then relies on the click id and coupons alone (links/tracking.py).
    cookieless: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class Partner(Model):
    """An affiliate, influencer or publisher; may belong to several merchants' programs."""

    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    channel_type: Mapped[str] = mapped_column(String(32), default="other")
    website: Mapped[str | None] = mapped_column(String(500))
    payout_rail: Mapped[str] = mapped_column(String(16), default="manual")
    stripe_account_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Outgoing postback URL template with macros ({click_id}, {commission}, ...).
    postback_url: Mapped[str | None] = mapped_column(String(2000))
    postback_secret: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class User(UserMixin, Model):
    """A person who logs in: network admin, merchant staff or partner."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Bumped on logout and password change: invalidates every session cookie issued before.
    session_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    merchant: Mapped[Merchant | None] = relationship()
    partner: Mapped[Partner | None] = relationship()

    @property
    def is_active(self) -> bool:  # Flask-Login
        return bool(self.active)

    def get_id(self) -> str:  # Flask-Login: the cookie dies with the session version
        return f"{self.id}:{self.session_version}"


class ApiKey(Model):
    """A bearer key for ``/api/v1``: random, stored hashed, shown once, revocable."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="default")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)



class AuditEvent(Model):
    """Who did what security-relevant thing, when, from where (logins, approvals, rotations)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    action: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
