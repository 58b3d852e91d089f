"""Tracking links, coupon codes and clicks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from partnernet import clock
from partnernet.dbtypes import BigIntPK, UTCDateTime, ascii_key
from partnernet.extensions import Model

SUB_LENGTH = 255




class Link(Model):
    """A partner's tracking link for an offer: ``/r/<code>``."""

    __tablename__ = "links"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    sub1: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    sub2: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    sub3: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    sub4: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    sub5: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    utm_source: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    utm_medium: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    utm_campaign: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    utm_term: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    utm_content: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    #: active | disabled
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class Coupon(Model):
    """A coupon code credited to a partner; unique per merchant, case-insensitively."""

    __tablename__ = "coupons"
    __table_args__ = (UniqueConstraint("merchant_id", "code_normalized"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    #: As the merchant typed it, for display.
    code: Mapped[str] = mapped_column(String(64))
    #: Upper-cased: the uniqueness and lookup key.
    code_normalized: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class Click(Model):
    """One click on a tracking link. The id is random (128 bit) and goes to the landing URL.

    The primary key is ``(id, created_at)`` because PostgreSQL partitions the table by
    day on ``created_at`` (a partitioned table's keys must contain the partition key);
    the id alone is still unique (128 random bits). On SQLite it is a plain table.
    Partitions are made by ``partnernet.links.partitions``.
    """

    __tablename__ = "clicks"
    # Every click pays the upkeep of every index (the flush's COPY is bound by it), so each has
    # a reader. The two random tokens (visitor id, IP hash) are only ever looked up by equality:
    # on PostgreSQL they get hash indexes (a 4-byte hash code per row, not the 24- or 64-byte
    # token plus two more columns in a btree; measured 0.3-1.6 us a row each in the COPY
    # against 3.7-5.9 for those btrees); the lookups filter the rest (offer, link, window)
    # from the few rows of one visitor or one IP.
    __table_args__ = (
        Index("ix_clicks_merchant_created", "merchant_id", "created_at"),
        # Attribution, the visitor's journey (insights), ``clicks_for_visitor``.
        Index("ix_clicks_visitor", "visitor_id", postgresql_using="hash"),
        # The uniqueness check of a click written while Redis is down (``buffer``).
        Index("ix_clicks_iphash", "ip_hash", postgresql_using="hash"),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    id: Mapped[str] = mapped_column(ascii_key(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True, default=clock.now)
    # No foreign keys here, on purpose: clicks arrive in bulk at the network's highest rate
    # and the FK triggers cost most of a COPY; the ids come from the link row the redirect
    # read, and links, offers, partners and merchants are disabled, never deleted.
    link_id: Mapped[int] = mapped_column(BigInteger)
    merchant_id: Mapped[int] = mapped_column(BigInteger)
    offer_id: Mapped[int] = mapped_column(BigInteger)
    #: Indexed for partner-scoped reports read from the raw clicks (the portal's raw fallback).
    partner_id: Mapped[int] = mapped_column(BigInteger, index=True)
    #: IPv4 truncated to /24, IPv6 to /48: enough for geography, not a person.
    ip_truncated: Mapped[str | None] = mapped_column(String(64))
    #: Keyed hash of the full IP (HMAC with SECRET_KEY) for dedupe and fraud rules.
    ip_hash: Mapped[str | None] = mapped_column(ascii_key(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    referer: Mapped[str | None] = mapped_column(String(1024))
    sub1: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    sub2: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    sub3: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    sub4: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    sub5: Mapped[str | None] = mapped_column(String(SUB_LENGTH))
    visitor_id: Mapped[str | None] = mapped_column(ascii_key(64))
    is_unique: Mapped[bool] = mapped_column(Boolean, default=True)
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Name of a paid-ads click id found on the request (gclid, fbclid, ...), for fraud rules.
    paid_ads_param: Mapped[str | None] = mapped_column(String(16))
    #: ISO 3166-1 alpha-2 from the trusted proxy header (``COUNTRY_HEADER``), else NULL.
    country: Mapped[str | None] = mapped_column(String(2))
    #: Landing split-test variant the redirect chose (creatives.LandingVariant), if any.
    variant_id: Mapped[int | None] = mapped_column(BigInteger)
    #: Creative whose snippet carried the click (``cr`` on the tracking URL, checked against the
    #: offer's creatives), if any.
    creative_id: Mapped[int | None] = mapped_column(BigInteger)


def _register_installer() -> None:
    """Day partitions of ``clicks`` on PostgreSQL: made by dbsetup (tests, fresh databases)."""
    from partnernet import dbsetup
    from partnernet.links.partitions import install_partitions

    if install_partitions not in dbsetup.INSTALLERS:
        dbsetup.INSTALLERS.append(install_partitions)


_register_installer()
