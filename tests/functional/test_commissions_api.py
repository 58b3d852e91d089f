"""/api/v1/commissions (list, approve, reject), partner balances, fraud rules and the shadow report."""

from datetime import timedelta

import pytest

from partnernet import clock
from tests.commission_helpers import NOW, Shop, assert_ledger_ok, commission, entries


@pytest.fixture
def shop(client):
    clock.freeze(NOW)
    return Shop(client)


@pytest.fixture
def other(client, shop):
    return Shop(client)


def error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == code, body
    return body


def test_list_answers_the_contract_shape_newest_first_with_filters(shop, other, client):
    clean = shop.sale()
    held = shop.sale(click=shop.click(is_bot=True))
    other.sale()
    r = client.get("/api/v1/commissions", headers=shop.auth())
    assert r.status_code == 200
    page = r.get_json()
    assert page["total"] == 2 and [c["id"] for c in page["items"]] == [held["id"], clean["id"]]
    item = page["items"][0]
    assert {"id", "conversion_id", "partner_id", "amount", "currency", "status", "hold_until",
            "flags"} <= set(item)
    assert item["flags"][0]["rule"] == "bot_click" and item["flags"][0]["reason"]
    held_only = client.get("/api/v1/commissions?status=held", headers=shop.auth()).get_json()
    assert [c["id"] for c in held_only["items"]] == [held["id"]]
    by_rule = client.get("/api/v1/commissions?rule=bot_click", headers=shop.auth()).get_json()
    assert [c["id"] for c in by_rule["items"]] == [held["id"]]
    by_partner = client.get(f"/api/v1/commissions?partner_id={other.partner.id}",
                            headers=shop.auth()).get_json()
    assert by_partner["total"] == 0
    error(client.get("/api/v1/commissions?status=lost", headers=shop.auth()), 400, "validation_error")


