"""Commission engine and approve-matured against baselines measured in the same run.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python benchmarks/commissions.py
    .venv/bin/python benchmarks/commissions.py            # SQLite file in a temporary folder

Creates a database of its own (dropped at the end), seeds a merchant, a 10 % CPS
offer with a tier, 20 partners with a click each, then times:

1. the engine: N conversions inserted and ``commission_for_conversion`` run for each
   (every fraud rule on), against the baseline of inserting the same N conversions
   alone — ratio = the engine's cost per conversion in "conversion inserts";
2. ``approve_matured`` over those N commissions (batches of 500, one ledger entry
   each), against the baseline of one bulk ``UPDATE commissions SET status`` of the
   same rows (no ledger) — ratio = what the per-row ledger and checks cost.

Last run (2026-11-29 04:19 UTC, n=1000, 2 shared cores under other engineers' load):
SQLite: engine ÷ insert 2.78 (53 vs 148 conversions/s, a commit each); approve-matured
930/s, 37× a bulk UPDATE per row. PostgreSQL: engine ÷ insert 3.18 (39 vs 125/s);
approve-matured 679/s, 32× a bulk UPDATE per row (≈ 2.4 M approvals an hour).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.payouts import make_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    url, drop = make_database()
    try:
        run(url, args.n)
    finally:
        drop()  # type: ignore[operator]


def run(url: str, n: int) -> None:
    from sqlalchemy import text, update

    from partnernet import clock, dbsetup
    from partnernet.app import create_app
    from partnernet.commissions.models import Commission
    from partnernet.commissions.services import approve_matured, commission_for_conversion
    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db
    from tests.factories import make_click_row, make_merchant, make_offer, make_partner

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-secret-key-0123456789abcdef",
                      "REDIS_URL": None, "JOBS_INLINE": True, "TESTING": True})
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    with app.app_context():
        db.create_all()
        dbsetup.install(db.engine)
        clock.freeze(now)
        shop = make_merchant()
        offer = make_offer(shop.merchant.id, plans=[{"event": "sale", "type": "cps", "percent": "10",
                                                     "tiers": [{"min_conversions": 50, "percent": "12"}]}])
        partners = [make_partner(shop.merchant.id).id for _ in range(20)]
        clicks = [make_click_row(offer, pid, at=now - timedelta(hours=1))
                  for pid in partners]

        def conversions(prefix: str) -> list[Conversion]:
            return [Conversion(merchant_id=shop.merchant.id, offer_id=offer.id,
                               partner_id=clicks[i % 20].partner_id, click_id=clicks[i % 20].id,
                               event="sale", order_id=f"{prefix}-{i}", amount_minor=1000 + i % 700,
                               currency="USD", refunded_minor=0, status="approved", created_at=now)
                    for i in range(n)]

        start = time.perf_counter()
        for conv in conversions("base"):
            db.session.add(conv)
            db.session.flush()
            db.session.commit()
        baseline = time.perf_counter() - start

        start = time.perf_counter()
        for i, conv in enumerate(conversions("eng")):
            db.session.add(conv)
            db.session.flush()
            commission_for_conversion(conv, clicks[i % 20])
            db.session.commit()
        engine = time.perf_counter() - start
        print(f"conversions alone      : {n / baseline:8.0f} /s")
        print(f"with the engine        : {n / engine:8.0f} /s   "
              f"ratio engine ÷ insert = {engine / baseline:.2f}")

        clock.freeze(now + timedelta(days=31))
        ids = [c for (c,) in db.session.execute(text("SELECT id FROM commissions"))]
        start = time.perf_counter()
        db.session.execute(update(Commission).where(Commission.id.in_(ids[: n // 2]))
                           .values(status="approved"))
        db.session.commit()
        bulk = time.perf_counter() - start
        db.session.execute(update(Commission).where(Commission.id.in_(ids[: n // 2]))
                           .values(status="pending"))
        db.session.commit()
        start = time.perf_counter()
        approved = approve_matured()
        job = time.perf_counter() - start
        print(f"approve-matured        : {approved / job:8.0f} /s   ({approved} approved)")
        print(f"bulk UPDATE (baseline) : {(n // 2) / bulk:8.0f} /s   ratio job ÷ bulk per row = "
              f"{(job / approved) / (bulk / (n // 2)):.1f}")
        db.session.remove()
        db.engine.dispose()


if __name__ == "__main__":
    main()
