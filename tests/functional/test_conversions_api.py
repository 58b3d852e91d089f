"""``GET /api/v1/conversions`` and ``GET /api/v1/postbacks``: filters, pages, tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from partnernet import clock
from tests.factories import auth, make_click_row, make_merchant, make_offer, make_partner

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def shop(app, client):
    clock.freeze(NOW)
    shop = make_merchant()
    shop.offer = make_offer(shop.merchant.id)
    shop.alice = make_partner(shop.merchant.id)
    shop.bob = make_partner(shop.merchant.id)
    alice_click = make_click_row(shop.offer, shop.alice.id, at=NOW - timedelta(days=5))
    bob_click = make_click_row(shop.offer, shop.bob.id, at=NOW - timedelta(days=5))
    for day, (order, click) in enumerate([("A-1", alice_click), ("B-1", bob_click),
                                          ("A-2", alice_click)]):
        clock.freeze(NOW + timedelta(days=day))
        r = client.get("/postback", query_string={"token": shop.postback_token, "click_id": click.id,
                                                  "order_id": order, "amount": "10.00"})
        assert r.status_code == 200, r.get_json()
    client.get("/postback", query_string={"token": shop.postback_token, "order_id": "A-1",
                                          "status": "refunded"})
    client.get("/postback", query_string={"token": shop.postback_token, "order_id": "LOST",
                                          "amount": "1.00"})
    return shop


def orders(response):
    assert response.status_code == 200, response.get_json()
    return [item["order_id"] for item in response.get_json()["items"]]


def test_conversions_newest_first_with_commission(client, shop):
    r = client.get("/api/v1/conversions", headers=auth(shop.api_key))
    assert orders(r) == ["A-2", "B-1", "A-1"]
    page = r.get_json()
    assert page["total"] == 3 and page["page"] == 1
    first = page["items"][0]
    assert first["amount"] == "10.00" and first["currency"] == "USD" and first["event"] == "sale"
    assert first["commission"]["amount"] == "1.00" and first["commission"]["status"] == "pending"
    refunded = page["items"][2]
    assert refunded["status"] == "refunded" and refunded["refunded_amount"] == "10.00"
    assert refunded["commission"]["status"] == "reversed"


def test_conversion_filters(client, shop):
    h = auth(shop.api_key)
    assert orders(client.get(f"/api/v1/conversions?partner_id={shop.alice.id}", headers=h)) == ["A-2", "A-1"]
    assert orders(client.get("/api/v1/conversions?status=refunded", headers=h)) == ["A-1"]
    assert orders(client.get("/api/v1/conversions?from=2026-03-11", headers=h)) == ["A-2", "B-1"]
    assert orders(client.get("/api/v1/conversions?to=2026-03-11", headers=h)) == ["B-1", "A-1"]
    assert orders(client.get("/api/v1/conversions?from=2026-03-11T00:00:00Z&to=2026-03-11T23:00:00Z",
                             headers=h)) == ["B-1"]
    assert orders(client.get("/api/v1/conversions?per_page=1&page=2", headers=h)) == ["B-1"]
    for bad in ("status=paid", "from=yesterday", "from=2026-03-12&to=2026-03-11", "partner_id=x"):
        r = client.get(f"/api/v1/conversions?{bad}", headers=h)
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "validation_error", bad


def test_postback_log_search_by_order_id(client, shop):
    h = auth(shop.api_key)
    r = client.get("/api/v1/postbacks?order_id=A-1", headers=h)
    assert r.status_code == 200
    items = r.get_json()["items"]
    assert [i["outcome"] for i in items] == ["refunded", "accepted"]
    assert all("token" not in i["params"] for i in items)
    lost = client.get("/api/v1/postbacks?order_id=LOST", headers=h).get_json()["items"]
    assert lost[0]["outcome"] == "unattributed" and lost[0]["http_status"] == 422
    assert lost[0]["message"]
    assert client.get("/api/v1/postbacks?outcome=accepted", headers=h).get_json()["total"] == 3
    assert client.get("/api/v1/postbacks", headers=h).get_json()["total"] == 5


def test_another_merchant_sees_nothing(client, shop):
    other = make_merchant()
    h = auth(other.api_key)
    assert client.get("/api/v1/conversions", headers=h).get_json()["total"] == 0
    assert client.get(f"/api/v1/conversions?partner_id={shop.alice.id}", headers=h).get_json()["total"] == 0
    assert client.get("/api/v1/postbacks?order_id=A-1", headers=h).get_json()["total"] == 0


def test_a_partner_key_may_not_list_merchant_conversions(client, shop):
    from partnernet.accounts.services import issue_api_key
    from partnernet.extensions import db

    key = issue_api_key(partner_id=shop.alice.id)
    db.session.commit()
    r = client.get("/api/v1/conversions", headers=auth(key))
    assert r.status_code == 403
    assert client.get("/api/v1/conversions").status_code == 401


def test_openapi_lists_the_new_paths(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"/api/v1/conversions", "/api/v1/postbacks", "/api/v1/partner-postbacks",
            "/api/v1/partner-postbacks/test"} <= set(paths)
