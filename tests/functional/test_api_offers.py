"""The merchant REST API: offers with plans, partners, overrides; auth, errors, tenancy."""

import pytest

from tests.factories import auth, make_merchant, make_partner, offer_body


@pytest.fixture
def shop(app):
    return make_merchant(name="Shop A")


@pytest.fixture
def other_shop(app):
    return make_merchant(name="Shop B", currency="EUR")


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer pn_wrong", "Basic abc", "pn_x"])
def test_missing_or_wrong_key_is_401(client, shop, header):
    headers = {"Authorization": header} if header is not None else {}
    assert_error(client.get("/api/v1/offers", headers=headers), 401, "invalid_api_key")


def test_revoked_key_is_401(client, shop):
    from sqlalchemy import select

    from partnernet.accounts.models import ApiKey
    from partnernet.accounts.services import revoke_api_key
    from partnernet.extensions import db

    key = db.session.scalar(select(ApiKey).where(ApiKey.merchant_id == shop.merchant.id))
    assert client.get("/api/v1/offers", headers=auth(shop.api_key)).status_code == 200
    revoke_api_key(shop.merchant.id, key.id)
    assert_error(client.get("/api/v1/offers", headers=auth(shop.api_key)), 401)


def test_create_and_read_offer_with_tiers(client, shop):
    body = offer_body(plans=[
        {"event": "sale", "type": "cps", "percent": "10",
         "tiers": [{"min_conversions": 50, "percent": "12.5"}]},
        {"event": "lead", "type": "cpl", "amount": "2.50"},
    ], hold_days=14)
    created = client.post("/api/v1/offers", json=body, headers=auth(shop.api_key))
    assert created.status_code == 201, created.get_json()
    offer = created.get_json()
    assert offer["currency"] == "USD" and offer["hold_days"] == 14
    assert offer["attribution_window_days"] == 30 and offer["attribution_model"] == "last_click"
    sale, lead = offer["plans"]
    assert sale == {"event": "sale", "type": "cps", "percent": "10", "amount": None,
                    "tiers": [{"min_conversions": 50, "percent": "12.5", "amount": None}]}
    assert lead["amount"] == "2.50" and lead["percent"] is None
    fetched = client.get(f"/api/v1/offers/{offer['id']}", headers=auth(shop.api_key)).get_json()
    assert fetched == offer


def test_amounts_in_jpy_and_kwd(client, app):
    jpy = make_merchant(currency="JPY")
    r = client.post("/api/v1/offers", headers=auth(jpy.api_key),
                    json=offer_body(plans=[{"event": "sale", "type": "cpa", "amount": "500"}]))
    assert r.status_code == 201 and r.get_json()["plans"][0]["amount"] == "500"
    r = client.post("/api/v1/offers", headers=auth(jpy.api_key),
                    json=offer_body(plans=[{"event": "sale", "type": "cpa", "amount": "500.5"}]))
    assert_error(r, 400, "invalid_amount")
    r = client.post("/api/v1/offers", headers=auth(jpy.api_key),
                    json=offer_body(currency="KWD",
                                    plans=[{"event": "sale", "type": "cpa", "amount": "1.250"}]))
    assert r.status_code == 201 and r.get_json()["plans"][0]["amount"] == "1.250"


@pytest.mark.parametrize(("change", "field"), [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"landing_url": "javascript:alert(1)"}, "landing_url"),
    ({"landing_url": "ftp://shop.example/"}, "landing_url"),
    ({"landing_url": "/relative"}, "landing_url"),
    ({"plans": [{"event": "sale", "type": "cps", "percent": "-5"}]}, None),
    ({"plans": [{"event": "sale", "type": "cps", "percent": "101"}]}, None),
    ({"plans": [{"event": "sale", "type": "cpx", "amount": "1.00"}]}, "plans"),
    ({"plans": [{"event": "sale", "type": "cpa", "amount": "1.001"}]}, None),
    ({"plans": [{"event": "sale", "type": "cpa", "amount": 1.5}]}, None),
    ({"plans": [{"event": "sale", "type": "cps", "amount": "1.00"}]}, "plans"),
    ({"plans": []}, "plans"),
    ({"plans": [{"event": "Sale!", "type": "cps", "percent": "5"}]}, "plans"),
    ({"currency": "ABC"}, "currency"),
    ({"attribution_model": "linear"}, "attribution_model"),
    ({"hold_days": -1}, "hold_days"),
])
def test_bad_offer_bodies_are_400_with_the_error_shape(client, shop, change, field):
    error = assert_error(client.post("/api/v1/offers", json=offer_body(**change),
                                     headers=auth(shop.api_key)), 400)
    if field:
        assert field in error["details"]["fields"], error


def test_non_json_and_wrong_method(client, shop):
    r = client.post("/api/v1/offers", data="not json", headers={**auth(shop.api_key),
                                                                 "Content-Type": "application/json"})
    assert_error(r, 400)
    assert_error(client.delete("/api/v1/offers", headers=auth(shop.api_key)), 405,
                 "method_not_allowed")
    assert_error(client.get("/api/v1/nothing-here", headers=auth(shop.api_key)), 404, "not_found")