def test_approve_a_held_commission_with_a_reason_credits_the_ledger(shop, client):
    held = shop.sale(click=shop.click(is_bot=True))
    clock.freeze(NOW + timedelta(minutes=5))
    r = client.post(f"/api/v1/commissions/{held['id']}/approve", headers=shop.auth(),
                    json={"reason": "checked the order by phone"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "approved"
    assert body["review"] == {"via": "api", "reviewer_id": None, "reason": "checked the order by phone",
                              "at": (NOW + timedelta(minutes=5)).isoformat()}
    assert entries(held["id"]) == [("commission", 499)]
    # approving twice is refused, the ledger unchanged
    error(client.post(f"/api/v1/commissions/{held['id']}/approve", headers=shop.auth(), json={}),
          409, "invalid_transition")
    error(client.post(f"/api/v1/commissions/{held['id']}/reject", headers=shop.auth(), json={}),
          409, "invalid_transition")
    assert entries(held["id"]) == [("commission", 499)]
    assert_ledger_ok()


def test_reject_records_the_reason_and_writes_nothing(shop, client):
    c = shop.sale()
    r = client.post(f"/api/v1/commissions/{c['id']}/reject", headers=shop.auth(),
                    json={"reason": "fake order"})
    assert r.status_code == 200 and r.get_json()["status"] == "rejected"
    row = commission(c["id"])
    assert (row.review_reason, row.reviewed_via, row.reviewer_id) == ("fake order", "api", None)
    assert entries(c["id"]) == []


def test_another_merchants_commission_is_404_and_untouched(shop, other, client):
    c = other.sale(click=other.click(is_bot=True))
    for path in (f"/api/v1/commissions/{c['id']}", f"/api/v1/commissions/{c['id']}/approve",
                 f"/api/v1/commissions/{c['id']}/reject"):
        method = client.get if path.endswith(str(c["id"])) else client.post
        error(method(path, headers=shop.auth(), json={}), 404, "commission_not_found")
    assert commission(c["id"]).status == "held"
    error(client.post("/api/v1/commissions/999999/approve", headers=shop.auth(), json={}),
          404, "commission_not_found")


def test_balance_is_available_pending_held_per_currency(shop, other, client):
    first = shop.sale("100.00")                            # 10.00 pending
    shop.sale("50.00", click=shop.click(is_bot=True))       # 5.00 held
    shop.refund("O-1", "20.00")                             # 2.00 of the pending reversed
    r = client.get(f"/api/v1/partners/{shop.partner.id}/balance", headers=shop.auth())
    assert r.status_code == 200
    assert r.get_json() == {"USD": {"available": "0.00", "pending": "8.00", "held": "5.00"}}
    clock.freeze(NOW + timedelta(days=31))
    client.post(f"/api/v1/commissions/{first['id']}/approve", headers=shop.auth(), json={})
    assert client.get(f"/api/v1/partners/{shop.partner.id}/balance", headers=shop.auth()).get_json() \
        == {"USD": {"available": "8.00", "pending": "0.00", "held": "5.00"}}
    error(client.get(f"/api/v1/partners/{other.partner.id}/balance", headers=shop.auth()),
          404, "partner_not_found")


def test_fraud_rules_get_patch_and_validation(shop, other, client):
    r = client.get("/api/v1/fraud-rules", headers=shop.auth())
    assert r.status_code == 200
    rules = r.get_json()["rules"]
    assert rules["fast_conversion"] == {"enabled": True, "mode": "active", "action": "hold",
                                        "threshold": 10,
                                        "threshold_means": "seconds between click and conversion"}
    assert rules["blocked_ip"]["action"] == "reject" and rules["duplicate_ip"]["threshold"] == 3
    r = client.patch("/api/v1/fraud-rules", headers=shop.auth(), json={
        "rules": {"duplicate_ip": {"threshold": 5, "mode": "shadow"}},
        "trusted_partner": {"enabled": True, "hold_days": 3},
        "ip_blocklist": ["203.0.113.7", "10.0.0.0/8"]})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["rules"]["duplicate_ip"]["threshold"] == 5
    assert body["rules"]["duplicate_ip"]["mode"] == "shadow"
    assert body["rules"]["fast_conversion"]["threshold"] == 10        # untouched
    assert body["trusted_partner"] == {"enabled": True, "min_clean_payouts": 3, "hold_days": 3}
    assert body["ip_blocklist"] == ["203.0.113.7/32", "10.0.0.0/8"]
    assert client.get("/api/v1/fraud-rules", headers=other.auth()).get_json()["rules"][
        "duplicate_ip"]["threshold"] == 3                                # per merchant
    for bad in ({"rules": {"duplicate_ip": {"threshold": -2}}}, {"rules": {"bot_click": {"threshold": 2}}},
                {"rules": {"bot_click": {"action": "shout"}}}, {"ip_blocklist": ["not-an-ip"]},
                {"trusted_partner": {"hold_days": "x"}}):
        assert client.patch("/api/v1/fraud-rules", headers=shop.auth(), json=bad).status_code == 400, bad
    error(client.patch("/api/v1/fraud-rules", headers=shop.auth(), json={"rules": {"nope": {}}}),
          400, "validation_error")
    assert client.get("/api/v1/fraud-rules").status_code == 401


def test_shadow_report_counts_what_each_rule_would_have_held_in_the_last_30_days(shop, client):
    client.patch("/api/v1/fraud-rules", headers=shop.auth(),
                 json={"rules": {"bot_click": {"mode": "shadow"}, "fast_conversion": {"mode": "shadow",
                                                                                      "action": "reject"}}})
    clock.freeze(NOW - timedelta(days=40))
    shop.sale(click=shop.click(is_bot=True))                              # too old for the report
    clock.freeze(NOW)
    for _ in range(2):
        assert shop.sale(click=shop.click(is_bot=True))["status"] == "pending"
    shop.sale(click=shop.click(age=timedelta(seconds=2)))
    r = client.get("/api/v1/fraud-rules/shadow-report", headers=shop.auth())
    assert r.status_code == 200
    report = r.get_json()
    assert report["days"] == 30
    assert report["rules"]["bot_click"] == {"would_hold": 2, "would_reject": 0, "would_flag": 0,
                                            "fired": 2, "mode": "shadow"}
    assert report["rules"]["fast_conversion"]["would_reject"] == 1
    assert report["rules"]["duplicate_ip"]["fired"] == 0
    wider = client.get("/api/v1/fraud-rules/shadow-report?days=60", headers=shop.auth()).get_json()
    assert wider["rules"]["bot_click"]["would_hold"] == 3
    error(client.get("/api/v1/fraud-rules/shadow-report?days=0", headers=shop.auth()), 400,
          "validation_error")
