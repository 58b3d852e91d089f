"""Creatives (banners, text links, email copy, social captions), impressions, landing variants."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from partnernet import clock
from partnernet.dbtypes import BigIntPK, UTCDateTime
from partnernet.extensions import Model

CREATIVE_KINDS = ("banner", "text_link", "email", "social")
#: ``pending`` waits for the merchant's approval; partners see only ``active`` ones.
CREATIVE_STATUSES = ("pending", "active", "paused", "archived")
VARIANT_STATUSES = ("active", "ended")


class Creative(Model):
    """Something a merchant hands partners to promote one offer; partners see the active ones."""

    __tablename__ = "creatives"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: Link text, email copy or social caption (banners: the alt text).
    body: Mapped[str | None] = mapped_column(Text)
    #: Banners: key in the creative storage, type (png/jpeg/gif/webp), size, bytes.
    image_key: Mapped[str | None] = mapped_column(String(200))
    image_type: Mapped[str | None] = mapped_column(String(8))
    image_width: Mapped[int | None] = mapped_column(Integer)
    image_height: Mapped[int | None] = mapped_column(Integer)
    image_bytes: Mapped[int | None] = mapped_column(Integer)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set by the daily fatigue job; comma list of reasons (ctr_drop, age).
    fatigued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fatigue_reasons: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class Impression(Model):
    """One view of a partner's creative (the pixel). A plain table on PostgreSQL too (no
    partitions yet); no foreign keys, like clicks: rows arrive in bulk from the buffer."""

    __tablename__ = "impressions"
    __table_args__ = (
        Index("ix_impressions_offer_created", "offer_id", "created_at"),
        Index("ix_impressions_creative_created", "creative_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    link_id: Mapped[int] = mapped_column(BigInteger)
    merchant_id: Mapped[int] = mapped_column(BigInteger, index=True)
    offer_id: Mapped[int] = mapped_column(BigInteger)
    partner_id: Mapped[int] = mapped_column(BigInteger)
    creative_id: Mapped[int | None] = mapped_column(BigInteger)
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    visitor_id: Mapped[str | None] = mapped_column(String(64))
    is_unique: Mapped[bool] = mapped_column(Boolean, default=False)
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)


class LandingVariant(Model):
    """One landing page of an offer's split test, with its weight."""

    __tablename__ = "landing_variants"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))
    weight: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="active")
    is_winner: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class CreativeSettings(Model):
    """A merchant's creative settings (one row per merchant; absent = the defaults)."""

    __tablename__ = "creative_settings"

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    #: Fatigue: recent CTR this many percent below the launch CTR flags a creative.
    fatigue_drop_percent: Mapped[int] = mapped_column(Integer, default=30)
    #: Fatigue: a creative older than this many days is due for a refresh.
    refresh_days: Mapped[int] = mapped_column(Integer, default=28)
    #: Hosts a landing variant may point at besides the offer's own domain, one per line;
    #: each allows the host and its subdomains.
    variant_hosts: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class CpmAccrual(Model):
    """One day's CPM accrual of a partner on an offer: the unique, non-bot impressions and
    their exact worth in thousandths of a minor unit; ``amount_minor`` is what the day paid
    (the whole minor units reached, the rest carried to the next day). The unique
    constraint makes the daily job idempotent."""

    __tablename__ = "cpm_accruals"
    __table_args__ = (UniqueConstraint("offer_id", "partner_id", "day", name="uq_cpm_accruals_day"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    day: Mapped[date] = mapped_column(Date)
    impressions: Mapped[int] = mapped_column(BigInteger)
    #: The plan's (or override's) amount per 1,000 impressions that day, minor units.
    rate_minor: Mapped[int] = mapped_column(BigInteger)
    #: rate_minor × impressions: exact worth in thousandths of a minor unit.
    value_milli: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: The commission paying ``amount_minor``; NULL when the day reached no whole minor unit.
    commission_id: Mapped[int | None] = mapped_column(ForeignKey("commissions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
