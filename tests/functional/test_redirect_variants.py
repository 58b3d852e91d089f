"""The redirect's split-test hook, creative ids, cookieless merchants and the country header.

Runs on whatever the session has: SQLite or PostgreSQL, with or without Redis (clicks are
read back after ``flush_clicks``, a no-op without Redis).
"""

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from partnernet.accounts.models import Merchant
from partnernet.creatives.services import pick_variant
from partnernet.extensions import db
from partnernet.links import buffer
from partnernet.links.models import Click
from tests.factories import auth, make_merchant, make_offer, make_partner

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
A_URL, B_URL = "https://shop.example/a", "https://www.shop.example/b?v=2"


@pytest.fixture
def shop(app):
    m = make_merchant()
    offer = make_offer(m.merchant.id)
    partner = make_partner(m.merchant.id)
    return m, offer, partner


def new_link(client, shop):
    m, offer, partner = shop
    r = client.post("/api/v1/links", json={"offer_id": offer.id, "partner_id": partner.id},
                    headers=auth(m.api_key))
    assert r.status_code == 201, r.get_json()
    return r.get_json()["code"]


def start_test(client, shop, weights=(1, 1)):
    m, offer, _ = shop
    r = client.put(f"/api/v1/offers/{offer.id}/variants", headers=auth(m.api_key), json={"variants": [
        {"name": "A", "url": A_URL, "weight": weights[0]},
        {"name": "B", "url": B_URL, "weight": weights[1]}]})
    assert r.status_code == 201, r.get_json()
    a, b = r.get_json()
    return {a["id"]: A_URL, b["id"]: B_URL}


