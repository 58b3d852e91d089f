"""The ``/postback`` fast path (PostgreSQL with Redis): it answers the common case before
Flask, with the same answers, the same rate limit and money terms that are never stale.

The tests of terms changing between two postbacks run on every database (on SQLite the view
answers them all); those about the fast path itself need PostgreSQL and Redis.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from partnernet import clock
from tests.conftest import base_config
from tests.factories import auth, make_click_row, make_merchant, make_offer, make_partner

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def shop(app):
    clock.freeze(NOW)
    shop = make_merchant(name="Fast shop")
    shop.offer = make_offer(shop.merchant.id, plans=[
        {"event": "sale", "type": "cps", "percent": "10"},
        {"event": "lead", "type": "cpl", "amount": "2.50"}])
    shop.partner = make_partner(shop.merchant.id)
    clicks = [make_click_row(shop.offer, shop.partner.id, at=NOW - timedelta(days=2))
              for _ in range(4)]
    # Plain values, read now: a lazy load later would leave this session's transaction open
    # while another app's teardown empties the tables.
    shop.click_ids = [c.id for c in clicks]
    shop.offer_id, shop.partner_id, shop.merchant_id = shop.offer.id, shop.partner.id, shop.merchant.id
    from partnernet.extensions import db

    db.session.commit()
    return shop


@pytest.fixture
def fast(app, pg_url, redis_url):
    if not (pg_url and redis_url):
        pytest.skip("the postback fast path runs on PostgreSQL with Redis")
    return app


def sale(shop, order_id, click=0, **extra):
    return {"token": shop.postback_token, "click_id": shop.click_ids[click], "order_id": order_id,
            "amount": "49.90", **extra}


def outcomes():
    from partnernet.conversions.models import Postback
    from partnernet.extensions import db

    db.session.expire_all()
    return [p.outcome for p in db.session.scalars(select(Postback).order_by(Postback.id))]


def view_must_not_run(monkeypatch):
    from partnernet.conversions import services

    def refuse(*_args, **_kwargs):
        raise AssertionError("the view answered a postback the fast path should have")

    monkeypatch.setattr(services, "receive_postback", refuse)


# -- the fast path itself -------------------------------------------------------------------

def test_new_and_duplicate_sales_are_answered_before_flask(fast, shop, monkeypatch):
    client = fast.test_client()
    view_must_not_run(monkeypatch)
    first = client.get("/postback", query_string=sale(shop, "F-1"))
    assert first.status_code == 200, first.get_data(as_text=True)
    body = first.get_json()
    assert body["status"] == "accepted" and body["commission"]["amount"] == "4.99"
    again = client.get("/postback", query_string=sale(shop, "F-1")).get_json()
    assert again["status"] == "duplicate" and again["conversion_id"] == body["conversion_id"]
    assert again["commission"] == body["commission"]
    lead = client.get("/postback", query_string=sale(shop, None, click=1, event="lead", amount=None))
    assert lead.status_code == 200 and lead.get_json()["commission"]["amount"] == "2.50"
    assert outcomes() == ["accepted", "duplicate", "accepted"]
    assert first.headers["X-Frame-Options"] == "DENY"
    assert first.headers["Content-Type"] == "application/json"


def test_the_fast_path_answers_exactly_what_the_view_answers(fast, shop, app_factory):
    """Same request, same state: the fast path's answer equals the view's except the ids (the
    view is reached with the fast path switched off)."""
    view_only = app_factory(fast.config["REDIS_URL"], POSTBACK_FAST_PATH=False)
    answers = {}
    for name, app, order, click in (("fast", fast, "EQ-1", 0), ("view", view_only, "EQ-2", 1)):
        client = app.test_client()
        params = sale(shop, order, click=click, customer_email="Jo@Example.com", customer_id="c-1")
        new = client.get("/postback", query_string=params)
        dup = client.get("/postback", query_string=params)
        answers[name] = (new.status_code, new.get_json(), dup.status_code, dup.get_json(),
                         sorted(k for k in new.headers.keys() if k != "Content-Length"))
    fast_answer, view_answer = answers["fast"], answers["view"]

    def without_ids(body):
        body = {k: v for k, v in body.items() if k not in ("conversion_id", "postback_id")}
        body["commission"] = {k: v for k, v in body["commission"].items()
                              if k not in ("id", "conversion_id")}
        return body

    assert fast_answer[0] == view_answer[0] == 200 and fast_answer[2] == view_answer[2] == 200
    assert without_ids(fast_answer[1]) == without_ids(view_answer[1])
    assert without_ids(fast_answer[3]) == without_ids(view_answer[3])
    assert fast_answer[4] == view_answer[4]


def test_what_the_fast_path_does_not_answer_reaches_the_view_and_is_logged_once(fast, shop):
    client = fast.test_client()
    clock.freeze(NOW + timedelta(days=40))  # the clicks are 42 days old: outside the window
    r = client.get("/postback", query_string=sale(shop, "OLD-1"))
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "click_expired"
    clock.freeze(NOW)
    r = client.get("/postback", query_string=sale(shop, "C-1", currency="EUR"))
    assert r.get_json()["error"]["code"] == "currency_mismatch"
    client.get("/postback", query_string=sale(shop, "C-2"))
    r = client.get("/postback", query_string=sale(shop, "C-2", amount="50.00"))
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "order_conflict"
    assert r.get_json()["error"]["details"]["postback_id"]
    # one raw log row per request, completed with the view's outcome
    assert outcomes() == ["click_expired", "currency_mismatch", "accepted", "order_conflict"]


def test_rate_limit_is_the_views_bucket_and_a_handed_over_request_counts_once(app_factory, fast, shop):
    limited = app_factory(fast.config["REDIS_URL"], RATELIMIT_ENABLED=True,
                          POSTBACK_RATE_LIMIT="3 per minute")
    with limited.app_context():
        c = limited.test_client()
        assert c.get("/postback", query_string=sale(shop, "R-1")).status_code == 200  # fast path
        # an unknown click: counted by the fast path, then answered by the view (not counted again)
        r = c.get("/postback", query_string={**sale(shop, "R-2"), "click_id": "f" * 32})
        assert r.status_code == 422
        # a refund: the view counts it
        assert c.get("/postback", query_string=sale(shop, "R-1", status="refunded")).status_code == 200
        r = c.get("/postback", query_string=sale(shop, "R-3"))
        assert r.status_code == 429, r.get_json()
        assert r.get_json()["error"]["code"] == "rate_limited" and r.headers.get("Retry-After")
    from partnernet.conversions.models import Postback
    from partnernet.extensions import db

    logged = db.session.scalars(select(Postback.order_id).where(Postback.order_id == "R-3")).all()
    db.session.rollback()  # no transaction left open for the other app's teardown
    assert logged == []  # the refused request was not logged (the limit comes first)


def test_the_outlier_rule_reads_the_median_of_an_even_sample_exactly(fast, shop, monkeypatch):
    """The read returns the trailing sample's count and median, not its amounts: with six
    earlier sales of 10.00 and 11.00 the median is 10.50, so ten times it (105.00) passes and
    one cent more is held (a median rounded to 10 or 11 would decide both differently), as
    the engine decides from the amounts themselves."""
    client = fast.test_client()
    view_must_not_run(monkeypatch)
    for i, amount in enumerate(["10.00", "11.00"] * 3):
        r = client.get("/postback", query_string=sale(shop, f"M-{i}", click=i % 4, amount=amount))
        assert r.get_json()["commission"]["flags"] == [], r.get_json()
    at_limit = client.get("/postback", query_string=sale(shop, "M-at", amount="105.00")).get_json()
    assert at_limit["commission"]["status"] == "pending" and at_limit["commission"]["flags"] == []
    # that sale is in the sample now: one more 10.00 brings the median back to 10.50
    assert client.get("/postback", query_string=sale(shop, "M-7", amount="10.00")).get_json()[
        "commission"]["flags"] == []
    over = client.get("/postback", query_string=sale(shop, "M-over", click=1, amount="105.01")).get_json()
    assert over["commission"]["status"] == "held"
    assert [f["rule"] for f in over["commission"]["flags"]] == ["amount_outlier"]


# -- money terms are never stale ---------------------------------------------------------

def test_a_plan_change_changes_the_commission_of_the_very_next_postback(client, shop):
    r = client.get("/postback", query_string=sale(shop, "P-1"))
    assert r.get_json()["commission"]["amount"] == "4.99"
    changed = client.patch(f"/api/v1/offers/{shop.offer_id}", headers=auth(shop.api_key), json={
        "plans": [{"event": "sale", "type": "cps", "percent": "20",
                   "tiers": [{"min_conversions": 3, "percent": "30"}]}]})
    assert changed.status_code == 200, changed.get_json()
    r = client.get("/postback", query_string=sale(shop, "P-2", click=1))
    assert r.get_json()["commission"]["amount"] == "9.98"
    # the partner's third sale this month reaches the tier
    r = client.get("/postback", query_string=sale(shop, "P-3", click=2))
    assert r.get_json()["commission"]["amount"] == "14.97"


def test_a_daily_cap_set_on_an_offer_holds_the_very_next_postback_over_it(client, shop):
    # No offer of the merchant had a cap: the fast path's read left the count out until then.
    first = client.get("/postback", query_string=sale(shop, "C-1")).get_json()
    assert first["commission"]["status"] == "pending" and first["commission"]["flags"] == []
    r = client.patch(f"/api/v1/offers/{shop.offer_id}", headers=auth(shop.api_key),
                     json={"daily_cap": 1})
    assert r.status_code == 200, r.get_json()
    answer = client.get("/postback", query_string=sale(shop, "C-2", click=1)).get_json()
    assert answer["commission"]["status"] == "held"
    assert [f["rule"] for f in answer["commission"]["flags"]] == ["cap_exceeded"]


def test_an_override_and_fraud_settings_apply_to_the_very_next_postback(client, shop):
    assert client.get("/postback", query_string=sale(shop, "O-1")).get_json()["commission"][
        "amount"] == "4.99"
    r = client.post(f"/api/v1/offers/{shop.offer_id}/overrides", headers=auth(shop.api_key),
                    json={"partner_id": shop.partner_id, "event": "sale", "percent": "15"})
    assert r.status_code in (200, 201), r.get_json()
    answer = client.get("/postback", query_string=sale(shop, "O-2", click=1)).get_json()
    assert answer["commission"]["amount"] == "7.49" and answer["commission"]["status"] == "pending"
    # the merchant now holds conversions within 3 days of their click (these are 2 days old)
    r = client.patch("/api/v1/fraud-rules", headers=auth(shop.api_key),
                     json={"rules": {"fast_conversion": {"threshold": 3 * 24 * 3600}}})
    assert r.status_code == 200, r.get_json()
    answer = client.get("/postback", query_string=sale(shop, "O-3", click=2)).get_json()
    assert answer["commission"]["status"] == "held"
    assert [f["rule"] for f in answer["commission"]["flags"]] == ["fast_conversion"]


def test_a_change_made_in_another_process_reaches_this_ones_cache(fast, shop, database_url):
    """Two app instances sharing PostgreSQL and Redis, as two gunicorn workers do: the one
    that committed the change is not the one that answers next."""
    from partnernet.app import create_app
    from partnernet.extensions import db
    from partnernet.offers.models import CommissionPlan

    other = create_app(base_config(database_url, REDIS_URL=fast.config["REDIS_URL"],
                                   REDIS_KEY_PREFIX=fast.config["REDIS_KEY_PREFIX"]))
    try:
        other_client = other.test_client()
        r = other_client.get("/postback", query_string=sale(shop, "X-1"))
        assert r.get_json()["commission"]["amount"] == "4.99"  # the other worker cached 10 %
        plan = db.session.scalar(select(CommissionPlan).where(
            CommissionPlan.offer_id == shop.offer_id, CommissionPlan.event == "sale"))
        from decimal import Decimal

        plan.percent = Decimal("12.5")
        db.session.commit()  # in this worker
        r = other_client.get("/postback", query_string=sale(shop, "X-2", click=1))
        assert r.get_json()["commission"]["amount"] == "6.24"
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def test_a_lost_config_version_is_never_mistaken_for_an_old_one(fast, shop):
    """Redis forgot the version key (restart without persistence): the next postback starts a
    new random version, so terms cached under the old one are not used."""
    from partnernet.conversions import terms_cache
    from partnernet.links import buffer

    client = fast.test_client()
    assert client.get("/postback", query_string=sale(shop, "V-1")).get_json()["commission"][
        "amount"] == "4.99"
    key = terms_cache.version_key(fast, shop.merchant_id)
    redis = buffer.click_redis(fast)
    before = redis.get(key)
    redis.delete(key)
    from partnernet.extensions import db
    from partnernet.offers.models import CommissionPlan

    # a change whose version bump Redis never saw (written with Core: no session events)
    db.session.execute(CommissionPlan.__table__.update().where(
        CommissionPlan.__table__.c.offer_id == shop.offer_id).values(percent=30))
    db.session.commit()
    r = client.get("/postback", query_string=sale(shop, "V-2", click=1))
    assert r.get_json()["commission"]["amount"] == "14.97"
    assert redis.get(key) not in (None, before)


def test_a_failure_after_the_conversion_is_recorded_is_a_500_and_the_retry_a_duplicate(
        fast, shop, monkeypatch):
    """Handing over then would make the view call the request's own conversion a duplicate."""
    from partnernet.commissions import services as commissions

    real_view = commissions.commission_view
    calls = []

    def failing_once(commission):
        calls.append(commission)
        if len(calls) == 1:
            raise RuntimeError("rendering failed")
        return real_view(commission)

    monkeypatch.setattr(commissions, "commission_view", failing_once)
    client = fast.test_client()
    r = client.get("/postback", query_string=sale(shop, "W-1"))
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "internal_error"
    retry = client.get("/postback", query_string=sale(shop, "W-1"))
    assert retry.status_code == 200 and retry.get_json()["status"] == "duplicate"
    assert outcomes() == ["accepted", "duplicate"]


