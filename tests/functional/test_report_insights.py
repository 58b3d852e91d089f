"""Attribution comparison, LTV, anomaly alerts and budget pacing through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from partnernet import clock
from tests.factories import auth, make_merchant, make_offer, make_partner
from tests.functional.test_reports import add_click, add_conversion, run_rollup_at

D = datetime(2026, 5, 4, tzinfo=UTC)


def get(client, key, path, **query):
    resp = client.get(f"/api/v1/reports{path}", query_string=query, headers=auth(key))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_credit_shares_of_each_model():
    from partnernet.reports.insights import credit_shares

    touches = [1, 2, 3, 1]
    assert credit_shares(touches, "last_click", 9) == {9: 1}
    assert credit_shares(touches, "first_click", 9) == {1: 1}
    assert credit_shares(touches, "linear", 9) == {1: Fraction(1, 2), 2: Fraction(1, 4),
                                                   3: Fraction(1, 4)}
    assert credit_shares(touches, "position_based", 9) == {1: Fraction(4, 5), 2: Fraction(1, 10),
                                                           3: Fraction(1, 10)}
    assert credit_shares([5, 6], "position_based", 6) == {5: Fraction(1, 2), 6: Fraction(1, 2)}


def test_attribution_comparison_shows_openers_and_closers(client, app):
    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    opener, middle, closer = (make_partner(shop.merchant.id) for _ in range(3))
    add_click(offer, opener.id, D, visitor="v1")
    add_click(offer, middle.id, D + timedelta(hours=1), visitor="v1")
    last = add_click(offer, closer.id, D + timedelta(hours=2), visitor="v1")
    add_conversion(offer, closer.id, D + timedelta(hours=3), click=last, amount=10000,
                   commission=1000)
    # A single-partner journey: not part of the comparison.
    solo = add_click(offer, closer.id, D, visitor="v2")
    add_conversion(offer, closer.id, D + timedelta(hours=1), click=solo, amount=5000)
    body = get(client, shop.api_key, "/attribution", **{"from": "2026-05-04", "to": "2026-05-04"})
    assert body["multi_partner_journeys"] == 1 and body["single_partner_conversions"] == 1
    by_partner = {p["partner_id"]: p for p in body["partners"]}
    o, m, c = by_partner[opener.id], by_partner[middle.id], by_partner[closer.id]
    assert (o["opened"], c["closed"]) == (1, 1)
    assert [o[k]["conversions"] for k in ("last_click", "first_click", "linear",
                                          "position_based")] == ["0.0000", "1.0000", "0.3333",
                                                                 "0.4000"]
    assert m["position_based"] == {"conversions": "0.2000", "revenue": {"USD": "20.00"}}
    assert c["last_click"] == {"conversions": "1.0000", "revenue": {"USD": "100.00"}}
    assert c["linear"]["revenue"] == {"USD": "33.33"}
    # Other merchants' keys see nothing of it; partner keys may not ask.
    other = make_merchant()
    assert get(client, other.api_key, "/attribution",
               **{"from": "2026-05-04", "to": "2026-05-04"})["partners"] == []


def test_ltv_per_partner_with_acceptable_cpa(client, app):
    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    p = make_partner(shop.merchant.id)
    # Customer A: buys 100.00 (commission 10.00), again 50.00 after 10 days, 60.00 after 100.
    add_conversion(offer, p.id, D, amount=10000, commission=1000, customer_id="A")
    add_conversion(offer, p.id, D + timedelta(days=10), amount=5000, customer_id="A")
    add_conversion(offer, p.id, D + timedelta(days=100), amount=6000, customer_id="A")
    # Customer B: one purchase of 40.00 (commission 4.00), refunded 10.00.
    conv, _ = add_conversion(offer, p.id, D + timedelta(days=1), amount=4000, commission=400,
                             customer_id="B")
    from partnernet.extensions import db

    conv.refunded_minor = 1000
    db.session.commit()
    with clock.frozen(D + timedelta(days=400)):
        body = get(client, shop.api_key, "/ltv", group_by="partner", target_ratio="3",
                   **{"from": "2026-05-01", "to": "2026-05-31"})
    [item] = body["items"]
    assert item["partner_id"] == p.id and item["customers"] == 2
    assert item["actual_cpa"] == {"USD": "7.00"}
    w30, w90, w365 = (item["windows"][w] for w in ("30", "90", "365"))
    assert w30["repeat_purchase_rate"] == "50.00"
    assert w30["revenue_per_customer"] == {"USD": "90.00"}  # (100 + 50 + 40 - 10) / 2
    assert w30["acceptable_cpa"] == {"USD": "30.00"}
    assert w90 == w30
    assert w365["revenue_per_customer"] == {"USD": "120.00"}
    assert w365["acceptable_cpa"] == {"USD": "40.00"}


def test_daily_anomaly_job_raises_each_alert_once(client, app):
    from partnernet.reports.insights import detect_anomalies

    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    steady, flooder = make_partner(shop.merchant.id), make_partner(shop.merchant.id)
    for day in range(14):
        at = D - timedelta(days=14 - day)
        for _ in range(10):
            add_click(offer, flooder.id, at)
            add_click(offer, steady.id, at)
    for _ in range(120):
        add_click(offer, flooder.id, D + timedelta(hours=1))
    for _ in range(10):
        add_click(offer, steady.id, D + timedelta(hours=1))
    run_rollup_at(D + timedelta(days=1, hours=1))
    with clock.frozen(D + timedelta(days=1, hours=2)):
        assert app.test_cli_runner().invoke(args=["jobs", "run", "anomalies"]).exit_code == 0
        assert detect_anomalies()["alerts"] == 0  # a second run adds nothing
    alerts = get(client, shop.api_key, "/alerts")["items"]
    # The flooder's 120 clicks also lift the offer (130 against 20 a day).
    assert [(a["subject"], a["subject_id"], a["kind"], a["observed"]) for a in alerts] == [
        ("offer", offer.id, "click_flood", "130"), ("partner", flooder.id, "click_flood", "120")]
    resp = client.post(f"/api/v1/reports/alerts/{alerts[0]['id']}/dismiss",
                       headers=auth(shop.api_key))
    assert resp.status_code == 200 and resp.get_json()["status"] == "dismissed"
    assert [a["id"] for a in get(client, shop.api_key, "/alerts")["items"]] == [alerts[1]["id"]]
    other = make_merchant()
    resp = client.post(f"/api/v1/reports/alerts/{alerts[0]['id']}/dismiss",
                       headers=auth(other.api_key))
    assert resp.status_code == 404


def test_anomaly_rules():
    from partnernet.reports.insights import click_flood, conversion_rate_drop, refund_spike

    assert click_flood(99, 0, 14) is None and click_flood(100, 0, 14)
    assert click_flood(300, 1400, 14) is not None and click_flood(299, 1400, 14) is None
    assert conversion_rate_drop(4, 100, 140, 1400) is not None  # 4% vs 10%
    assert conversion_rate_drop(5, 100, 140, 1400) is None  # exactly half is not a drop
    assert refund_spike(3, 10, 5, 100) is not None and refund_spike(3, 10, 20, 100) is None


def test_budget_pacing(client, app):
    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    p = make_partner(shop.merchant.id)
    key = shop.api_key
    assert client.get(f"/api/v1/reports/budgets/{offer.id}",
                      headers=auth(key)).get_json()["error"]["code"] == "budget_not_found"
    add_conversion(offer, p.id, datetime(2026, 6, 3, tzinfo=UTC), amount=100000, commission=10000)
    add_conversion(offer, p.id, datetime(2026, 6, 5, tzinfo=UTC), amount=100000, commission=5000,
                   commission_status="rejected")
    add_conversion(offer, p.id, datetime(2026, 5, 31, tzinfo=UTC), amount=100000,
                   commission=9999)
    with clock.frozen(datetime(2026, 6, 10, 12, tzinfo=UTC)):
        resp = client.put(f"/api/v1/reports/budgets/{offer.id}", json={"amount": "250.00"},
                          headers=auth(key))
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json() == {
            "offer_id": offer.id, "month": "2026-06", "currency": "USD", "budget": "250.00",
            "spend_to_date": "100.00", "projected_spend": "300.00", "remaining": "150.00",
            "on_track": False, "days_elapsed": 10, "days_in_month": 30}
        resp = client.put(f"/api/v1/reports/budgets/{offer.id}", json={"amount": "400"},
                          headers=auth(key))
        assert resp.get_json()["on_track"] is True
        bad = client.put(f"/api/v1/reports/budgets/{offer.id}",
                         json={"amount": "10", "currency": "EUR"}, headers=auth(key))
        assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "currency_mismatch"
    other = make_merchant()
    assert client.get(f"/api/v1/reports/budgets/{offer.id}",
                      headers=auth(other.api_key)).status_code == 404


@pytest.mark.parametrize("path", ["/attribution", "/ltv", "/alerts"])
def test_partner_keys_cannot_read_merchant_insights(client, app, path):
    from partnernet.accounts.services import issue_api_key
    from partnernet.extensions import db

    shop = make_merchant()
    key = issue_api_key(partner_id=make_partner(shop.merchant.id).id)
    db.session.commit()
    resp = client.get(f"/api/v1/reports{path}", headers=auth(key))
    assert resp.status_code == 403
