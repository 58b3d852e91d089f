"""Merchant creative settings: fatigue threshold and refresh interval, variant-host allowlist."""

from datetime import UTC, datetime, timedelta

import pytest

from partnernet import clock
from partnernet.extensions import db
from tests.factories import auth, make_merchant, make_offer

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
A = {"name": "A", "url": "https://shop.example/a", "weight": 1}


@pytest.fixture
def shop(app):
    m = make_merchant()
    return m, make_offer(m.merchant.id)


def put_settings(client, m, body):
    return client.put("/api/v1/creatives/settings", json=body, headers=auth(m.api_key))


def test_defaults_then_partial_update_keeps_the_rest(client, shop):
    m, _ = shop
    r = client.get("/api/v1/creatives/settings", headers=auth(m.api_key))
    assert r.get_json() == {"fatigue_drop_percent": 30, "refresh_days": 28, "variant_hosts": []}
    r = put_settings(client, m, {"refresh_days": 14})
    assert r.status_code == 200
    assert r.get_json() == {"fatigue_drop_percent": 30, "refresh_days": 14, "variant_hosts": []}
    other = make_merchant()        # another merchant still has the defaults
    theirs = client.get("/api/v1/creatives/settings", headers=auth(other.api_key)).get_json()
    assert theirs["refresh_days"] == 28


@pytest.mark.parametrize("body", [{"fatigue_drop_percent": 0}, {"fatigue_drop_percent": 100},
                                  {"refresh_days": 0}, {"variant_hosts": ["https://x.example/"]},
                                  {"variant_hosts": ["not a host"]}])
def test_bad_settings_are_refused_in_the_error_shape(client, shop, body):
    m, _ = shop
    r = put_settings(client, m, body)
    assert r.status_code in (400, 422)
    assert r.get_json()["error"]["code"] in ("validation_error", "invalid_settings")


def test_variant_on_a_host_the_merchant_does_not_allow_is_refused_until_allowed(client, shop):
    m, offer = shop
    b = {"name": "B", "url": "https://landing.partner-pages.example.org/b", "weight": 1}
    r = client.put(f"/api/v1/offers/{offer.id}/variants", json={"variants": [A, b]}, headers=auth(m.api_key))
    assert r.status_code == 422
    assert r.get_json()["error"]["code"] == "invalid_variants" and "1.url" in r.get_json()["error"]["details"]
    assert put_settings(client, m, {"variant_hosts": ["Partner-Pages.example.org"]}).status_code == 200
    r = client.put(f"/api/v1/offers/{offer.id}/variants", json={"variants": [A, b]}, headers=auth(m.api_key))
    assert r.status_code == 201, r.get_json()
    # A look-alike host is not a subdomain of the allowed one.
    c = {"name": "C", "url": "https://evilpartner-pages.example.org/c", "weight": 1}
    r = client.put(f"/api/v1/offers/{offer.id}/variants", json={"variants": [A, c]}, headers=auth(m.api_key))
    assert r.status_code == 422


def test_fatigue_job_uses_the_merchants_refresh_interval(client, shop):
    from partnernet.creatives.models import Creative
    from partnernet.creatives.services_fatigue import flag_fatigued

    m, offer = shop
    clock.freeze(NOW - timedelta(days=40))
    r = client.post(f"/api/v1/offers/{offer.id}/creatives", headers=auth(m.api_key),
                    json={"kind": "text_link", "name": "Spring", "body": "Shop spring"})
    assert r.status_code == 201
    cid = r.get_json()["id"]
    clock.freeze(NOW)
    assert put_settings(client, m, {"refresh_days": 60}).status_code == 200
    flag_fatigued()
    db.session.expire_all()
    assert db.session.get(Creative, cid).fatigued_at is None     # 40 days < 60
    put_settings(client, m, {"refresh_days": 28})
    flag_fatigued()
    db.session.expire_all()
    creative = db.session.get(Creative, cid)
    assert creative.fatigued_at is not None and creative.fatigue_reasons == "age"


def test_fatigue_job_flags_a_ctr_drop_by_the_merchants_threshold(client, shop):
    """Synthetic series: first 14 days 1,400 unique views and 140 clicks (CTR 10%); last 7 days
    700 views and 49 clicks (CTR 7%): a 30% fall is not *more* than the default 30%, but is more
    than a 25% threshold."""
    from partnernet import tokens
    from partnernet.creatives.models import Creative, Impression
    from partnernet.creatives.services_fatigue import flag_fatigued
    from partnernet.links.models import Click
    from tests.factories import make_click_row, make_partner

    m, offer = shop
    start = NOW - timedelta(days=25)
    clock.freeze(start)
    cid = client.post(f"/api/v1/offers/{offer.id}/creatives", headers=auth(m.api_key),
                      json={"kind": "text_link", "name": "Launch", "body": "x"}).get_json()["id"]
    clock.freeze(NOW)
    partner = make_partner(m.merchant.id)
    link_id = make_click_row(offer, partner.id).link_id
    rows_i, rows_c = [], []
    for days, views, clicks in ((range(14), 100, 10), (range(18, 25), 100, 7)):
        for d in days:
            at = start + timedelta(days=d, hours=1)
            rows_i += [Impression(id=tokens.new_click_id(), created_at=at, link_id=link_id,
                                  merchant_id=m.merchant.id, offer_id=offer.id, partner_id=partner.id,
                                  creative_id=cid, is_unique=True, is_bot=False) for _ in range(views)]
            rows_c += [Click(id=tokens.new_click_id(), created_at=at, link_id=link_id,
                             merchant_id=m.merchant.id, offer_id=offer.id, partner_id=partner.id,
                             creative_id=cid) for _ in range(clicks)]
    db.session.add_all(rows_i + rows_c)
    db.session.commit()
    put_settings(client, m, {"refresh_days": 60})
    flag_fatigued()
    db.session.expire_all()
    assert db.session.get(Creative, cid).fatigued_at is None
    put_settings(client, m, {"fatigue_drop_percent": 25})
    flag_fatigued()
    db.session.expire_all()
    creative = db.session.get(Creative, cid)
    assert creative.fatigued_at is not None and creative.fatigue_reasons == "ctr_drop"
