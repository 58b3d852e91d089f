"""Helpers of the payout tests: a Stripe-configured app on the fake server, balances, checks."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

WEBHOOK_SECRET = "whsec_test_secret"


def stripe_config(fake_url: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "STRIPE_SECRET_KEY": "sk_test_fake",
        "STRIPE_API_BASE": fake_url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # Tests see each lost answer: the library's own retries are off unless a test asks.
        "STRIPE_MAX_NETWORK_RETRIES": 0,
        "STRIPE_TIMEOUT_SECONDS": 2,
        "STRIPE_MAX_REQUESTS_PER_SECOND": 1000,
    }
    cfg.update(extra)
    return cfg


def approved_commission(merchant_id: int, partner_id: int, offer_id: int, amount_minor: int,
                        currency: str = "USD") -> Any:
    """An approved commission with its +commission ledger entry, as the engine leaves it; commits."""
    from partnernet import clock
    from partnernet.commissions.ledger import post_entry
    from partnernet.commissions.models import Commission
    from partnernet.extensions import db

    now = clock.now()
    commission = Commission(merchant_id=merchant_id, partner_id=partner_id, offer_id=offer_id,
                            amount_minor=amount_minor, currency=currency, status="approved",
                            hold_until=now, approved_at=now, flags=[])
    db.session.add(commission)
    db.session.flush()
    post_entry(merchant_id=merchant_id, partner_id=partner_id, currency=currency,
               amount_minor=amount_minor, kind="commission", commission_id=commission.id)
    db.session.commit()
    return commission


def clawback(commission: Any, amount_minor: int) -> None:
    """The engine's reversal of a paid commission: a negative entry; commits."""
    from partnernet.commissions.ledger import post_entry
    from partnernet.extensions import db

    post_entry(merchant_id=commission.merchant_id, partner_id=commission.partner_id,
               currency=commission.currency, amount_minor=-amount_minor, kind="reversal",
               commission_id=commission.id)
    commission.reversed_minor = amount_minor
    commission.status = "reversed" if amount_minor >= commission.amount_minor else commission.status
    db.session.commit()


def onboard(partner: Any, fake: Any, payouts_enabled: bool = True) -> str:
    """Give the partner a connected account on the fake; commits."""
    from partnernet.extensions import db

    partner.stripe_account_id = fake.add_account(payouts_enabled=payouts_enabled)
    partner.payouts_enabled = payouts_enabled
    partner.payout_rail = "stripe"
    db.session.commit()
    return str(partner.stripe_account_id)


def balance(merchant_id: int, partner_id: int, currency: str = "USD") -> int:
    from partnernet.commissions.ledger import ledger_balance
    from partnernet.extensions import db

    db.session.expire_all()
    return ledger_balance(merchant_id, partner_id, currency)


def payout(payout_id: int) -> Any:
    from partnernet.extensions import db
    from partnernet.payouts.models import Payout

    db.session.expire_all()
    return db.session.get(Payout, payout_id)


def payouts(merchant_id: int | None = None) -> list[Any]:
    from partnernet.extensions import db
    from partnernet.payouts.models import Payout

    db.session.expire_all()
    stmt = select(Payout).order_by(Payout.id)
    if merchant_id:
        stmt = stmt.where(Payout.merchant_id == merchant_id)
    return list(db.session.scalars(stmt))


def assert_ledger_consistent(fake: Any = None) -> None:
    """The money checks ``partnernet ledger verify`` makes, plus the payout ones.

    - every payout has one −amount ``payout`` entry; a failed one a +amount return and
      no items; the others' items add up to the amount;
    - a commission is claimed by one payout at most, and a claimed one is not ``approved``;
    - per partner and currency, the balance is what the next run would claim;
    - on the fake: at most one transfer per payout, of the payout's amount.
    """
    from partnernet.commissions.models import Commission, LedgerEntry
    from partnernet.extensions import db
    from partnernet.payouts.models import Payout, PayoutItem
    from partnernet.payouts.services import _claims

    db.session.expire_all()
    entries = defaultdict(list)
    for e in db.session.scalars(select(LedgerEntry).where(LedgerEntry.payout_id.is_not(None))):
        entries[e.payout_id].append((e.kind, e.amount_minor))
    merchants = set()
    for p in db.session.scalars(select(Payout)):
        merchants.add(p.merchant_id)
        kinds = entries[p.id]
        assert ("payout", -p.amount_minor) in kinds, (p.id, kinds)
        assert sum(1 for k, _ in kinds if k == "payout") == 1
        items = list(db.session.scalars(select(PayoutItem).where(PayoutItem.payout_id == p.id)))
        if p.status == "failed":
            assert ("payout_return", p.amount_minor) in kinds and not items
        else:
            assert sum(i.amount_minor for i in items) == p.amount_minor, p.id
        if fake is not None and p.rail == "stripe":
            transfers = fake.transfers_for(p.id)
            assert len(transfers) <= 1, (p.id, transfers)
            if p.status in ("paid", "returned"):
                assert [t["id"] for t in transfers] == [p.transfer_id]
                assert transfers[0]["amount"] == p.amount_minor
                assert transfers[0]["currency"] == p.currency.lower()
            if p.status == "failed":
                assert transfers == []
    claimed = db.session.execute(select(PayoutItem.commission_id, Commission.status).join(
        Commission, Commission.id == PayoutItem.commission_id)).all()
    assert all(status != "approved" for _, status in claimed)
    for merchant_id in merchants:
        claims = _claims(merchant_id, None, None)
        rows = db.session.execute(
            select(LedgerEntry.partner_id, LedgerEntry.currency, func.sum(LedgerEntry.amount_minor))
            .where(LedgerEntry.merchant_id == merchant_id)
            .group_by(LedgerEntry.partner_id, LedgerEntry.currency)).all()
        for pid, cur, total in rows:
            claim = claims.get((pid, cur))
            assert int(total) == (claim.amount_minor if claim else 0), (pid, cur, total, claim)
    # and the commissions engine's own check (``partnernet ledger verify``)
    from partnernet.commissions.ledger import verify_ledger

    assert [str(d) for d in verify_ledger()] == []
    db.session.commit()
