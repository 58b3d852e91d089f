"""``/postback``: authentication, raw log, dedupe, errors with stable codes, refunds."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from partnernet import clock
from tests.factories import (
    make_click_row,
    make_merchant,
    make_offer,
    make_partner,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PLANS = [
    {"event": "sale", "type": "cps", "percent": "10"},
    {"event": "lead", "type": "cpl", "amount": "2.50"},
    {"event": "trial_start", "type": "cpa", "amount": "5.00"},
]


@pytest.fixture
def shop(app):
    clock.freeze(NOW)
    shop = make_merchant(name="Shop A")
    shop.offer = make_offer(shop.merchant.id, plans=PLANS)
    shop.partner = make_partner(shop.merchant.id)
    shop.click = make_click_row(shop.offer, shop.partner.id, at=NOW - timedelta(days=2))
    return shop


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    assert body["error"]["code"] == code, body
    return body["error"]


def count(model):
    from partnernet.extensions import db

    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def postbacks():
    from partnernet.conversions.models import Postback
    from partnernet.extensions import db

    db.session.expire_all()
    return list(db.session.scalars(select(Postback).order_by(Postback.id)))


def sale(shop, **extra):
    params = {"token": shop.postback_token, "click_id": shop.click.id, "order_id": "A-1",
              "amount": "49.90", "currency": "USD"}
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def sign(secret, message: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


# -- happy paths -------------------------------------------------------------------------

def test_get_sale_is_accepted_with_the_engines_commission_and_logged(client, shop):
    r = client.get("/postback", query_string=sale(shop))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "accepted" and body["duplicate"] is False
    assert body["commission"]["amount"] == "4.99" and body["commission"]["currency"] == "USD"
    assert body["commission"]["partner_id"] == shop.partner.id
    assert body["commission"]["conversion_id"] == body["conversion_id"]
    [logged] = postbacks()
    assert logged.outcome == "accepted" and logged.http_status == 200
    assert logged.conversion_id == body["conversion_id"] and logged.order_id == "A-1"
    assert "token" not in logged.params and logged.params["amount"] == "49.90"
    assert logged.source_ip == "127.0.0.1" and logged.auth_method == "token"


def test_post_form_and_post_json_work_alike(client, shop):
    r = client.post("/postback", data=sale(shop, order_id="F-1"))
    assert r.status_code == 200 and r.get_json()["status"] == "accepted"
    r = client.post("/postback", json={**sale(shop, order_id="J-1"), "amount": 12.5})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["commission"]["amount"] == "1.25"
    from partnernet.conversions.models import Conversion

    assert count(Conversion) == 2


def test_currency_defaults_to_the_offers_and_jpy_has_no_decimals(client, app):
    clock.freeze(NOW)
    jpy = make_merchant(currency="JPY")
    offer = make_offer(jpy.merchant.id, plans=[{"event": "sale", "type": "cps", "percent": "5"}])
    partner = make_partner(jpy.merchant.id)
    click = make_click_row(offer, partner.id)
    r = client.get("/postback", query_string={"token": jpy.postback_token, "click_id": click.id,
                                              "order_id": "J", "amount": "1999"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["commission"] == {**r.get_json()["commission"], "amount": "100",
                                          "currency": "JPY"}
    r = client.get("/postback", query_string={"token": jpy.postback_token, "click_id": click.id,
                                              "order_id": "K", "amount": "19.99"})
    assert_error(r, 400, "invalid_amount")


def test_lead_needs_no_amount_and_custom_events_with_a_plan_are_paid(client, shop):
    r = client.get("/postback", query_string=sale(shop, event="lead", amount=None, order_id="L-1"))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["commission"]["amount"] == "2.50"
    # a lead without order_id is one per click
    r = client.get("/postback", query_string=sale(shop, event="lead", amount=None, order_id=None))
    assert r.status_code == 200 and r.get_json()["duplicate"] is False
    again = client.get("/postback", query_string=sale(shop, event="lead", amount=None, order_id=None))
    assert again.get_json()["duplicate"] is True
    r = client.get("/postback", query_string=sale(shop, event="trial_start", amount=None))
    assert r.status_code == 200 and r.get_json()["commission"]["amount"] == "5.00"


def test_same_order_id_for_another_event_is_another_conversion(client, shop):
    assert client.get("/postback", query_string=sale(shop)).get_json()["duplicate"] is False
    r = client.get("/postback", query_string=sale(shop, event="lead", amount=None))
    assert r.get_json()["duplicate"] is False


# -- dedupe ------------------------------------------------------------------------------

def test_repeat_of_an_order_is_a_duplicate_with_nothing_new(client, shop):
    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion

    first = client.get("/postback", query_string=sale(shop)).get_json()
    for _ in range(3):
        r = client.get("/postback", query_string=sale(shop))
        assert r.status_code == 200
        body = r.get_json()
        assert body["duplicate"] is True and body["status"] == "duplicate"
        assert body["conversion_id"] == first["conversion_id"]
        assert body["commission"]["id"] == first["commission"]["id"]
    assert count(Conversion) == 1 and count(Commission) == 1
    assert [p.outcome for p in postbacks()] == ["accepted"] + ["duplicate"] * 3


def test_repeat_still_a_duplicate_after_the_click_expired(client, shop):
    client.get("/postback", query_string=sale(shop))
    clock.freeze(NOW + timedelta(days=90))
    r = client.get("/postback", query_string=sale(shop))
    assert r.status_code == 200 and r.get_json()["duplicate"] is True


@pytest.mark.parametrize("change", [{"amount": "49.91"}, {"currency": "EUR"}])
def test_same_order_other_amount_or_currency_is_order_conflict(client, shop, change):
    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db

    first = client.get("/postback", query_string=sale(shop)).get_json()
    error = assert_error(client.get("/postback", query_string=sale(shop, **change)), 409,
                         "order_conflict")
    assert error["details"]["conversion_id"] == first["conversion_id"]
    db.session.expire_all()
    original = db.session.get(Conversion, first["conversion_id"])
    assert original.amount_minor == 4990 and original.currency == "USD"
    assert postbacks()[-1].outcome == "order_conflict"


# -- authentication ----------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "", "pbt_wrong"])
def test_missing_or_wrong_token_is_401_and_not_logged(client, shop, token):
    r = client.get("/postback", query_string=sale(shop, token=token))
    assert_error(r, 401, "invalid_token")
    assert postbacks() == []


def test_another_merchants_token_does_not_reach_this_merchants_click(client, shop):
    other = make_merchant()
    r = client.get("/postback", query_string=sale(shop, token=other.postback_token))
    assert_error(r, 422, "unattributed")


def test_signed_get_and_post(client, shop):
    secret = shop.postback_secret
    query = urlencode({"merchant_id": shop.merchant.id, "click_id": shop.click.id,
                       "order_id": "S-1", "amount": "10.00"})
    r = client.get(f"/postback?{query}",
                   headers={"X-Partnernet-Signature": sign(secret, query.encode())})
    assert r.status_code == 200, r.get_json()
    assert postbacks()[-1].auth_method == "signature"
    # the signature may ride in the query string itself; it is not part of what is signed
    query2 = query.replace("S-1", "S-2")
    r = client.get(f"/postback?{query2}&signature={sign(secret, query2.encode())}")
    assert r.status_code == 200, r.get_json()
    body = json.dumps({"merchant_id": shop.merchant.id, "click_id": shop.click.id,
                       "order_id": "S-3", "amount": "20.00"}).encode()
    r = client.post("/postback", data=body, content_type="application/json",
                    headers={"X-Partnernet-Signature": sign(secret, body)})
    assert r.status_code == 200 and r.get_json()["commission"]["amount"] == "2.00"


def test_bad_signature_or_signature_without_merchant_id_is_401(client, shop):
    query = urlencode({"merchant_id": shop.merchant.id, "click_id": shop.click.id,
                       "order_id": "S-1", "amount": "10.00"})
    tampered = query.replace("10.00", "99.00")
    r = client.get(f"/postback?{tampered}",
                   headers={"X-Partnernet-Signature": sign(shop.postback_secret, query.encode())})
    assert_error(r, 401, "invalid_signature")
    other = make_merchant()
    r = client.get(f"/postback?{query}",
                   headers={"X-Partnernet-Signature": sign(other.postback_secret, query.encode())})
    assert_error(r, 401, "invalid_signature")
    bare = urlencode({"click_id": shop.click.id, "order_id": "S-1", "amount": "10.00"})
    r = client.get(f"/postback?{bare}",
                   headers={"X-Partnernet-Signature": sign(shop.postback_secret, bare.encode())})
    error = assert_error(r, 401, "invalid_signature")
    assert "merchant_id" in error["details"]
    assert postbacks() == []


def test_signed_post_ignores_unsigned_query_parameters(client, shop):
    body = json.dumps({"merchant_id": shop.merchant.id, "click_id": shop.click.id,
                       "order_id": "S-9", "amount": "20.00"}).encode()
    r = client.post("/postback?amount=999.00&order_id=EVIL", data=body,
                    content_type="application/json",
                    headers={"X-Partnernet-Signature": sign(shop.postback_secret, body)})
    assert r.status_code == 200
    assert r.get_json()["commission"]["amount"] == "2.00"
    assert postbacks()[-1].order_id == "S-9"


def test_signed_ts_older_than_five_minutes_is_refused(client, shop):
    def signed(ts, order):
        query = urlencode({"merchant_id": shop.merchant.id, "click_id": shop.click.id,
                           "order_id": order, "amount": "10.00", "ts": ts})
        return client.get(f"/postback?{query}", headers={
            "X-Partnernet-Signature": sign(shop.postback_secret, query.encode())})

    now = int(NOW.timestamp())
    assert signed(now - 60, "T-1").status_code == 200
    assert_error(signed(now - 301, "T-2"), 401, "invalid_signature")
    assert_error(signed("yesterday", "T-3"), 401, "invalid_signature")


# -- source allowlist --------------------------------------------------------------------

def test_source_allowlist(client, shop):
    from partnernet.extensions import db

    shop.merchant.postback_allowlist = ["203.0.113.0/24"]
    db.session.commit()
    error = assert_error(client.get("/postback", query_string=sale(shop)), 403,
                         "source_not_allowed")
    assert error["details"]["postback_id"] == postbacks()[-1].id
    assert postbacks()[-1].outcome == "source_not_allowed"
    # X-Forwarded-For is not believed without trusted proxy hops
    r = client.get("/postback", query_string=sale(shop),
                   headers={"X-Forwarded-For": "203.0.113.7"})
    assert_error(r, 403, "source_not_allowed")
    r = client.get("/postback", query_string=sale(shop),
                   environ_overrides={"REMOTE_ADDR": "203.0.113.7"})
    assert r.status_code == 200, r.get_json()


def test_forwarded_for_through_a_trusted_proxy_hop(app_factory, shop):
    from partnernet.extensions import db

    shop.merchant.postback_allowlist = ["203.0.113.0/24", "2001:db8::/32"]
    db.session.commit()
    proxied = app_factory(TRUSTED_PROXY_HOPS=1)
    with proxied.app_context():
        c = proxied.test_client()
        r = c.get("/postback", query_string=sale(shop),
                  headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
        assert r.status_code == 200, r.get_json()
        r = c.get("/postback", query_string=sale(shop, order_id="B"),
                  headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.1"})
        assert_error(r, 403, "source_not_allowed")


# -- parameter errors --------------------------------------------------------------------

def test_missing_order_id(client, shop):
    assert_error(client.get("/postback", query_string=sale(shop, order_id=None)), 400,
                 "missing_order_id")
    assert_error(client.get("/postback", query_string=sale(shop, order_id="  ")), 400,
                 "missing_order_id")
    assert postbacks()[-1].outcome == "missing_order_id"


@pytest.mark.parametrize("amount", ["abc", "49.999", "-1", "1e400", "NaN", None])
def test_invalid_or_missing_amount_for_a_percent_plan(client, shop, amount):
    assert_error(client.get("/postback", query_string=sale(shop, amount=amount)), 400,
                 "invalid_amount")


@pytest.mark.parametrize("currency", ["XYZ", "dollars", "1"])
def test_unknown_currency(client, shop, currency):
    assert_error(client.get("/postback", query_string=sale(shop, currency=currency)), 400,
                 "unknown_currency")


def test_currency_other_than_the_offers_is_refused(client, shop):
    assert_error(client.get("/postback", query_string=sale(shop, currency="EUR")), 422,
                 "currency_mismatch")


def test_malformed_parameters_are_400_never_500(client, shop):
    assert_error(client.get("/postback", query_string=sale(shop, status="paid")), 400,
                 "validation_error")
    assert_error(client.get("/postback", query_string=sale(shop, event="Sale!")), 400,
                 "validation_error")
    assert_error(client.get("/postback", query_string=sale(shop, order_id="x" * 300)), 400,
                 "validation_error")
    r = client.post("/postback", json={"token": shop.postback_token, "order_id": ["a", "b"]})
    assert_error(r, 400, "validation_error")
    r = client.post("/postback", data="[1, 2]", content_type="application/json")
    assert_error(r, 400, "validation_error")


def test_unattributed_and_click_expired_are_422_and_logged(client, shop):
    assert_error(client.get("/postback", query_string=sale(shop, click_id=None)), 422,
                 "unattributed")
    assert_error(client.get("/postback", query_string=sale(shop, click_id="f" * 32)), 422,
                 "unattributed")
    clock.freeze(NOW + timedelta(days=29))
    assert_error(client.get("/postback", query_string=sale(shop, order_id="X")), 422,
                 "click_expired")
    assert [p.outcome for p in postbacks()] == ["unattributed", "unattributed", "click_expired"]
    assert all(p.http_status == 422 for p in postbacks())


def test_unknown_event(client, shop):
    error = assert_error(client.get("/postback", query_string=sale(shop, event="upsell")), 422,
                         "unknown_event")
    assert set(error["details"]["events"]) == {"sale", "lead", "trial_start"}


# -- refunds -----------------------------------------------------------------------------

def test_full_refund_reverses_the_commission(client, shop):
    first = client.get("/postback", query_string=sale(shop)).get_json()
    r = client.get("/postback", query_string=sale(shop, status="refunded", amount=None))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "refunded" and body["duplicate"] is False
    assert body["conversion_id"] == first["conversion_id"]
    assert body["commission"]["status"] == "reversed"
    again = client.get("/postback", query_string=sale(shop, status="refunded", amount=None))
    assert again.get_json()["duplicate"] is True


def test_partial_refund_reverses_pro_rata(client, shop):
    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db

    first = client.get("/postback", query_string=sale(shop, amount="100.00")).get_json()
    assert first["commission"]["amount"] == "10.00"
    r = client.get("/postback", query_string=sale(shop, status="refunded", amount="25.00"))
    assert r.status_code == 200, r.get_json()
    db.session.expire_all()
    conversion = db.session.get(Conversion, first["conversion_id"])
    commission = db.session.get(Commission, first["commission"]["id"])
    assert conversion.status == "partially_refunded" and conversion.refunded_minor == 2500
    assert commission.reversed_minor == 250 and commission.status != "reversed"
    # the same total again changes nothing; a larger total reverses more
    again = client.get("/postback", query_string=sale(shop, status="refunded", amount="25.00"))
    assert again.get_json()["duplicate"] is True
    client.get("/postback", query_string=sale(shop, status="refunded", amount="100.00"))
    db.session.expire_all()
    assert db.session.get(Commission, first["commission"]["id"]).status == "reversed"
    assert db.session.get(Conversion, first["conversion_id"]).status == "refunded"


def test_refund_more_than_the_order_is_invalid_amount(client, shop):
    client.get("/postback", query_string=sale(shop))
    assert_error(client.get("/postback", query_string=sale(shop, status="refunded", amount="50.00")),
                 400, "invalid_amount")


def test_refund_of_an_unknown_order_is_404_and_logged(client, shop):
    assert_error(client.get("/postback", query_string=sale(shop, status="refunded", order_id="NOPE")),
                 404, "unknown_order")
    assert postbacks()[-1].outcome == "unknown_order" and postbacks()[-1].order_id == "NOPE"


# -- rate limit --------------------------------------------------------------------------

def test_rate_limit_per_merchant_token(app_factory, shop):
    limited = app_factory(RATELIMIT_ENABLED=True, POSTBACK_RATE_LIMIT="3 per minute")
    other = make_merchant()
    with limited.app_context():
        c = limited.test_client()
        codes = [c.get("/postback", query_string=sale(shop, order_id=f"R-{i}")).status_code
                 for i in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/postback", query_string=sale(shop, order_id="R-9"))
        assert_error(r, 429, "rate_limited")
        # another merchant's token has its own budget
        r = c.get("/postback", query_string={"token": other.postback_token, "order_id": "Z"})
        assert_error(r, 422, "unattributed")


def test_a_rotated_token_is_refused_once_the_credentials_cache_expires(app_factory, shop):
    from partnernet.accounts.services import issue_postback_credentials
    from partnernet.extensions import db

    uncached = app_factory(POSTBACK_AUTH_CACHE_SECONDS=0)
    with uncached.app_context():
        c = uncached.test_client()
        assert c.get("/postback", query_string=sale(shop)).status_code == 200
        merchant = db.session.merge(shop.merchant)
        new_token, _ = issue_postback_credentials(merchant)
        db.session.commit()
        assert_error(c.get("/postback", query_string=sale(shop, order_id="B")), 401, "invalid_token")
        r = c.get("/postback", query_string=sale(shop, order_id="B", token=new_token))
        assert r.status_code == 200


def test_customer_email_is_kept_hashed_never_as_the_address(client, shop):
    import hashlib

    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db

    r = client.post("/postback", data=sale(shop, customer_email=" Jane.Doe@Example.COM ",
                                           customer_id="cust-7"))
    assert r.status_code == 200
    digest = hashlib.sha256(b"jane.doe@example.com").hexdigest()
    conversion = db.session.get(Conversion, r.get_json()["conversion_id"])
    assert conversion.customer_email_hash == digest
    assert conversion.customer_email_domain == "example.com" and conversion.customer_id == "cust-7"
    [logged] = postbacks()
    assert logged.params["customer_email"] == f"sha256:{digest}"
    assert "jane" not in json.dumps(logged.params).lower()


def test_a_flood_of_parameters_is_not_kept_whole(client, shop):
    extra = {f"x{i}": "y" * 5000 for i in range(200)}
    r = client.post("/postback", data={**sale(shop), **extra})
    assert r.status_code == 200
    [logged] = postbacks()
    assert len(logged.params) <= 50 and all(len(v) <= 1000 for v in logged.params.values())
    assert logged.params["order_id"] == "A-1"
