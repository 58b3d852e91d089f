"""The manual rail: payouts a merchant pays outside partnernet (PayPal or Wise batch CSV),
then marks paid with its reference or failed (the amount returns to the balance)."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from partnernet import clock
from partnernet.accounts.models import Partner
from partnernet.extensions import db
from partnernet.money import format_amount
from partnernet.payouts import exceptions as exc
from partnernet.payouts.models import Payout
from partnernet.payouts.services import _fail

CSV_FORMATS = ("paypal", "wise")


def export_manual_csv(merchant_id: int, fmt: str = "paypal") -> str:
    """The merchant's queued manual payouts as a PayPal Payouts or Wise batch CSV."""
    rows = db.session.execute(
        select(Payout, Partner).join(Partner, Partner.id == Payout.partner_id)
        .where(Payout.merchant_id == merchant_id, Payout.rail == "manual", Payout.status == "queued")
        .order_by(Payout.id)).all()
    out = io.StringIO()
    writer = csv.writer(out)
    if fmt == "wise":
        # Wise batch transfer template (email recipients).
        writer.writerow(["name", "recipientEmail", "paymentReference", "receiverType",
                         "amountCurrency", "amount", "sourceCurrency", "targetCurrency"])
        for payout, partner in rows:
            writer.writerow([_csv_safe(partner.name), partner.email, f"payout-{payout.id}", "PRIVATE",
                             "target", format_amount(payout.amount_minor, payout.currency),
                             payout.currency, payout.currency])
    else:
        # PayPal Payouts (Mass Pay) CSV: email, amount, currency, unique id, note.
        writer.writerow(["Recipient", "Amount", "Currency", "Customer ID", "Note"])
        for payout, partner in rows:
            writer.writerow([partner.email, format_amount(payout.amount_minor, payout.currency),
                             payout.currency, f"payout-{payout.id}", f"Commissions, payout {payout.id}"])
    return out.getvalue()


def _csv_safe(value: str) -> str:
    """No spreadsheet formula injection through a partner's name."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _queued_manual(merchant_id: int, payout_id: int) -> Payout:
    """The merchant's queued manual payout, locked: PayoutNotFound for another merchant's,
    NotManualPayout (409) for one that is not queued on the manual rail."""
    payout = db.session.scalar(select(Payout).where(
        Payout.id == payout_id, Payout.merchant_id == merchant_id).with_for_update())
    if payout is None:
        raise exc.PayoutNotFound()
    if payout.rail != "manual" or payout.status != "queued":
        raise exc.NotManualPayout()
    return payout


def mark_manual_paid(merchant_id: int, payout_id: int, reference: str,
                     user_id: int | None = None) -> Payout:
    """Record that a manual payout was paid outside partnernet, with its reference. Commits.

    Its −amount ``payout`` ledger entry was written at the claim, as for Stripe.
    """
    payout = _queued_manual(merchant_id, payout_id)
    payout.status = "paid"
    payout.manual_reference = reference.strip()[:255]
    payout.paid_at = clock.now()
    payout.marked_paid_by_id = user_id
    payout.next_attempt_at = None
    db.session.commit()
    return payout


def fail_manual(merchant_id: int, payout_id: int, reason: str) -> Payout:
    """A manual payout that could not be paid: its amount returns to the balance. Commits."""
    payout = _queued_manual(merchant_id, payout_id)
    _fail(payout, "manual_failed", reason[:500])
    db.session.commit()
    return payout
