"""The payouts API and Stripe onboarding through the Flask test client (fake Stripe behind)."""

from __future__ import annotations

import logging
from datetime import UTC

import pytest

from tests.factories import auth, make_merchant, make_partner
from tests.payout_helpers import approved_commission, onboard

SHOP_NAME = "API shop"


@pytest.fixture
def client(papp):
    return papp.test_client()


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code


def test_post_payouts_creates_the_run_lists_and_shows_items(client, shop, fake):
    paid = make_partner(shop.merchant.id)
    onboard(paid, fake)
    commissions = [approved_commission(shop.merchant.id, paid.id, shop.offer.id, a) for a in (3000, 2990)]
    small = make_partner(shop.merchant.id)
    approved_commission(shop.merchant.id, small.id, shop.offer.id, 100)

    response = client.post("/api/v1/payouts", json={}, headers=auth(shop.api_key))

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    [p] = body["payouts"]
    assert (p["partner_id"], p["amount"], p["currency"], p["rail"]) == (paid.id, "59.90", "USD", "stripe")
    assert p["status"] == "paid" and p["transfer_id"].startswith("tr_")
    assert p["idempotency_key"] == f"payout-{p['id']}" and p["transfer_group"] == f"run-{body['id']}"
    assert body["skipped"] == [{"partner_id": small.id, "currency": "USD", "reason": "below_minimum",
                                "amount": "1.00", "message": body["skipped"][0]["message"]}]

    listing = client.get("/api/v1/payouts", headers=auth(shop.api_key)).get_json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == p["id"]
    detail = client.get(f"/api/v1/payouts/{p['id']}", headers=auth(shop.api_key)).get_json()
    assert sorted(i["commission_id"] for i in detail["items"]) == sorted(c.id for c in commissions)
    assert sorted(i["amount"] for i in detail["items"]) == ["29.90", "30.00"]


def test_payouts_are_tenant_isolated(client, shop, fake):
    other = make_merchant(name="Other")
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    approved_commission(shop.merchant.id, partner.id, shop.offer.id, 6000)
    p = client.post("/api/v1/payouts", json={}, headers=auth(shop.api_key)).get_json()["payouts"][0]
    assert_error(client.get(f"/api/v1/payouts/{p['id']}", headers=auth(other.api_key)), 404,
                 "payout_not_found")
    assert client.get("/api/v1/payouts", headers=auth(other.api_key)).get_json()["total"] == 0
    # the other merchant's run does not touch this merchant's partners
    assert client.post("/api/v1/payouts", json={"partner_ids": [partner.id]},
                       headers=auth(other.api_key)).get_json()["payouts"] == []
    assert_error(client.post(f"/api/v1/partners/{partner.id}/stripe/onboarding",
                             headers=auth(other.api_key)), 404, "partner_not_found")


@pytest.mark.parametrize("body", [{"partner_ids": "x"}, {"currency": "XXX"}, {"partner_ids": [0]},
                                  {"unknown": 1}])
def test_bad_run_requests_are_400(client, shop, body):
    assert_error(client.post("/api/v1/payouts", json=body, headers=auth(shop.api_key)), 400,
                 "validation_error")


def test_manual_rail_over_the_api(client, shop):
    from partnernet.extensions import db

    shop.merchant.payout_settings = {"rail": "manual"}
    db.session.commit()
    partner = make_partner(shop.merchant.id)
    approved_commission(shop.merchant.id, partner.id, shop.offer.id, 7000)
    [p] = client.post("/api/v1/payouts", json={}, headers=auth(shop.api_key)).get_json()["payouts"]
    assert p["rail"] == "manual" and p["status"] == "queued"
    csv = client.get("/api/v1/payouts/manual.csv?format=wise", headers=auth(shop.api_key))
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert f"payout-{p['id']}" in csv.get_data(as_text=True)
    assert_error(client.post(f"/api/v1/payouts/{p['id']}/mark-paid", json={},
                             headers=auth(shop.api_key)), 400, "validation_error")
    done = client.post(f"/api/v1/payouts/{p['id']}/mark-paid", json={"reference": "WISE-1"},
                       headers=auth(shop.api_key))
    assert done.status_code == 200 and done.get_json()["status"] == "paid"
    assert done.get_json()["manual_reference"] == "WISE-1"
    assert_error(client.post(f"/api/v1/payouts/{p['id']}/mark-paid", json={"reference": "x"},
                             headers=auth(shop.api_key)), 409, "not_manual_payout")


