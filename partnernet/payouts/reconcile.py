"""Reconciliation: partnernet's Stripe payouts against the transfers Stripe holds."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select

from partnernet.extensions import db
from partnernet.payouts import exceptions as exc
from partnernet.payouts.gateway import gateway, stripe_enabled
from partnernet.payouts.models import Payout


def reconcile(merchant_id: int | None = None) -> list[dict[str, Any]]:
    """Compare Stripe payouts with Stripe's transfers; return every difference found."""
    gw = gateway()
    if not stripe_enabled():
        raise exc.StripeNotConfigured()
    stmt = select(Payout).where(Payout.rail == "stripe", Payout.status.in_(
        ("processing", "paid", "returned", "failed")))
    if merchant_id:
        stmt = stmt.where(Payout.merchant_id == merchant_id)
    payouts = {p.id: p for p in db.session.scalars(stmt)}
    groups = sorted({p.transfer_group for p in payouts.values() if p.transfer_group})
    by_payout: dict[int, list[Any]] = defaultdict(list)
    for group in groups:
        for transfer in gw.transfers_in_group(group):  # type: ignore[union-attr]
            pid = (transfer.metadata or {}).get("payout_id")
            if pid and str(pid).isdigit():
                by_payout[int(pid)].append(transfer)
    diffs: list[dict[str, Any]] = []
    for pid, payout in sorted(payouts.items()):
        transfers = by_payout.get(pid, [])
        base = {"payout_id": pid, "status": payout.status, "transfer_id": payout.transfer_id}
        if len(transfers) > 1:
            diffs.append({**base, "problem": "several_transfers",
                          "transfers": [t.id for t in transfers]})
        elif payout.status in ("paid", "returned") and not transfers:
            diffs.append({**base, "problem": "no_transfer_at_stripe"})
        elif payout.status in ("processing", "failed") and transfers:
            diffs.append({**base, "problem": f"transfer_exists_but_payout_{payout.status}",
                          "transfers": [transfers[0].id]})
        elif transfers:
            t = transfers[0]
            if t.id != payout.transfer_id:
                diffs.append({**base, "problem": "transfer_id_differs", "stripe_transfer_id": t.id})
            elif int(t.amount) != payout.amount_minor or str(t.currency).upper() != payout.currency:
                diffs.append({**base, "problem": "amount_differs",
                              "stripe": f"{t.amount} {str(t.currency).upper()}",
                              "payout": f"{payout.amount_minor} {payout.currency}"})
    for pid in sorted(set(by_payout) - set(payouts)):
        diffs.append({"payout_id": pid, "problem": "transfer_without_payout",
                      "transfers": [t.id for t in by_payout[pid]]})
    db.session.commit()
    return diffs
