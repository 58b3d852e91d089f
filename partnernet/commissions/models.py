"""Commissions (what a partner earns for a conversion) and the append-only ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from partnernet import clock
from partnernet.dbtypes import BigIntPK, UTCDateTime
from partnernet.extensions import db

COMMISSION_STATUSES = ("pending", "held", "approved", "rejected", "paid", "reversed")
LEDGER_KINDS = ("commission", "reversal", "payout", "payout_return", "adjustment")


class Commission(db.Model):
    """What a partner earns for one conversion (or one day's CPC clicks)."""

    __tablename__ = "commissions"
    __table_args__ = (
        Index("ix_commissions_status_hold", "status", "hold_until"),
        Index("ix_commissions_merchant_partner_status", "merchant_id", "partner_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    #: NULL for commissions not tied to one conversion (daily CPC accrual).
    conversion_id: Mapped[int | None] = mapped_column(ForeignKey("conversions.id"), unique=True)
    #: conversion | cpc
    kind: Mapped[str] = mapped_column(String(16), default="conversion")
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: How much of amount_minor has been reversed by refunds.
    reversed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    hold_until: Mapped[datetime] = mapped_column(UTCDateTime)
    #: [{"rule": ..., "reason": ..., "action": hold|reject|flag|shadow}]
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    review_reason: Mapped[str | None] = mapped_column(String(1000))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class LedgerEntry(db.Model):
    """An append-only signed money movement; a balance is the sum of these, nothing else."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_partner_merchant_currency", "partner_id", "merchant_id", "currency"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    commission_id: Mapped[int | None] = mapped_column(ForeignKey("commissions.id"), index=True)
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"), index=True)
    memo: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
