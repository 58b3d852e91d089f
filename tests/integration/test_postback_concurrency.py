"""Invariant 2 under real concurrency: one order makes one conversion, however many times and
however concurrently its postback arrives. A real threaded HTTP server, real threads; meant
for PostgreSQL (it also runs on SQLite, which serialises writers)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from partnernet import clock
from tests.factories import make_click_row, make_merchant, make_offer, make_partner

THREADS = 24


@pytest.fixture
def server(app):
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def shop(app):
    clock.freeze(datetime.now(UTC).replace(microsecond=0))
    shop = make_merchant()
    shop.offer = make_offer(shop.merchant.id)
    shop.partner = make_partner(shop.merchant.id)
    shop.click = make_click_row(shop.offer, shop.partner.id, at=clock.now() - timedelta(hours=1))
    return shop


def fire_all(server, queries):
    barrier = threading.Barrier(len(queries))

    def fire(query):
        barrier.wait(timeout=30)
        try:
            with urllib.request.urlopen(f"{server}/postback?{urlencode(query)}", timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    with ThreadPoolExecutor(max_workers=len(queries)) as pool:
        return list(pool.map(fire, queries))


def counts():
    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion, Postback
    from partnernet.extensions import db

    db.session.expire_all()
    return tuple(db.session.scalar(select(func.count()).select_from(m))
                 for m in (Conversion, Commission, Postback))


def test_concurrent_identical_postbacks_make_one_conversion(server, shop):
    query = {"token": shop.postback_token, "click_id": shop.click.id, "order_id": "RACE-1",
             "amount": "49.90"}
    results = fire_all(server, [query] * THREADS)
    assert [status for status, _ in results] == [200] * THREADS, results
    bodies = [body for _, body in results]
    assert sum(1 for b in bodies if b["duplicate"] is False and b["status"] == "accepted") == 1
    assert sum(1 for b in bodies if b["duplicate"] is True and b["status"] == "duplicate") == THREADS - 1
    assert len({b["conversion_id"] for b in bodies}) == 1
    assert counts() == (1, 1, THREADS)  # and every request is in the raw log


def test_concurrent_postbacks_with_two_amounts_one_wins_the_other_conflicts(server, shop):
    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db

    queries = [{"token": shop.postback_token, "click_id": shop.click.id, "order_id": "RACE-2",
                "amount": "10.00" if i % 2 else "20.00"} for i in range(THREADS)]
    results = fire_all(server, queries)
    assert all(status in (200, 409) for status, _ in results), results
    assert counts()[:2] == (1, 1)
    [winner] = db.session.scalars(select(Conversion)).all()
    won = "10.00" if winner.amount_minor == 1000 else "20.00"
    for query, (status, body) in zip(queries, results, strict=True):
        if query["amount"] == won:
            assert status == 200 and body["conversion_id"] == winner.id
        else:
            assert status == 409 and body["error"]["code"] == "order_conflict"
