"""Commissions (what a partner earns for a conversion) and the append-only ledger."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from partnernet import clock, dbsetup
from partnernet.dbtypes import BigIntPK, UTCDateTime
from partnernet.extensions import Model

COMMISSION_STATUSES = ("pending", "held", "approved", "rejected", "paid", "reversed")
LEDGER_KINDS = ("commission", "reversal", "payout", "payout_return", "adjustment")


class Commission(Model):
    """What a partner earns for one conversion (or one day's CPC clicks)."""

    __tablename__ = "commissions"
    __table_args__ = (
        Index("ix_commissions_status_hold", "status", "hold_until"),
        Index("ix_commissions_merchant_partner_status", "merchant_id", "partner_id", "status"),
        # One CPC accrual per partner × offer × day (conversions have accrual_date NULL).
        UniqueConstraint("offer_id", "partner_id", "accrual_date", name="uq_commissions_cpc_day"),
        # A merchant's accruals (CPC, CPM: no conversion) by day, for the report rollups; a
        # conversion's commission is not in it (nothing written to it on a postback).
        Index("ix_commissions_accruals_merchant_created", "merchant_id", "created_at",
              postgresql_where=text("conversion_id IS NULL"),
              sqlite_where=text("conversion_id IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    #: No index of its own: ``uq_commissions_cpc_day`` leads with it.
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"))
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
    #: CPC accruals: the UTC day accrued and how many unique, non-bot clicks it paid.
    accrual_date: Mapped[date | None] = mapped_column(Date)
    click_count: Mapped[int | None] = mapped_column()
    #: The user who reviewed it (panels); NULL with reviewed_via "api" or "job".
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_via: Mapped[str | None] = mapped_column(String(16))
    review_reason: Mapped[str | None] = mapped_column(String(1000))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)


class LedgerEntry(Model):
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


# -- the ledger is append-only in the database too ---------------------------------------

#: Installed by ``dbsetup.install`` (tests) and to be installed by the migration too.
#: Row-level: TRUNCATE (test clean-up) still works.
LEDGER_TRIGGER_POSTGRES = """
CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only: % refused (post a reversing entry)', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
"""
LEDGER_TRIGGERS_SQLITE = (
    "CREATE TRIGGER IF NOT EXISTS ledger_entries_no_update BEFORE UPDATE ON ledger_entries "
    "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS ledger_entries_no_delete BEFORE DELETE ON ledger_entries "
    "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: DELETE refused'); END",
)


def install_ledger_trigger(engine: Engine) -> None:
    """Refuse UPDATE and DELETE on ledger_entries (idempotent)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(LEDGER_TRIGGER_POSTGRES))
        elif engine.dialect.name == "sqlite":
            for statement in LEDGER_TRIGGERS_SQLITE:
                conn.execute(text(statement))


if install_ledger_trigger not in dbsetup.INSTALLERS:
    dbsetup.INSTALLERS.append(install_ledger_trigger)
