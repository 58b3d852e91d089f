"""Rollup tables the reports read, the rollup watermark, anomaly alerts and offer budgets.

Grain of the rollups: day (UTC) × merchant × offer × partner × sub1, and for the
money side also × event × currency. ``sub1`` is stored as ``""`` when the click had
none (a primary key column cannot be NULL); the reports show it as ``null``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from partnernet import clock
from partnernet.commissions.models import Commission
from partnernet.conversions.models import Conversion
from partnernet.dbtypes import BigIntPK, UTCDateTime
from partnernet.extensions import Model
from partnernet.links.models import Click

SUB1_LENGTH = 255

#: The rollup job scans these by their ``updated_at`` watermark.
Index("ix_conversions_updated_at", Conversion.updated_at)
Index("ix_commissions_updated_at", Commission.updated_at)
#: The rollup job reads new clicks by time; BRIN is tiny and nearly free to keep on an
#: append-mostly, time-ordered table (a plain index on SQLite).
Index("ix_clicks_created_brin", Click.created_at, postgresql_using="brin")


class ClickRollup(Model):
    """Click counts of one day × merchant × offer × partner × sub1."""

    __tablename__ = "report_click_rollups"
    __table_args__ = (Index("ix_report_click_rollups_merchant_day", "merchant_id", "day"),
                      Index("ix_report_click_rollups_partner_day", "partner_id", "day"))

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    offer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sub1: Mapped[str] = mapped_column(String(SUB1_LENGTH), primary_key=True, default="")
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    unique_clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    bot_clicks: Mapped[int] = mapped_column(BigInteger, default=0)


class ConversionRollup(Model):
    """Conversions, revenue and commissions of one day × merchant × offer × partner × sub1
    × event × currency. CPC commissions (no conversion) are kept under event ``_cpc``."""

    __tablename__ = "report_conversion_rollups"
    __table_args__ = (Index("ix_report_conversion_rollups_merchant_day", "merchant_id", "day"),
                      Index("ix_report_conversion_rollups_partner_day", "partner_id", "day"))

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    offer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sub1: Mapped[str] = mapped_column(String(SUB1_LENGTH), primary_key=True, default="")
    event: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    conversions: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_conversions: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Sum of commission amounts that are not rejected (before reversals).
    commission_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    held_commissions: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected_commissions: Mapped[int] = mapped_column(BigInteger, default=0)


class PartnerDayClickRollup(Model):
    """``ClickRollup`` summed over offers and sub1: day × merchant × partner.

    Derived from the fine rollup by the rollup job (each touched merchant-day is summed
    again), so it holds the same numbers; the reports that group and filter only by
    period, partner and channel (the dashboard, partner × day) read it: a few thousand
    rows whatever the number of offers and sub ids."""

    __tablename__ = "report_partner_day_clicks"
    __table_args__ = (Index("ix_report_partner_day_clicks_merchant_day", "merchant_id", "day"),
                      Index("ix_report_partner_day_clicks_partner_day", "partner_id", "day"))

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    unique_clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    bot_clicks: Mapped[int] = mapped_column(BigInteger, default=0)


class PartnerDayConversionRollup(Model):
    """``ConversionRollup`` summed over offers and sub1: day × merchant × partner × event ×
    currency (derived like ``PartnerDayClickRollup``)."""

    __tablename__ = "report_partner_day_conversions"
    __table_args__ = (
        Index("ix_report_partner_day_conversions_merchant_day", "merchant_id", "day"),
        Index("ix_report_partner_day_conversions_partner_day", "partner_id", "day"))

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    conversions: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_conversions: Mapped[int] = mapped_column(BigInteger, default=0)
    commission_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    held_commissions: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected_commissions: Mapped[int] = mapped_column(BigInteger, default=0)


_BYTEWISE_10 = String(10).with_variant(String(10, collation="C"), "postgresql")
_BYTEWISE_3 = String(3).with_variant(String(3, collation="C"), "postgresql")


class PartnerDayReportRow(Model):
    """The rows of the report grouped by partner and day, one merchant's, kept by the
    rollup job beside the partner-day rollups they are computed from.

    Each row is what ``services.build_report`` prints for one partner, day and currency
    (``currency`` ``""`` for a partner-day without money, shown as ``null``), metrics
    included, computed by the same fold and ``metrics`` code as every other report; the
    job recomputes the rows of each merchant-day it touches. The partner × day report
    (the dashboard's, the benchmark's) is then a range read of this one table: no
    aggregation, no join and no per-row Python at answer time. ``day`` is kept as the
    report prints it (``YYYY-MM-DD``, which sorts and compares like the date); the text
    keys compare bytewise (``COLLATE "C"`` on PostgreSQL), as Python orders the fold's
    keys."""

    __tablename__ = "report_partner_day_rows"

    merchant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[str] = mapped_column(_BYTEWISE_10, primary_key=True)
    partner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    currency: Mapped[str] = mapped_column(_BYTEWISE_3, primary_key=True, default="")
    clicks: Mapped[int] = mapped_column(BigInteger)
    unique_clicks: Mapped[int] = mapped_column(BigInteger)
    bot_clicks: Mapped[int] = mapped_column(BigInteger)
    conversions: Mapped[int] = mapped_column(BigInteger)
    sales: Mapped[int] = mapped_column(BigInteger)
    leads: Mapped[int] = mapped_column(BigInteger)
    conversion_rate: Mapped[str | None] = mapped_column(String(32))
    revenue: Mapped[str | None] = mapped_column(String(32))
    refunds: Mapped[str | None] = mapped_column(String(32))
    refunded_conversions: Mapped[int] = mapped_column(BigInteger)
    commission: Mapped[str | None] = mapped_column(String(32))
    epc: Mapped[str | None] = mapped_column(String(32))
    revenue_per_click: Mapped[str | None] = mapped_column(String(32))
    cpa: Mapped[str | None] = mapped_column(String(32))
    cpl: Mapped[str | None] = mapped_column(String(32))
    roas: Mapped[str | None] = mapped_column(String(32))
    reversal_rate: Mapped[str | None] = mapped_column(String(32))
    held: Mapped[int] = mapped_column(BigInteger)
    rejected: Mapped[int] = mapped_column(BigInteger)


class RollupWatermark(Model):
    """How far the rollup job has read each source (``clicks`` by created_at,
    ``changes`` by conversions' and commissions' updated_at)."""

    __tablename__ = "report_watermarks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


ALERT_KINDS = ("click_flood", "conversion_rate_drop", "refund_spike")


class AnomalyAlert(Model):
    """A partner's or offer's day that deviates from its own trailing baseline."""

    __tablename__ = "report_alerts"
    __table_args__ = (UniqueConstraint("merchant_id", "subject", "subject_id", "kind", "day"),
                      Index("ix_report_alerts_merchant_created", "merchant_id", "created_at"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    #: partner | offer
    subject: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    #: The day's value and the baseline, as decimal strings (counts or percents).
    observed: Mapped[str] = mapped_column(String(32))
    baseline: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(500))
    #: open | dismissed
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class OfferBudget(Model):
    """An optional monthly budget (commission spend) for an offer, in the offer's currency."""

    __tablename__ = "report_offer_budgets"

    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    monthly_budget_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