def test_onboarding_creates_one_account_and_a_fresh_link_each_time(client, shop, fake, caplog):
    from partnernet.extensions import db
    from partnernet.payouts.models import Payout

    caplog.set_level(logging.DEBUG)
    partner = make_partner(shop.merchant.id)
    first = client.post(f"/api/v1/partners/{partner.id}/stripe/onboarding", headers=auth(shop.api_key))
    second = client.post(f"/api/v1/partners/{partner.id}/stripe/onboarding", headers=auth(shop.api_key))

    assert first.status_code == second.status_code == 200, first.get_json()
    a, b = first.get_json(), second.get_json()
    assert a["account_id"] == b["account_id"] and a["url"] != b["url"]
    assert a["url"].startswith("https://connect.stripe.test/setup/")
    [account] = fake.accounts.values()
    assert account["controller"] == {"fees": {"payer": "application"},
                                     "losses": {"payments": "application"},
                                     "stripe_dashboard": {"type": "express"},
                                     "requirement_collection": "stripe"}
    assert "type" not in account or account.get("type") is None
    db.session.refresh(partner)
    assert partner.stripe_account_id == a["account_id"] and partner.payout_rail == "stripe"
    assert partner.payouts_enabled is False
    # The link is a bearer token: not in the logs, not in the database.
    assert a["url"] not in caplog.text and b["url"] not in caplog.text
    assert db.session.query(Payout).count() == 0


def test_onboarding_when_stripe_is_down_is_503(client, shop, fake):
    partner = make_partner(shop.merchant.id)
    fake.fail_next("POST /v1/accounts", "500")
    assert_error(client.post(f"/api/v1/partners/{partner.id}/stripe/onboarding",
                             headers=auth(shop.api_key)), 503, "stripe_unavailable")


def test_onboarding_without_stripe_configured_is_422(app_factory):
    plain = app_factory()
    client = plain.test_client()
    with plain.app_context():
        shop = make_merchant()
        partner_id = make_partner(shop.merchant.id).id
    assert_error(client.post(f"/api/v1/partners/{partner_id}/stripe/onboarding",
                             headers=auth(shop.api_key)), 422, "stripe_not_configured")



def test_settings_and_the_weekly_schedule(client, shop, fake):
    from datetime import datetime

    from partnernet import clock
    from partnernet.payouts.settings import run_scheduled_payouts

    headers = auth(shop.api_key)
    assert client.get("/api/v1/payouts/settings", headers=headers).get_json() == {
        "currency": "USD", "min_payout": "50.00", "approval_threshold": None, "schedule": None,
        "rail": "auto"}
    assert_error(client.put("/api/v1/payouts/settings", json={"min_payout": "1.234"}, headers=headers),
                 400, "invalid_amount")
    assert_error(client.put("/api/v1/payouts/settings", json={"schedule": {"weekday": 9}},
                            headers=headers), 400, "validation_error")
    changed = client.put("/api/v1/payouts/settings", json={
        "min_payout": "20", "schedule": {"weekday": 0, "hour": 9}}, headers=headers)
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["min_payout"] == "20.00"
    assert changed.get_json()["schedule"] == {"weekday": 0, "hour": 9}
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    approved_commission(shop.merchant.id, partner.id, shop.offer.id, 2500)

    clock.freeze(datetime(2026, 11, 30, 8, 0, tzinfo=UTC))  # Monday, before 9:00
    assert run_scheduled_payouts() == {"runs": 0}
    clock.freeze(datetime(2026, 11, 30, 9, 5, tzinfo=UTC))
    assert run_scheduled_payouts() == {"runs": 1}
    assert run_scheduled_payouts() == {"runs": 0}  # once a week
    clock.freeze(None)
    [p] = client.get("/api/v1/payouts", headers=headers).get_json()["items"]
    assert p["amount"] == "25.00" and p["status"] == "paid"


def test_portal_onboarding_for_the_partner_itself(papp, shop, fake):
    from partnernet.payouts.connect import start_partner_onboarding

    partner = make_partner(shop.merchant.id)
    first = start_partner_onboarding(partner.id)
    # the account creation is keyed by partner: a lost answer then a retry keeps one account
    fake.fail_next("POST /v1/account_links", "500")
    from partnernet.payouts.exceptions import StripeUnavailable

    with pytest.raises(StripeUnavailable):
        start_partner_onboarding(partner.id)
    second = start_partner_onboarding(partner.id)
    assert first["account_id"] == second["account_id"] and len(fake.accounts) == 1
    keys = [h.get("idempotency-key") for m, p, h in fake.requests if p == "/v1/accounts"]
    assert keys == [f"partner-account-{partner.id}"]
