"""Creatives (banners, text links, email copy, social captions), impressions, landing variants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from partnernet import clock
from partnernet.dbtypes import BigIntPK, UTCDateTime
from partnernet.extensions import db

CREATIVE_KINDS = ("banner", "text_link", "email", "social")
CREATIVE_STATUSES = ("active", "paused", "archived")
VARIANT_STATUSES = ("active", "ended")


class Creative(db.Model):
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


class Impression(db.Model):
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


class LandingVariant(db.Model):
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