# -- clicks are read from their day's partition alone ------------------------------------------

def _partition(day):
    from sqlalchemy import text

    from partnernet.extensions import db
    from partnernet.links import partitions

    with db.engine.begin() as conn:
        conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
        partitions.create_day_partition(conn, day)
    return partitions.partition_name(day)


def _drop(*names):
    from sqlalchemy import text

    from partnernet.extensions import db

    with db.engine.begin() as conn:
        for name in names:
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))


def test_postbacks_do_not_wait_behind_maintenance_of_other_days_partitions(
        fast, shop, monkeypatch, database_url):
    """Retention dropping an old day's partition holds an exclusive lock on it. A postback's
    click is read from its own day's partition (a generic plan on the partitioned table would
    lock every partition, and wait here), and the fast path answers it meanwhile."""
    import threading

    import psycopg
    from sqlalchemy.engine import make_url

    clicked = _partition((NOW - timedelta(days=2)).date())  # moves the shop's clicks there
    old = _partition((NOW - timedelta(days=300)).date())
    view_must_not_run(monkeypatch)
    client = fast.test_client()
    answers = []
    maintenance = psycopg.connect(make_url(database_url).set(drivername="postgresql")
                                  .render_as_string(hide_password=False))
    try:
        maintenance.execute(f'LOCK TABLE "{old}" IN ACCESS EXCLUSIVE MODE')  # held: no commit
        worker = threading.Thread(target=lambda: answers.append(
            client.get("/postback", query_string=sale(shop, "P-1"))))
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "the postback waited for a lock on another day's partition"
    finally:
        maintenance.rollback()
        maintenance.close()
        worker.join(timeout=20)
    assert answers[0].status_code == 200 and answers[0].get_json()["status"] == "accepted"
    _drop(clicked, old)


def test_a_click_whose_partition_was_dropped_is_answered_by_the_view(fast, shop):
    """The fast path knows the partitions by name; one dropped since (retention, its clicks
    with it) is not an error: the view answers the postback, logged once."""
    gone = make_click_row(shop.offer, shop.partner_id, at=NOW - timedelta(days=5))
    gone_id = gone.id
    from partnernet.extensions import db

    db.session.commit()
    name = _partition((NOW - timedelta(days=5)).date())
    client = fast.test_client()
    assert client.get("/postback", query_string=sale(shop, "D-1")).status_code == 200  # names loaded
    _drop(name)
    r = client.get("/postback", query_string={**sale(shop, "D-2"), "click_id": gone_id})
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "unattributed"
    # the fast path reads the names again: the next postback is its own again
    assert client.get("/postback", query_string=sale(shop, "D-3", click=1)).get_json()[
        "status"] == "accepted"
    assert outcomes() == ["accepted", "unattributed", "accepted"]
