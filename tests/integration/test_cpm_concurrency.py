"""CPM accrual runs racing on PostgreSQL: every day accrued once, the carry consumed once."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from partnernet import clock
from tests.commission_helpers import Shop
from tests.functional.test_cpm import impressions
from tests.integration.test_commission_concurrency import run_threads

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql")),
    reason="concurrent job runs need PostgreSQL")


def test_concurrent_cpm_runs_pay_each_day_once_and_lose_no_carry(app, client):
    """Ten days of one view at 9.99 per 1,000 (0.999 cent each), accrued by twelve racing runs
    (two days twice): 9.99 cents in all, so exactly 9 paid. Runs that read the running total
    at the same time would each see 0 and pay nothing."""
    from partnernet.commissions.cpm import accrue_cpm
    from partnernet.commissions.models import Commission
    from partnernet.creatives.models import CpmAccrual
    from partnernet.extensions import db

    clock.freeze(datetime(2026, 3, 20, 12, 0, tzinfo=UTC))
    s = Shop(client, plans=[{"event": "impression", "type": "cpm", "amount": "9.99"}])
    days = [date(2026, 3, 1) + timedelta(days=n) for n in range(10)]
    for day in days:
        impressions(s.offer, s.partner.id, day, 1)
    db.session.remove()
    results = run_threads(app, *[(lambda d=d: accrue_cpm(d)) for d in days + days[:2]])
    assert all(isinstance(r, int) for r in results), results
    assert db.session.scalar(select(func.count()).select_from(CpmAccrual)) == 10
    assert db.session.scalar(select(func.sum(Commission.amount_minor))) == 9
    assert sum(results) == 9
