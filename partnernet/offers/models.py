"""Offers, commission plans with tiers, per-partner overrides, program memberships."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from partnernet import clock
from partnernet.accounts.models import Partner
from partnernet.dbtypes import BigIntPK, UTCDateTime
from partnernet.extensions import Model

PLAN_TYPES = ("cps", "cpa", "cpl", "cpc", "cpm")
ATTRIBUTION_MODELS = ("last_click", "first_click")
ATTRIBUTION_PRIORITIES = ("coupon_first", "click_first")
OFFER_STATUSES = ("active", "paused", "archived")
MEMBERSHIP_STATUSES = ("pending", "approved", "rejected", "banned")

Percent = Numeric(7, 4, asdecimal=True)


class Offer(Model):
    """What a merchant pays partners for: a landing URL and commission plans."""

    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    landing_url: Mapped[str] = mapped_column(String(2000))
    currency: Mapped[str] = mapped_column(String(3))
    #: NULL: the merchant's default_hold_days.
    hold_days: Mapped[int | None] = mapped_column()
    attribution_window_days: Mapped[int] = mapped_column(default=30)
    attribution_model: Mapped[str] = mapped_column(String(16), default="last_click")
    attribution_priority: Mapped[str] = mapped_column(String(16), default="coupon_first")
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: Per-partner daily conversion cap (NULL: none); over the cap is held as cap_exceeded.
    daily_cap: Mapped[int | None] = mapped_column()
    click_id_param: Mapped[str] = mapped_column(String(64), default="click_id")
    allow_paid_search: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Coupon conversions only credited when the coupon's partner also sent a click.
    coupon_requires_click: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Recurring commissions on custom events for up to N months after the first sale.
    recurring_months: Mapped[int | None] = mapped_column()
    #: Program membership needed per offer (else program membership is enough).
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)

    plans: Mapped[list[CommissionPlan]] = relationship(
        back_populates="offer", cascade="all, delete-orphan", order_by="CommissionPlan.id"
    )


class CommissionPlan(Model):
    """How one event of an offer pays: cps percent, or cpa/cpl/cpc flat amount; maybe tiered."""

    __tablename__ = "commission_plans"
    __table_args__ = (UniqueConstraint("offer_id", "event"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(8))
    percent: Mapped[Decimal | None] = mapped_column(Percent)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)

    offer: Mapped[Offer] = relationship(back_populates="plans")
    tiers: Mapped[list[PlanTier]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", order_by="PlanTier.min_conversions"
    )


class PlanTier(Model):
    """A better rate once the partner's approved conversions this month reach a threshold."""

    __tablename__ = "plan_tiers"
    __table_args__ = (UniqueConstraint("plan_id", "min_conversions"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("commission_plans.id"), index=True)
    min_conversions: Mapped[int] = mapped_column()
    percent: Mapped[Decimal | None] = mapped_column(Percent)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)

    plan: Mapped[CommissionPlan] = relationship(back_populates="tiers")


class PlanOverride(Model):
    """A partner's own rate for one event of an offer; beats tiers and the plan."""

    __tablename__ = "plan_overrides"
    __table_args__ = (UniqueConstraint("offer_id", "partner_id", "event"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    percent: Mapped[Decimal | None] = mapped_column(Percent)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    offer: Mapped[Offer] = relationship()


class Membership(Model):
    """A partner in a merchant's program (``offer_id`` NULL) or in one offer: apply → approve."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("merchant_id", "partner_id", "offer_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    partner: Mapped[Partner] = relationship()
