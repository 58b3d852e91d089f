"""The append-only ledger: post entries; derive balances. Nothing else stores a balance.

For every partner, merchant and currency:
sum(entries) = approved − reversed − paid + returned   (ARCHITECTURE.md invariant 4).
Helpers here only ``add``/``flush``: the use case that moves money commits once,
with its entries.
"""

from __future__ import annotations

from sqlalchemy import func, select

from partnernet.commissions.models import LEDGER_KINDS, LedgerEntry
from partnernet.extensions import db


def post_entry(*, merchant_id: int, partner_id: int, currency: str, amount_minor: int, kind: str,
               commission_id: int | None = None, payout_id: int | None = None,
               memo: str | None = None) -> LedgerEntry:
    """Append one signed entry (no commit: it joins the caller's transaction)."""
    if kind not in LEDGER_KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool):
        raise TypeError("ledger amounts are int minor units")
    entry = LedgerEntry(merchant_id=merchant_id, partner_id=partner_id, currency=currency,
                        amount_minor=amount_minor, kind=kind, commission_id=commission_id,
                        payout_id=payout_id, memo=memo)
    db.session.add(entry)
    return entry


def ledger_balance(merchant_id: int, partner_id: int, currency: str) -> int:
    """The sum of the partner's entries with this merchant in this currency (minor units)."""
    total = db.session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
        LedgerEntry.merchant_id == merchant_id, LedgerEntry.partner_id == partner_id,
        LedgerEntry.currency == currency))
    return int(total or 0)


def ledger_balances(merchant_id: int, partner_id: int) -> dict[str, int]:
    """The partner's ledger balance with this merchant, per currency."""
    rows = db.session.execute(
        select(LedgerEntry.currency, func.sum(LedgerEntry.amount_minor)).where(
            LedgerEntry.merchant_id == merchant_id, LedgerEntry.partner_id == partner_id,
        ).group_by(LedgerEntry.currency)).all()
    return {currency: int(total) for currency, total in rows}
