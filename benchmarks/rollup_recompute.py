"""How a day's commission rollup recompute grows with the merchant's history.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python benchmarks/rollup_recompute.py

The rollup job recomputes each (merchant, day) whose conversions or commissions changed: on a
busy program, today's, for every active merchant, on every run. This script makes a database
of its own (dropped at the end) with one merchant, ``--today`` sales with their commissions
today, then times ``recompute_money_day(merchant, today)`` (median of five) with
``--small`` past sales in the history, adds past sales up to ``--large`` (all before today,
so today's rows stay the same) and times it again. It prints both and their ratio: near 1
when the recompute reads the day's rows, near large ÷ small when it reads the history.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def days_ago(days: str) -> str:
    """When sale g happened: ``days`` (an SQL expression of g) whole days before today, at a
    minute of the day that g picks."""
    return f"date_trunc('day', now()) - ({days}) * interval '1 day' + (g % 1000) * interval '1 minute'"


def timed(merchant_id: int) -> float:
    from partnernet import clock
    from partnernet.extensions import db
    from partnernet.reports import rollup

    runs = []
    for _ in range(5):
        started = time.perf_counter()
        rollup.recompute_money_day(merchant_id, clock.now().date())
        runs.append(time.perf_counter() - started)
        db.session.rollback()
    return statistics.median(runs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--today", type=int, default=2000)
    parser.add_argument("--small", type=int, default=50_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()

    from benchmarks.postback import seed_history
    from benchmarks.redirect import create_database, drop_database

    admin_url = os.environ.get("DATABASE_URL", "")
    if not admin_url.startswith(("postgres://", "postgresql")):
        raise SystemExit("set DATABASE_URL to a PostgreSQL server (the benchmark makes its own database)")
    url = create_database(admin_url)
    try:
        from partnernet import dbsetup
        from partnernet.accounts.services import create_merchant, create_partner
        from partnernet.app import create_app
        from partnernet.extensions import db
        from partnernet.offers.schemas import OfferIn
        from partnernet.offers.services import create_offer

        app = create_app({"DATABASE_URL": url, "REDIS_URL": None, "SECRET_KEY": "x" * 40,
                          "TESTING": True})
        with app.app_context():
            db.create_all()
            dbsetup.install(db.engine)
            shop = create_merchant("Rollup shop", "rollup@shop.example")
            offer = create_offer(shop.merchant.id, OfferIn().load({
                "name": "Bench", "landing_url": "https://shop.example/",
                "plans": [{"event": "sale", "type": "cps", "percent": "10"}]}))
            partners = [create_partner(shop.merchant.id, email=f"p{i}@partner.example",
                                       name=f"P {i}")[0].id for i in range(50)]
            db.session.commit()
            m = shop.merchant.id
            seed_history(m, offer.id, partners, args.today, happened=days_ago("0"))
            seed_history(m, offer.id, partners, args.small, first=10_000_000,
                         happened=days_ago("1 + g % 400"))
            small = timed(m)
            print(f"{args.today:,} sales today, {args.small:,} before: recompute of today "
                  f"{small:.1f} ms", flush=True)
            seed_history(m, offer.id, partners, args.large - args.small, first=20_000_000,
                         happened=days_ago("1 + g % 400"))
            large = timed(m)
            print(f"{args.today:,} sales today, {args.large:,} before: recompute of today "
                  f"{large:.1f} ms", flush=True)
            print(f"large history / small history: {large / small:5.2f}  "
                  f"(1 = the day's rows only; {args.large / args.small:.0f} = the history)")
            db.engine.dispose()
    finally:
        drop_database(admin_url, url)


if __name__ == "__main__":
    main()