def test_other_merchants_offer_is_404_for_read_and_write(client, shop, other_shop):
    mine = client.post("/api/v1/offers", json=offer_body(), headers=auth(shop.api_key)).get_json()
    for method, kwargs in [("get", {}), ("patch", {"json": {"name": "stolen"}}),
                           ("post", {"json": {"partner_id": 1, "event": "sale", "percent": "50"}})]:
        path = f"/api/v1/offers/{mine['id']}" + ("/overrides" if method == "post" else "")
        r = getattr(client, method)(path, headers=auth(other_shop.api_key), **kwargs)
        assert_error(r, 404)
    still = client.get(f"/api/v1/offers/{mine['id']}", headers=auth(shop.api_key)).get_json()
    assert still["name"] == mine["name"]
    listed = client.get("/api/v1/offers", headers=auth(other_shop.api_key)).get_json()
    assert listed["total"] == 0


def test_patch_offer_and_replace_plans(client, shop):
    offer = client.post("/api/v1/offers", json=offer_body(), headers=auth(shop.api_key)).get_json()
    r = client.patch(f"/api/v1/offers/{offer['id']}", headers=auth(shop.api_key),
                     json={"status": "paused", "plans": [{"event": "sale", "type": "cpa",
                                                          "amount": "7.00"}]})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "paused"
    assert r.get_json()["plans"] == [{"event": "sale", "type": "cpa", "percent": None,
                                      "amount": "7.00", "tiers": []}]
    assert_error(client.patch(f"/api/v1/offers/{offer['id']}", headers=auth(shop.api_key),
                              json={"currency": "EUR"}), 422, "currency_locked")


def test_pagination_newest_first(client, shop):
    for i in range(5):
        client.post("/api/v1/offers", json=offer_body(name=f"Offer {i}"),
                    headers=auth(shop.api_key))
    page = client.get("/api/v1/offers?page=2&per_page=2", headers=auth(shop.api_key)).get_json()
    assert page["total"] == 5 and page["page"] == 2 and page["per_page"] == 2
    assert [o["name"] for o in page["items"]] == ["Offer 2", "Offer 1"]
    assert_error(client.get("/api/v1/offers?per_page=0", headers=auth(shop.api_key)), 400)
    assert_error(client.get("/api/v1/offers?page=x", headers=auth(shop.api_key)), 400)


def test_partners_create_list_patch_and_isolation(client, shop, other_shop):
    r = client.post("/api/v1/partners", headers=auth(shop.api_key),
                    json={"email": "Creator@Example.com", "name": "Creator"})
    assert r.status_code == 201, r.get_json()
    partner = r.get_json()
    assert partner["email"] == "creator@example.com" and partner["status"] == "approved"
    assert_error(client.post("/api/v1/partners", headers=auth(shop.api_key),
                             json={"email": "creator@example.com", "name": "Again"}), 409)
    assert_error(client.post("/api/v1/partners", headers=auth(shop.api_key),
                             json={"email": "not-an-email", "name": "X"}), 400)
    r = client.patch(f"/api/v1/partners/{partner['id']}", headers=auth(shop.api_key),
                     json={"status": "banned", "postback_url": "https://tracker.example/pb?c={click_id}"})
    assert r.status_code == 200 and r.get_json()["status"] == "banned"
    assert_error(client.patch(f"/api/v1/partners/{partner['id']}", headers=auth(shop.api_key),
                              json={"postback_url": "javascript:alert(1)"}), 400)
    # another merchant does not see this partner at all
    assert_error(client.get(f"/api/v1/partners/{partner['id']}",
                            headers=auth(other_shop.api_key)), 404)
    assert_error(client.patch(f"/api/v1/partners/{partner['id']}",
                              headers=auth(other_shop.api_key), json={"status": "approved"}), 404)
    assert client.get("/api/v1/partners", headers=auth(other_shop.api_key)).get_json()["total"] == 0
    listed = client.get("/api/v1/partners?status=banned", headers=auth(shop.api_key)).get_json()
    assert [p["id"] for p in listed["items"]] == [partner["id"]]


def test_same_partner_joins_a_second_program(client, shop, other_shop):
    a = client.post("/api/v1/partners", headers=auth(shop.api_key),
                    json={"email": "multi@example.com", "name": "Multi"}).get_json()
    b = client.post("/api/v1/partners", headers=auth(other_shop.api_key),
                    json={"email": "multi@example.com", "name": "Multi"})
    assert b.status_code == 201 and b.get_json()["id"] == a["id"]


def test_overrides(client, shop, other_shop):
    offer = client.post("/api/v1/offers", json=offer_body(), headers=auth(shop.api_key)).get_json()
    partner = make_partner(shop.merchant.id)
    stranger = make_partner(other_shop.merchant.id)
    url = f"/api/v1/offers/{offer['id']}/overrides"
    r = client.post(url, headers=auth(shop.api_key),
                    json={"partner_id": partner.id, "event": "sale", "percent": "15"})
    assert r.status_code == 201 and r.get_json()["percent"] == "15"
    assert_error(client.post(url, headers=auth(shop.api_key),
                             json={"partner_id": stranger.id, "event": "sale", "percent": "15"}), 404)
    assert_error(client.post(url, headers=auth(shop.api_key),
                             json={"partner_id": partner.id, "event": "lead", "amount": "1.00"}),
                 422, "unknown_event")
    assert_error(client.post(url, headers=auth(shop.api_key),
                             json={"partner_id": partner.id, "event": "sale", "amount": "1.00"}), 400)


def test_mass_assignment_is_ignored_or_refused(client, shop, other_shop):
    r = client.post("/api/v1/offers", headers=auth(shop.api_key),
                    json=offer_body(merchant_id=other_shop.merchant.id))
    assert_error(r, 400)  # unknown fields are refused, never applied


def test_openapi_document(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/offers" in doc["paths"] and "/api/v1/partners/{partner_id}" in doc["paths"]
