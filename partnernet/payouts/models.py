"""Payout runs, payouts (one transfer each) and the commissions they pay."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from partnernet import clock
from partnernet.dbtypes import BigIntPK, UTCDateTime
from partnernet.extensions import Model

PAYOUT_STATUSES = ("awaiting_approval", "queued", "processing", "paid", "failed", "returned")
RUN_STATUSES = ("awaiting_approval", "approved", "rejected")


class PayoutRun(Model):
    """One "pay partners now" action of a merchant; groups its payouts (Stripe transfer_group)."""

    __tablename__ = "payout_runs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    #: awaiting_approval | approved | rejected
    status: Mapped[str] = mapped_column(String(24), default="approved")
    #: api | cli | schedule
    trigger: Mapped[str] = mapped_column(String(16), default="api")
    #: Sum of the run's payouts per currency, minor units: {"USD": 12345}.
    totals: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: Why partners were skipped: [{"partner_id", "currency", "reason"}]
    skipped: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class Payout(Model):
    """One transfer to one partner in one currency; amount frozen before the first call."""

    __tablename__ = "payouts"
    __table_args__ = (Index("ix_payouts_status_next_attempt", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("payout_runs.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    #: stripe | manual
    rail: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), default="queued")
    destination: Mapped[str | None] = mapped_column(String(64))
    #: Stripe transfer_group, frozen at creation with the amount (``run-<run id>``).
    transfer_group: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    transfer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    manual_reference: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: What a failed payout had claimed before its items were released (for the record).
    released_items: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    #: Who marked a manual payout paid.
    marked_paid_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class PayoutItem(Model):
    """One commission (or clawback) claimed by a payout; a commission is in one payout only."""

    __tablename__ = "payout_items"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    payout_id: Mapped[int] = mapped_column(ForeignKey("payouts.id"), index=True)
    commission_id: Mapped[int | None] = mapped_column(ForeignKey("commissions.id"), unique=True)
    #: A negative ledger entry (clawback) netted off by this payout.
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class StripeEvent(Model):
    """A Stripe webhook event already handled: the id makes redelivery a no-op."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    #: The id of the object the event is about (account, transfer, payout).
    object_id: Mapped[str | None] = mapped_column(String(255), index=True)
    #: Stripe's ``created`` (unix seconds): orders events that arrive out of order.
    created: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class PayoutNotice(Model):
    """Something a partner must see in the portal about its payouts (failed, skipped)."""

    __tablename__ = "payout_notices"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"))
    #: payout_failed | transfer_failed | transfer_reversed | payouts_disabled
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(1000))
    #: The Stripe object the notice is about (po_..., tr_...), if any.
    stripe_object_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