def new_creative(client, m, offer):
    r = client.post(f"/api/v1/offers/{offer.id}/creatives", headers=auth(m.api_key),
                    json={"kind": "text_link", "name": "CTA", "body": "Shop now"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def go(client, path, visitor=None, ip="203.0.113.9", headers=None):
    client.delete_cookie("pn_vid")
    if visitor:
        client.set_cookie("pn_vid", visitor)
    r = client.get(path, headers={"User-Agent": UA, **(headers or {})}, environ_base={"REMOTE_ADDR": ip})
    assert r.status_code == 302, r.data
    return r


def page(r):
    """The landing page a redirect went to, without its query."""
    parts = urlsplit(r.headers["Location"])
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def click_id(r):
    return parse_qs(urlsplit(r.headers["Location"]).query)["click_id"][0]


def stored():
    buffer.flush_clicks()
    db.session.rollback()
    return {c.id: c for c in db.session.scalars(select(Click))}


def test_split_test_is_sticky_per_visitor_serves_both_and_records_the_variant(client, shop):
    code = new_link(client, shop)
    variants = start_test(client, shop)
    by_page = {"https://shop.example/a": "A", "https://www.shop.example/b": "B"}
    chosen, served = {}, {}
    for i in range(16):
        visitor = f"visitor{i:02d}-abcdefghijkl"
        first, again = go(client, f"/r/{code}", visitor), go(client, f"/r/{code}?sub1=x", visitor)
        assert page(first) == page(again)  # sticky by the cookie
        chosen[click_id(first)] = chosen[click_id(again)] = page(first)
        served[visitor] = by_page[page(first)]
    assert set(served.values()) == {"A", "B"}  # both variants served across visitors
    clicks = stored()
    assert set(chosen) <= set(clicks)
    for cid, landing in chosen.items():
        assert by_page[landing] == ("A" if variants[clicks[cid].variant_id] == A_URL else "B")


def test_without_a_cookie_the_variant_follows_the_new_visitor_id_and_then_sticks(client, shop):
    m, offer, _ = shop
    code = new_link(client, shop)
    variants = start_test(client, shop, weights=(1, 3))
    table = tuple((vid, w, url) for vid, url, w in zip(variants, variants.values(), (1, 3), strict=True))
    for _ in range(6):
        r = go(client, f"/r/{code}")
        visitor = r.headers["Set-Cookie"].split("pn_vid=")[1].split(";")[0]
        expected, _ = pick_variant(table, visitor, offer.id)  # deterministic by the visitor id
        assert stored()[click_id(r)].variant_id == expected
        assert page(go(client, f"/r/{code}", visitor)) == page(r)


def test_click_keeps_the_tracking_query_on_the_variant_page(client, shop):
    code = new_link(client, shop)
    start_test(client, shop)
    for i in range(8):
        location = go(client, f"/r/{code}", f"visitor{i:02d}-abcdefghijkl").headers["Location"]
        query = parse_qs(urlsplit(location).query)
        assert len(query["click_id"][0]) == 32
        assert location.startswith((A_URL + "?", B_URL + "&"))


def test_creative_id_is_recorded_only_for_a_creative_of_the_offer(client, shop):
    m, offer, _ = shop
    code = new_link(client, shop)
    mine = new_creative(client, m, offer)
    other = make_merchant()
    foreign = new_creative(client, other, make_offer(other.merchant.id))
    sent = {cr: click_id(go(client, f"/r/{code}?cr={cr}")) for cr in
            (str(mine), str(foreign), "999999", "abc", "-1", "9" * 40, "")}
    clicks = stored()
    assert clicks[sent[str(mine)]].creative_id == mine
    assert all(clicks[sent[cr]].creative_id is None for cr in sent if cr != str(mine))


def test_a_new_split_test_and_its_end_reach_a_cached_link_at_once(client, shop):
    m, offer, _ = shop
    code = new_link(client, shop)
    assert page(go(client, f"/r/{code}")) == "https://shop.example/landing"  # now cached
    variants = start_test(client, shop)
    pages = {page(go(client, f"/r/{code}", f"visitor{i:02d}-abcdefghijkl")) for i in range(10)}
    assert pages == {"https://shop.example/a", "https://www.shop.example/b"}
    winner = next(iter(variants))
    r = client.post(f"/api/v1/offers/{offer.id}/variants/end", json={"winner_id": winner},
                    headers=auth(m.api_key))
    assert r.status_code == 200
    assert {page(go(client, f"/r/{code}", f"visitor{i:02d}-abcdefghijkl")) for i in range(6)} == {
        "https://shop.example/a"}
    ids = [click_id(go(client, f"/r/{code}")) for _ in range(2)]
    assert all(stored()[i].variant_id is None for i in ids)


def test_a_creative_made_after_the_link_was_cached_is_recognised(client, shop):
    m, offer, _ = shop
    code = new_link(client, shop)
    go(client, f"/r/{code}")  # cached without creatives
    cr = new_creative(client, m, offer)
    r = go(client, f"/r/{code}?cr={cr}")
    assert stored()[click_id(r)].creative_id == cr


# -- cookieless merchants -------------------------------------------------------------------

def make_cookieless(m):
    db.session.get(Merchant, m.merchant.id).cookieless = True
    db.session.commit()


def test_cookieless_merchant_sets_no_cookie_and_reads_none(client, shop):
    from partnernet.links import services

    m, _, _ = shop
    code = new_link(client, shop)
    assert "Set-Cookie" in go(client, f"/r/{code}").headers  # default: a visitor cookie
    make_cookieless(m)  # takes effect on the cached link at once
    r = go(client, f"/r/{code}", visitor="visitor00-abcdefghijkl")
    assert "Set-Cookie" not in r.headers and r.headers.getlist("Set-Cookie") == []
    assert "pn_vid" not in r.headers.get("Vary", "")
    click = stored()[click_id(r)]
    assert click.visitor_id is None  # the cookie that came with the request was not read
    assert services.resolve_click(click.id).id == click.id  # attribution by click id still works


def test_cookieless_split_test_is_deterministic_per_device(client, shop):
    m, _, _ = shop
    code = new_link(client, shop)
    start_test(client, shop)
    make_cookieless(m)
    pages = {}
    for i in range(12):
        ip = f"198.51.100.{i}"
        first, again = go(client, f"/r/{code}", ip=ip), go(client, f"/r/{code}", ip=ip)
        assert "Set-Cookie" not in first.headers and page(first) == page(again)
        pages[ip] = page(first)
    assert len(set(pages.values())) == 2


def test_cookieless_pixel_ignores_the_visitor_cookie(app, client, shop):
    from partnernet.creatives.models import Impression
    from partnernet.creatives.pixel import flush_impressions

    m, _, _ = shop
    code = new_link(client, shop)
    make_cookieless(m)
    client.set_cookie("pn_vid", "visitor00-abcdefghijkl")
    r = client.get(f"/i/{code}.gif", headers={"User-Agent": UA})
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    flush_impressions()
    db.session.rollback()
    assert db.session.scalars(select(Impression.visitor_id)).all() == [None]


# -- country ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("sent", "kept"), [("DE", "DE"), ("US", "US"), ("de", None), ("DEU", None),
                                            ("XX", None), ("T1", None), ("", None), ("D\x00", None)])
def test_country_comes_from_the_configured_trusted_header(app_factory, redis_url, sent, kept):
    app = app_factory(redis_url, COUNTRY_HEADER="CF-IPCountry")
    with app.app_context():
        m = make_merchant()
        client = app.test_client()
        code = new_link(client, (m, make_offer(m.merchant.id), make_partner(m.merchant.id)))
        r = go(client, f"/r/{code}", headers={"CF-IPCountry": sent})
        assert stored()[click_id(r)].country == kept
        db.session.remove()


def test_country_header_is_ignored_unless_configured(client, shop):
    code = new_link(client, shop)
    r = go(client, f"/r/{code}", headers={"CF-IPCountry": "DE", "X-Country": "FR"})
    assert stored()[click_id(r)].country is None
