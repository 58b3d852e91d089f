"""Attribution through /postback: coupon vs click precedence, windows, first click, tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from partnernet import clock
from tests.factories import make_click_row, make_coupon_row, make_merchant, make_offer, make_partner

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def shop(app):
    clock.freeze(NOW)
    shop = make_merchant()
    shop.offer = make_offer(shop.merchant.id)
    shop.clicker = make_partner(shop.merchant.id)
    shop.influencer = make_partner(shop.merchant.id)
    shop.click = make_click_row(shop.offer, shop.clicker.id, at=NOW - timedelta(hours=3))
    shop.coupon = make_coupon_row(shop.offer, shop.influencer.id, "Spring10")
    return shop


def post(client, shop, **params):
    query = {"token": shop.postback_token, "order_id": "O-1", "amount": "100.00", **params}
    return client.get("/postback", query_string={k: v for k, v in query.items() if v is not None})


def credited(response):
    assert response.status_code == 200, response.get_json()
    return response.get_json()["commission"]["partner_id"]


def test_coupon_wins_over_click_by_default_and_is_case_insensitive(client, shop):
    r = post(client, shop, click_id=shop.click.id, coupon="spring10")
    assert credited(r) == shop.influencer.id


def test_click_first_offers_credit_the_click(client, shop):
    from partnernet.extensions import db

    shop.offer.attribution_priority = "click_first"
    db.session.commit()
    assert credited(post(client, shop, click_id=shop.click.id, coupon="SPRING10")) == shop.clicker.id


def test_unknown_coupon_falls_back_to_the_click_and_coupon_alone_attributes(client, shop):
    assert credited(post(client, shop, click_id=shop.click.id, coupon="NOPE")) == shop.clicker.id
    assert credited(post(client, shop, coupon="spring10", order_id="O-2")) == shop.influencer.id


def test_click_id_is_case_insensitive(client, shop):
    assert credited(post(client, shop, click_id=shop.click.id.upper())) == shop.clicker.id


def test_expired_click_with_a_valid_coupon_goes_to_the_coupon(client, shop):
    clock.freeze(NOW + timedelta(days=31))
    assert credited(post(client, shop, click_id=shop.click.id, coupon="spring10")) \
        == shop.influencer.id


def test_window_follows_the_offer(client, shop):
    from partnernet.extensions import db

    shop.offer.attribution_window_days = 1
    db.session.commit()
    clock.freeze(NOW + timedelta(hours=20))
    assert credited(post(client, shop, click_id=shop.click.id)) == shop.clicker.id
    clock.freeze(NOW + timedelta(hours=22))
    r = post(client, shop, click_id=shop.click.id, order_id="O-2")
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "click_expired"


def test_another_merchants_click_and_coupon_do_not_attribute(client, shop):
    other = make_merchant()
    other_offer = make_offer(other.merchant.id)
    other_partner = make_partner(other.merchant.id)
    foreign_click = make_click_row(other_offer, other_partner.id)
    make_coupon_row(other_offer, other_partner.id, "FOREIGN")
    r = post(client, shop, click_id=foreign_click.id, coupon="FOREIGN")
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "unattributed"


def test_first_click_offer_credits_the_visitors_earliest_click_in_the_window(client, shop):
    from partnernet.extensions import db

    shop.offer.attribution_model = "first_click"
    db.session.commit()
    early = make_partner(shop.merchant.id)
    too_early = make_partner(shop.merchant.id)
    make_click_row(shop.offer, too_early.id, at=NOW - timedelta(days=40), visitor_id="v1")
    make_click_row(shop.offer, early.id, at=NOW - timedelta(days=10), visitor_id="v1")
    last = make_click_row(shop.offer, shop.clicker.id, at=NOW - timedelta(hours=1), visitor_id="v1")
    make_click_row(shop.offer, too_early.id, at=NOW - timedelta(days=20), visitor_id="v2")
    r = post(client, shop, click_id=last.id)
    assert credited(r) == early.id


def test_last_click_offer_credits_the_click_given(client, shop):
    early = make_partner(shop.merchant.id)
    make_click_row(shop.offer, early.id, at=NOW - timedelta(days=10), visitor_id="v1")
    last = make_click_row(shop.offer, shop.clicker.id, at=NOW - timedelta(hours=1), visitor_id="v1")
    assert credited(post(client, shop, click_id=last.id)) == shop.clicker.id


def test_coupon_requiring_a_click_needs_the_coupon_partners_click(client, shop):
    from partnernet.extensions import db

    shop.offer.coupon_requires_click = True
    db.session.commit()
    r = post(client, shop, coupon="spring10")
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "unattributed"
    assert credited(post(client, shop, coupon="spring10", click_id=shop.click.id,
                         order_id="O-2")) == shop.clicker.id
    own = make_click_row(shop.offer, shop.influencer.id)
    assert credited(post(client, shop, coupon="spring10", click_id=own.id, order_id="O-3")) \
        == shop.influencer.id


def test_conversion_remembers_click_and_coupon(client, shop):
    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db

    body = post(client, shop, coupon="spring10").get_json()
    conversion = db.session.get(Conversion, body["conversion_id"])
    assert conversion.coupon_id == shop.coupon.id and conversion.click_id is None
    body = post(client, shop, click_id=shop.click.id, order_id="O-2").get_json()
    conversion = db.session.get(Conversion, body["conversion_id"])
    assert conversion.click_id == shop.click.id and conversion.coupon_id is None


def _redirect(client, code):
    from urllib.parse import parse_qs, urlsplit

    r = client.get(f"/r/{code}", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"})
    assert r.status_code == 302
    return parse_qs(urlsplit(r.headers["Location"]).query)["click_id"][0]


def test_a_click_from_the_redirect_attributes_before_and_after_the_flush(client, shop, redis_url):
    """With Redis the click is still in the buffer when the postback arrives; it attributes
    like a flushed one (without Redis it is in the database already)."""
    from sqlalchemy import select

    from partnernet.extensions import db
    from partnernet.jobs import run_periodic
    from partnernet.links.models import Click
    from partnernet.links.services import create_link

    link = create_link(shop.merchant.id, {"offer_id": shop.offer.id, "partner_id": shop.clicker.id})
    click_id = _redirect(client, link.code)
    stored = db.session.scalar(select(Click.id).where(Click.id == click_id))
    assert (stored is None) == bool(redis_url)  # buffered only when Redis is configured
    assert credited(post(client, shop, click_id=click_id)) == shop.clicker.id
    run_periodic("flush-clicks")
    second = _redirect(client, link.code)
    run_periodic("flush-clicks")
    assert db.session.scalar(select(Click.id).where(Click.id == second)) == second
    assert credited(post(client, shop, click_id=second, order_id="O-2")) == shop.clicker.id


def test_an_id_naming_another_day_than_its_click_is_still_found(client, shop):
    """Click ids start with their UTC day, so a look-up by id tries that day's partition
    first. Ids made before they carried their day are random: one whose first digits name
    another day than its click's is still found, by the fast path (which hands it to the
    view) and by the view alike."""
    from partnernet import tokens
    from partnernet.extensions import db
    from partnernet.links import services
    from partnernet.links.models import Click

    made = tokens.click_id_for(NOW - timedelta(hours=2))
    assert len(made) == 32 and tokens.click_id_day(made) == (
        datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC))
    misleading = tokens.click_id_for(NOW)[:4] + "f" * 28  # names today; the click is older
    db.session.add(Click(id=misleading, link_id=shop.click.link_id, merchant_id=shop.merchant.id,
                         offer_id=shop.offer.id, partner_id=shop.clicker.id,
                         created_at=NOW - timedelta(days=3)))
    db.session.commit()
    assert services.resolve_click(misleading).created_at == NOW - timedelta(days=3)
    assert credited(post(client, shop, click_id=misleading)) == shop.clicker.id
    assert credited(post(client, shop, click_id=shop.click.id, order_id="O-2")) == shop.clicker.id
