"""Raw postbacks as received, the conversions they create, and outgoing partner postbacks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from partnernet import clock
from partnernet.dbtypes import BigIntPK, UTCDateTime, ascii_key
from partnernet.extensions import Model


class Postback(Model):
    """A postback request exactly as received, stored before it is processed."""

    __tablename__ = "postbacks"
    __table_args__ = (Index("ix_postbacks_merchant_received", "merchant_id", "received_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    method: Mapped[str] = mapped_column(String(8))
    #: Parameters as received (token and signature removed).
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(255), index=True)
    #: accepted | duplicate | refunded | error code (unattributed, order_conflict, ...)
    outcome: Mapped[str | None] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column()
    conversion_id: Mapped[int | None] = mapped_column(ForeignKey("conversions.id"))
    #: token | signature
    auth_method: Mapped[str | None] = mapped_column(String(16))
    #: The message of the answer, for support ("why was my postback refused?").
    message: Mapped[str | None] = mapped_column(String(500))


class Conversion(Model):
    """One sale, lead or custom event of an order; unique per (merchant, event, order id)."""

    __tablename__ = "conversions"
    __table_args__ = (
        UniqueConstraint("merchant_id", "event", "order_id"),
        Index("ix_conversions_merchant_created", "merchant_id", "created_at"),
        # The amount-outlier rule reads the offer's latest 200 amounts of an event on every
        # new conversion: a backward scan of this index, not a sort of all the offer's rows.
        Index("ix_conversions_offer_event_id", "offer_id", "event", "id"),
        # The duplicate-IP rule counts the offer's conversions from the same IP in the last
        # 24 hours on every new conversion that has one: without this it read every
        # conversion of the offer. Equality only, so a hash index (cheap upkeep).
        Index("ix_conversions_iphash", "ip_hash", postgresql_using="hash"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    #: No index of its own: ``ix_conversions_offer_event_id`` leads with it.
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    click_id: Mapped[str | None] = mapped_column(String(32), index=True)
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"))
    event: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(255))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    customer_id: Mapped[str | None] = mapped_column(String(255))
    #: SHA-256 of the lower-cased email; the email itself is not kept.
    customer_email_hash: Mapped[str | None] = mapped_column(String(64))
    #: Email domain only (for the self-referral rule), never the address.
    customer_email_domain: Mapped[str | None] = mapped_column(String(255))
    #: The click's keyed IP hash, compared with ``clicks.ip_hash`` (same byte-order collation,
    #: or PostgreSQL could not use this column's index for that comparison).
    ip_hash: Mapped[str | None] = mapped_column(ascii_key(64))
    #: approved | refunded | partially_refunded
    status: Mapped[str] = mapped_column(String(24), default="approved")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    #: Bumped on every change (refunds): the reports' rollup job reads from this watermark.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


DELIVERY_STATUSES = ("pending", "delivered", "failed")


class PartnerPostbackDelivery(Model):
    """One outgoing postback to a partner's URL (a commission at one status, or a test)."""

    __tablename__ = "partner_postback_deliveries"
    __table_args__ = (
        # One delivery per commission and status: the job is safe to run twice.
        UniqueConstraint("commission_id", "commission_status"),
        Index("ix_partner_postback_deliveries_due", "status", "next_attempt_at"),
        Index("ix_partner_postback_deliveries_partner_created", "partner_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    #: NULL for a "send test" delivery.
    commission_id: Mapped[int | None] = mapped_column(ForeignKey("commissions.id"))
    commission_status: Mapped[str | None] = mapped_column(String(16))
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The URL with its macros filled in, as it is called.
    url: Mapped[str] = mapped_column(String(4000))
    #: pending (will be tried again) | delivered | failed (gave up or refused)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_http_status: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class PartnerPostbackAttempt(Model):
    """One try of a delivery: when, what came back, how long it took (the partner's log)."""

    __tablename__ = "partner_postback_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("partner_postback_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    http_status: Mapped[int | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(default=0)
