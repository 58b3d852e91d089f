"""Races on PostgreSQL: two approve-matured workers; an approve racing a reversal."""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from partnernet import clock
from tests.commission_helpers import NOW, Shop, assert_ledger_ok, commission, entries

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql")),
    reason="row locks (FOR UPDATE SKIP LOCKED) need PostgreSQL")


def run_threads(app, *targets):
    """Run each target in its own thread and app context, released together; their results."""
    from partnernet.extensions import db

    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)

    def runner(i, target):
        with app.app_context():
            barrier.wait()
            try:
                results[i] = target()
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                db.session.rollback()
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=runner, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_concurrent_approve_matured_runs_approve_each_commission_once(app, client):
    from partnernet.commissions.models import Commission, LedgerEntry
    from partnernet.commissions.services import approve_matured
    from partnernet.extensions import db

    clock.freeze(NOW)
    shop = Shop(client)
    ids = [shop.sale("10.00")["id"] for _ in range(60)]
    clock.freeze(NOW + timedelta(days=31))
    db.session.remove()
    counts = run_threads(app, lambda: approve_matured(batch_size=4), lambda: approve_matured(batch_size=4))
    assert all(isinstance(n, int) for n in counts), counts
    assert sum(counts) == 60
    per_commission = dict(db.session.execute(
        select(LedgerEntry.commission_id, func.count()).group_by(LedgerEntry.commission_id)).all())
    assert per_commission == {cid: 1 for cid in ids}
    assert db.session.scalar(select(func.count()).select_from(Commission).where(
        Commission.status == "approved")) == 60
    assert_ledger_ok()


def test_an_approve_racing_a_reversal_ends_in_one_consistent_outcome(app, client):
    from partnernet.commissions.exceptions import InvalidTransition
    from partnernet.commissions.services import approve_commission, reverse_for_refund
    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db

    clock.freeze(NOW)
    shop = Shop(client)
    outcomes = set()
    for _ in range(12):
        c = shop.sale("10.00", click=shop.click(is_bot=True))    # held: waits for a reviewer
        cid, conversion_id = c["id"], c["conversion_id"]
        db.session.commit()

        def approve(cid=cid):
            approve_commission(shop.merchant_id, cid, "looks fine")
            return "approved"  # (its status may already read "reversed" once reloaded)

        def refund(conversion_id=conversion_id):
            conversion = db.session.scalar(select(Conversion).where(Conversion.id == conversion_id)
                                           .with_for_update())
            conversion.refunded_minor, conversion.status = 1000, "refunded"
            result = reverse_for_refund(conversion, 1000).status
            db.session.commit()
            return result

        approved, reversed_ = run_threads(app, approve, refund)
        assert reversed_ == "reversed"
        row = commission(cid)
        assert row.status == "reversed" and row.reversed_minor == 100
        if isinstance(approved, InvalidTransition):
            # the refund came first: nothing was ever credited
            assert entries(cid) == [] and row.approved_at is None
            outcomes.add("reversed before approval")
        else:
            # the approval came first: credited, then reversed — net zero, never twice
            assert approved == "approved", approved
            assert entries(cid) == [("commission", 100), ("reversal", -100)]
            outcomes.add("approved then reversed")
    print("race outcomes seen:", sorted(outcomes))
    assert_ledger_ok()
