"""The append-only ledger: post entries; derive balances. Nothing else stores a balance.

For every partner, merchant and currency:
sum(entries) = approved − reversed − paid + returned   (ARCHITECTURE.md invariant 4).
Helpers here only ``add``/``flush``: the use case that moves money commits once,
with its entries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select

from partnernet.commissions.models import LEDGER_KINDS, LedgerEntry
from partnernet.extensions import db
from partnernet.payouts.models import Payout


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


def balance_view(merchant_id: int, partner_id: int) -> dict[str, dict[str, str]]:
    """``{currency: {available, pending, held}}`` as decimal strings, all derived.

    ``available`` is the ledger's sum; ``pending`` and ``held`` are what pending and
    held commissions would add (net of partial refunds) — not yet in the ledger.
    """
    from partnernet.commissions.models import Commission
    from partnernet.money import format_amount

    totals: dict[str, dict[str, int]] = {}
    for currency, total in ledger_balances(merchant_id, partner_id).items():
        totals.setdefault(currency, {"available": 0, "pending": 0, "held": 0})["available"] = total
    rows = db.session.execute(
        select(Commission.currency, Commission.status,
               func.sum(Commission.amount_minor - Commission.reversed_minor))
        .where(Commission.merchant_id == merchant_id, Commission.partner_id == partner_id,
               Commission.status.in_(("pending", "held")))
        .group_by(Commission.currency, Commission.status)).all()
    for currency, status, total in rows:
        totals.setdefault(currency, {"available": 0, "pending": 0, "held": 0})[status] = int(total)
    return {cur: {k: format_amount(v, cur) for k, v in parts.items()}
            for cur, parts in sorted(totals.items())}


@dataclass
class Difference:
    """One place where the ledger disagrees with the commissions or payouts it came from."""

    what: str
    id: int | tuple[int, int, str]
    expected: int
    actual: int

    def __str__(self) -> str:
        return f"{self.what} {self.id}: expected {self.expected}, ledger says {self.actual}"


def expected_commission_entries(status: str, approved: bool, amount: int, reversed_minor: int) -> int:
    """What a commission's commission+reversal entries must sum to (0 until approved)."""
    return amount - reversed_minor if approved else 0


def verify_ledger(merchant_id: int | None = None) -> list[Difference]:
    """Recompute balances from commissions and payouts; every difference from the ledger.

    Per commission: its entries = amount − reversed once approved, else nothing.
    Per payout: −amount at the claim; +amount back if failed; 0 < returns ≤ amount
    if returned. Per partner × merchant × currency: the ledger's sum = those sources
    + adjustments. Entries must name the commission's or payout's partner and currency.
    """
    from partnernet.commissions.models import Commission

    diffs: list[Difference] = []
    per_account: dict[tuple[int, int, str], int] = defaultdict(int)

    c_stmt = select(Commission)
    if merchant_id is not None:
        c_stmt = c_stmt.where(Commission.merchant_id == merchant_id)
    entry_sums = dict(db.session.execute(
        select(LedgerEntry.commission_id, func.sum(LedgerEntry.amount_minor))
        .where(LedgerEntry.commission_id.is_not(None),
               LedgerEntry.kind.in_(("commission", "reversal")))
        .group_by(LedgerEntry.commission_id)).all())
    for c in db.session.scalars(c_stmt.execution_options(yield_per=2000)):
        expected = expected_commission_entries(c.status, c.approved_at is not None,
                                               c.amount_minor, c.reversed_minor)
        posted = int(entry_sums.get(c.id) or 0)
        if expected != posted:
            diffs.append(Difference("commission", c.id, expected, posted))
        per_account[(c.merchant_id, c.partner_id, c.currency)] += expected

    mismatched = select(LedgerEntry.id).join(
        Commission, Commission.id == LedgerEntry.commission_id).where(
        (LedgerEntry.partner_id != Commission.partner_id)
        | (LedgerEntry.merchant_id != Commission.merchant_id)
        | (LedgerEntry.currency != Commission.currency))
    for entry_id in db.session.scalars(mismatched):
        diffs.append(Difference("entry names another partner/merchant/currency than its commission",
                                entry_id, 0, 1))

    p_stmt = select(Payout)
    if merchant_id is not None:
        p_stmt = p_stmt.where(Payout.merchant_id == merchant_id)
    # (payout_id, kind): the ids are never NULL here (``is_not(None)`` below).
    sums: dict[tuple[int | None, str], int] = {
        (pid, kind): int(total) for pid, kind, total in db.session.execute(
            select(LedgerEntry.payout_id, LedgerEntry.kind, func.sum(LedgerEntry.amount_minor))
            .where(LedgerEntry.payout_id.is_not(None))
            .group_by(LedgerEntry.payout_id, LedgerEntry.kind))}
    for p in db.session.scalars(p_stmt):
        paid_out = sums.get((p.id, "payout"), 0)
        returned = sums.get((p.id, "payout_return"), 0)
        if paid_out != -p.amount_minor:
            diffs.append(Difference("payout", p.id, -p.amount_minor, paid_out))
        if p.status == "failed" and returned != p.amount_minor:
            diffs.append(Difference("payout return", p.id, p.amount_minor, returned))
        elif p.status == "returned" and not 0 < returned <= p.amount_minor:
            diffs.append(Difference("payout return", p.id, p.amount_minor, returned))
        elif p.status not in ("failed", "returned") and returned != 0:
            diffs.append(Difference("payout return", p.id, 0, returned))
        per_account[(p.merchant_id, p.partner_id, p.currency)] += paid_out + returned

    # Entries with no source row (adjustments, loose reversals) count as they are.
    loose = select(LedgerEntry.merchant_id, LedgerEntry.partner_id, LedgerEntry.currency,
                   func.sum(LedgerEntry.amount_minor)).where(
        LedgerEntry.commission_id.is_(None), LedgerEntry.payout_id.is_(None))
    if merchant_id is not None:
        loose = loose.where(LedgerEntry.merchant_id == merchant_id)
    for mid, pid, cur, total in db.session.execute(
            loose.group_by(LedgerEntry.merchant_id, LedgerEntry.partner_id, LedgerEntry.currency)):
        per_account[(mid, pid, cur)] += int(total)

    actual_accounts = select(LedgerEntry.merchant_id, LedgerEntry.partner_id, LedgerEntry.currency,
                             func.sum(LedgerEntry.amount_minor))
    if merchant_id is not None:
        actual_accounts = actual_accounts.where(LedgerEntry.merchant_id == merchant_id)
    actual = {(m, p, c): int(t) for m, p, c, t in db.session.execute(actual_accounts.group_by(
        LedgerEntry.merchant_id, LedgerEntry.partner_id, LedgerEntry.currency))}
    for key in sorted(set(actual) | {k for k, v in per_account.items() if v}):
        if actual.get(key, 0) != per_account.get(key, 0):
            diffs.append(Difference("balance (merchant, partner, currency)", key,
                                    per_account.get(key, 0), actual.get(key, 0)))
    return diffs
