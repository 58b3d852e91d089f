"""Hypothesis state machine: random conversions, refunds (full and partial), approvals,
rejections, matured approvals and payouts; the ledger invariants hold after every step.

ARCHITECTURE.md invariant 4: for every partner and currency, the sum of ledger entries
= approved − reversed − paid + returned, and no payout exceeds the balance at its creation.
Runs on SQLite and, with DATABASE_URL, on PostgreSQL (the real payouts engine claims).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from partnernet import clock
from partnernet.money import prorate
from tests.commission_helpers import NOW

_orders = itertools.count(1)


@dataclass
class Expected:
    id: int
    conversion_id: int
    order_minor: int
    amount: int
    status: str
    reversed_minor: int = 0
    refunded_minor: int = 0


class LedgerMachine(RuleBasedStateMachine):
    """One merchant and partner per run; the model says what the database must say."""

    def __init__(self) -> None:
        super().__init__()
        from partnernet.accounts.models import Merchant
        from partnernet.extensions import db
        from tests.factories import make_click_row, make_merchant, make_offer, make_partner

        clock.freeze(NOW)
        self.now = NOW
        shop = make_merchant()
        self.merchant_id = shop.merchant.id
        merchant = db.session.get(Merchant, self.merchant_id)
        merchant.min_payout_minor = 1
        # random amounts would trip the outlier rule; holds are driven by bot clicks here
        merchant.fraud_settings = {"rules": {"amount_outlier": {"enabled": False}}}
        db.session.commit()
        self.offer = make_offer(self.merchant_id, plans=[{"event": "sale", "type": "cps", "percent": "12.5"}],
                                hold_days=10)
        self.partner_id = make_partner(self.merchant_id).id
        self.click_id = make_click_row(self.offer, self.partner_id, at=NOW - timedelta(days=1)).id
        self.bot_click_id = make_click_row(self.offer, self.partner_id, at=NOW - timedelta(days=1),
                                           is_bot=True).id
        self.commissions: list[Expected] = []
        self.credited = 0      # approved (net of refunds before approval)
        self.reversed = 0      # reversed after approval
        self.paid = 0          # claimed by payouts

    # -- steps ---------------------------------------------------------------------------

    @rule(amount=st.integers(min_value=100, max_value=1_000_000), suspicious=st.booleans())
    def conversion(self, amount: int, suspicious: bool) -> None:
        from partnernet.commissions.services import commission_for_conversion
        from partnernet.conversions.models import Conversion
        from partnernet.extensions import db
        from partnernet.links.models import Click

        click = db.session.scalar(select(Click).where(
            Click.id == (self.bot_click_id if suspicious else self.click_id)))
        conversion = Conversion(merchant_id=self.merchant_id, offer_id=self.offer.id,
                                partner_id=self.partner_id, click_id=click.id, event="sale",
                                order_id=f"SM-{next(_orders)}", amount_minor=amount, currency="USD",
                                refunded_minor=0, status="approved", created_at=self.now)
        db.session.add(conversion)
        db.session.flush()
        c = commission_for_conversion(conversion, click)
        db.session.commit()
        expected_status = "held" if suspicious else "pending"
        assert c is not None and c.status == expected_status, (c.status, c.flags)
        self.commissions.append(Expected(c.id, conversion.id, amount, c.amount_minor, expected_status))

    @precondition(lambda self: self.commissions)
    @rule(data=st.data(), full=st.booleans())
    def refund(self, data: st.DataObject, full: bool) -> None:
        from partnernet.commissions.services import reverse_for_refund
        from partnernet.conversions.models import Conversion
        from partnernet.extensions import db

        e = data.draw(st.sampled_from(self.commissions))
        if e.refunded_minor >= e.order_minor:
            return
        total = e.order_minor if full else data.draw(
            st.integers(min_value=e.refunded_minor + 1, max_value=e.order_minor))
        conversion = db.session.get(Conversion, e.conversion_id)
        conversion.refunded_minor = total
        conversion.status = "refunded" if total >= e.order_minor else "partially_refunded"
        reverse_for_refund(conversion, total)
        db.session.commit()
        e.refunded_minor = total
        if e.status in ("rejected", "reversed"):
            return
        target = e.amount if total >= e.order_minor else prorate(e.amount, total, e.order_minor)
        delta = target - e.reversed_minor
        if delta > 0:
            if e.status in ("approved", "paid"):
                self.reversed += delta
            e.reversed_minor = target
            if target >= e.amount:
                e.status = "reversed"

    @precondition(lambda self: self.commissions)
    @rule(data=st.data(), approve=st.booleans())
    def review(self, data: st.DataObject, approve: bool) -> None:
        from partnernet.commissions.exceptions import InvalidTransition
        from partnernet.commissions.services import review_commission

        e = data.draw(st.sampled_from(self.commissions))
        allowed = e.status in ("pending", "held")
        try:
            review_commission(self.merchant_id, e.id, "approve" if approve else "reject", "model")
        except InvalidTransition:
            assert not allowed, e
            return
        assert allowed, e
        if approve:
            e.status = "approved"
            self.credited += e.amount - e.reversed_minor
        else:
            e.status = "rejected"

    @rule(days=st.sampled_from([1, 11]))
    def approve_matured(self, days: int) -> None:
        from partnernet.commissions.services import approve_matured

        created_before = self.now
        self.now = self.now + timedelta(days=days)
        clock.freeze(self.now)
        approve_matured(batch_size=3, merchant_id=self.merchant_id)
        for e in self.commissions:
            # every commission so far was created at or before created_before
            if e.status == "pending" and created_before + timedelta(days=10) <= self.now \
                    and self._created_at(e) + timedelta(days=10) <= self.now:
                e.status = "approved"
                self.credited += e.amount - e.reversed_minor

    @rule()
    def payout(self) -> None:
        from partnernet.commissions.ledger import ledger_balance
        from partnernet.extensions import db
        from partnernet.payouts.manual import mark_manual_paid
        from partnernet.payouts.models import Payout
        from partnernet.payouts.services import create_run

        before = ledger_balance(self.merchant_id, self.partner_id, "USD")
        run = create_run(self.merchant_id)
        payouts = list(db.session.scalars(select(Payout).where(Payout.run_id == run.id)))
        total = sum(p.amount_minor for p in payouts)
        assert total <= max(before, 0), (total, before)  # never more than the balance
        if before > 0:
            assert total == before   # everything in the ledger was claimable
        for p in payouts:
            mark_manual_paid(self.merchant_id, p.id, f"ref-{p.id}")
        self.paid += total
        if payouts:
            for e in self.commissions:
                if e.status == "approved":
                    e.status = "paid"

    # -- checks ----------------------------------------------------------------------------

    def _created_at(self, e: Expected):
        from partnernet.commissions.models import Commission
        from partnernet.extensions import db

        return db.session.get(Commission, e.id).created_at

    @invariant()
    def ledger_matches_the_model_and_the_sources(self) -> None:
        from partnernet.commissions.ledger import ledger_balance, verify_ledger
        from partnernet.commissions.models import Commission, LedgerEntry
        from partnernet.extensions import db

        db.session.expire_all()
        balance = ledger_balance(self.merchant_id, self.partner_id, "USD")
        assert balance == self.credited - self.reversed - self.paid
        assert [str(d) for d in verify_ledger(self.merchant_id)] == []
        rows = {c.id: c for c in db.session.scalars(select(Commission).where(
            Commission.merchant_id == self.merchant_id))}
        for e in self.commissions:
            c = rows[e.id]
            assert (c.status, c.amount_minor, c.reversed_minor) == (e.status, e.amount, e.reversed_minor), e
        credits = db.session.execute(select(LedgerEntry.commission_id, func.count()).where(
            LedgerEntry.merchant_id == self.merchant_id, LedgerEntry.kind == "commission")
            .group_by(LedgerEntry.commission_id)).all()
        assert all(n == 1 for _, n in credits)  # approved at most once

    def teardown(self) -> None:
        clock.freeze(None)


def test_ledger_invariants_hold_over_random_histories(app):
    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=15, stateful_step_count=20, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
