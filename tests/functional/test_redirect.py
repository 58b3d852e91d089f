"""``GET /r/<code>``: the redirect a shopper sees, and the click it records.

Runs on whatever the session has: SQLite or PostgreSQL, with or without Redis. Clicks
are read back after ``flush_clicks`` (a no-op without Redis), as a report would see them.
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from partnernet import clock
from partnernet.extensions import db
from partnernet.links import buffer, services
from partnernet.links.models import Click
from tests.factories import make_merchant, make_offer, make_partner

BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0 Safari/537.36")


@pytest.fixture
def shop(app):
    return make_merchant()


@pytest.fixture
def partner(shop):
    return make_partner(shop.merchant.id)


def make_link(shop, partner, **offer_overrides):
    data = {"offer_id": None, "partner_id": partner.id}
    link_fields = {k: offer_overrides.pop(k) for k in list(offer_overrides)
                   if k.startswith(("sub", "utm_"))}
    offer = make_offer(shop.merchant.id, **offer_overrides)
    data.update(offer_id=offer.id, **link_fields)
    return services.create_link(shop.merchant.id, data)


@pytest.fixture
def link(shop, partner):
    return make_link(shop, partner)


def clicks():
    buffer.flush_clicks()
    db.session.rollback()
    return list(db.session.scalars(select(Click).order_by(Click.created_at, Click.id)))


def hit(client, path, ua=BROWSER, ip="203.0.113.77", method="GET", **kw):
    headers = kw.pop("headers", {})
    # The test client sends "Werkzeug/..." unless told otherwise; "" stands for no header.
    headers["User-Agent"] = ua if ua is not None else ""
    return client.open(path, method=method, headers=headers,
                       environ_base={"REMOTE_ADDR": ip}, **kw)


def test_redirects_to_landing_with_click_id_and_utm(client, shop, partner):
    link = make_link(shop, partner, landing_url="https://shop.example/p/shoes?src=aff&color=red#top",
                     utm_source="youtube", utm_campaign="spring sale")
    r = hit(client, f"/r/{link.code}")
    assert r.status_code == 302
    location = r.headers["Location"]
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == (
        "https", "shop.example", "/p/shoes", "top")
    assert parts.query.startswith("src=aff&color=red&")  # the offer's own query, as it was
    query = parse_qs(parts.query)
    assert query["utm_source"] == ["youtube"] and query["utm_campaign"] == ["spring sale"]
    (click,) = clicks()
    assert query["click_id"] == [click.id]
    assert len(click.id) == 32 and int(click.id, 16) >= 0
    assert (click.link_id, click.partner_id, click.offer_id, click.merchant_id) == (
        link.id, partner.id, link.offer_id, shop.merchant.id)
    assert r.headers["Cache-Control"].startswith("no-store")


def test_custom_click_param_replaces_one_already_on_the_landing_url(client, shop, partner):
    link = make_link(shop, partner, landing_url="https://shop.example/?aff_click=stale&x=1",
                     click_id_param="aff_click")
    r = hit(client, f"/r/{link.code}")
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    (click,) = clicks()
    assert query == {"x": ["1"], "aff_click": [click.id]}


def test_request_cannot_choose_the_target(client, link):
    r = hit(client, f"/r/{link.code}?url=https://evil.example/&redirect=https://evil.example/"
                    "&next=//evil.example")
    assert r.status_code == 302
    assert urlsplit(r.headers["Location"]).netloc == "shop.example"


def test_each_click_gets_a_new_id(client, link):
    ids = {parse_qs(urlsplit(hit(client, f"/r/{link.code}").headers["Location"]).query)["click_id"][0]
           for _ in range(5)}
    assert len(ids) == 5
    assert {c.id for c in clicks()} == ids


def test_subs_from_the_request_override_link_defaults_and_are_truncated(client, shop, partner):
    link = make_link(shop, partner, sub1="default-1", sub2="default-2")
    hit(client, f"/r/{link.code}?sub1=fb&sub3={'x' * 300}&sub5=%00evil%00")
    (click,) = clicks()
    assert click.sub1 == "fb" and click.sub2 == "default-2"
    assert click.sub3 == "x" * 255 and click.sub4 is None and click.sub5 == "evil"


def test_visitor_cookie_is_set_and_kept(client, link):
    r = hit(client, f"/r/{link.code}")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("pn_vid=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Max-Age=31536000" in cookie and "Path=/" in cookie
    visitor = client.get_cookie("pn_vid").value
    assert 16 <= len(visitor) <= 64
    hit(client, f"/r/{link.code}")
    first, second = clicks()
    assert first.visitor_id == second.visitor_id == visitor


@pytest.mark.parametrize("cookie", ["", "short", "x" * 300, "bad value;", "é" * 20, "a\x00" * 10])
def test_malformed_visitor_cookie_gets_a_new_id(client, link, cookie):
    r = hit(client, f"/r/{link.code}", headers={"Cookie": f"pn_vid={cookie}"})
    assert r.status_code == 302
    (click,) = clicks()
    assert click.visitor_id and click.visitor_id != cookie and len(click.visitor_id) >= 16


@pytest.mark.parametrize("ua", [
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "curl/8.5.0",
    None,
])
def test_crawlers_and_missing_user_agents_are_redirected_but_flagged(client, link, ua):
    r = hit(client, f"/r/{link.code}", ua=ua)
    assert r.status_code == 302
    (click,) = clicks()
    assert click.is_bot and not click.is_unique


def test_head_request_is_redirected_but_flagged(client, link):
    r = hit(client, f"/r/{link.code}", method="HEAD")
    assert r.status_code == 302 and "click_id=" in r.headers["Location"]
    (click,) = clicks()
    assert click.is_bot and not click.is_unique


def test_browser_is_not_a_bot_and_first_click_is_unique(client, link):
    hit(client, f"/r/{link.code}")
    hit(client, f"/r/{link.code}")
    hit(client, f"/r/{link.code}", ua=BROWSER + " Edg/126")
    hit(client, f"/r/{link.code}", ip="198.51.100.9")
    first, repeat, other_ua, other_ip = clicks()
    assert not first.is_bot and first.is_unique
    assert not repeat.is_unique
    assert other_ua.is_unique and other_ip.is_unique


def test_ipv4_is_stored_truncated_with_a_keyed_hash(client, link):
    hit(client, f"/r/{link.code}", ip="203.0.113.77")
    hit(client, f"/r/{link.code}", ip="203.0.113.78")
    a, b = clicks()
    assert a.ip_truncated == b.ip_truncated == "203.0.113.0"
    assert a.ip_hash != b.ip_hash and len(a.ip_hash) == 64
    assert "203.0.113.77" not in a.ip_hash


def test_ipv6_is_stored_truncated_to_48(client, link):
    r = hit(client, f"/r/{link.code}", ip="2001:db8:abcd:12:34::1")
    assert r.status_code == 302
    (click,) = clicks()
    assert click.ip_truncated == "2001:db8:abcd::"
    assert click.ip_hash and len(click.ip_hash) == 64


@pytest.mark.parametrize("param", ["gclid", "fbclid", "msclkid", "ttclid", "li_fat_id", "twclid"])
def test_paid_ads_click_ids_are_noted(client, link, param):
    hit(client, f"/r/{link.code}?{param}=Cj0KCQ123&sub1=x")
    (click,) = clicks()
    assert click.paid_ads_param == param


def test_referer_and_user_agent_are_kept(client, link):
    hit(client, f"/r/{link.code}", headers={"Referer": "https://blog.example/post"})
    (click,) = clicks()
    assert click.referer == "https://blog.example/post" and click.user_agent == BROWSER
    assert click.paid_ads_param is None


@pytest.mark.parametrize("path", [
    "/r/nope1234", "/r/%00", "/r/abc%00def", "/r/" + "a" * 33, "/r/" + "b" * 5000, "/r/<script>",
    "/r/..%2f..%2fetc", "/r/a%20b", "/r/%ff%fe", "/r/%E2%9C%93", "/r/a.b",
])
def test_unknown_or_odd_codes_are_404_pages(client, link, path):
    r = hit(client, path, headers={"Accept": "text/html"})
    assert r.status_code == 404
    assert r.mimetype == "text/html" and "Location" not in r.headers
    assert clicks() == []


def test_disabled_link_is_404(client, shop, link):
    services.set_link_status(shop.merchant.id, link.id, "disabled")
    assert hit(client, f"/r/{link.code}").status_code == 404
    assert clicks() == []


def test_archived_offer_is_404(client, shop, link):
    from partnernet.offers.services import update_offer

    update_offer(shop.merchant.id, link.offer_id, {"status": "archived"})
    from partnernet.links import tracking

    tracking.forget_link(link.code)
    assert hit(client, f"/r/{link.code}").status_code == 404


def test_long_odd_headers_and_query_never_500(client, link):
    r = hit(client, f"/r/{link.code}?sub1=%00&sub2=%ff%fe&sub3=" + "%E2%9C%93" * 200,
            ua="\x00" * 600, headers={"Referer": "r" * 5000, "Cookie": "pn_vid=" + "%00" * 40})
    assert r.status_code == 302
    (click,) = clicks()
    assert click.user_agent is None and click.is_bot
    assert len(click.referer) == 1024 and click.sub3 == "✓" * 200


def test_resolve_click_finds_a_click_right_after_the_redirect(client, link):
    r = hit(client, f"/r/{link.code}?sub2=campaign-7")
    click_id = parse_qs(urlsplit(r.headers["Location"]).query)["click_id"][0]
    found = services.resolve_click(click_id)  # before any flush
    assert found is not None and found.id == click_id
    assert (found.merchant_id, found.offer_id, found.partner_id) == (
        link.merchant_id, link.offer_id, link.partner_id)
    assert found.sub2 == "campaign-7" and found.visitor_id and not found.is_bot
    assert found.created_at.tzinfo is not None
    # the id names its click's UTC day: the look-up tries that day's partition first
    from partnernet import tokens

    start, end = tokens.click_id_day(click_id)
    assert start <= found.created_at < end and end - start == timedelta(days=1)
    assert services.resolve_click(click_id.upper()).id == click_id
    clicks()
    assert services.resolve_click(click_id).id == click_id  # and after the flush
    assert services.resolve_click("0" * 32) is None
    assert services.resolve_click("not-a-click-id-but-thirty-two-ch") is None


def test_clicks_for_visitor_oldest_first(client, shop, partner):
    link = make_link(shop, partner, attribution_model="first_click")  # the offers that read it
    other = make_link(shop, partner, attribution_model="first_click")
    start = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    for minutes, code in ((0, link.code), (10, other.code), (20, link.code), (30, link.code)):
        clock.freeze(start + timedelta(minutes=minutes))
        hit(client, f"/r/{code}")
        if minutes == 20:
            clicks()  # some in the database, some (with Redis) still buffered
    visitor = client.get_cookie("pn_vid").value
    found = services.clicks_for_visitor(visitor, link.offer_id, start + timedelta(minutes=5))
    assert [c.created_at for c in found] == [start + timedelta(minutes=20), start + timedelta(minutes=30)]
    assert all(c.offer_id == link.offer_id for c in found)
    assert services.clicks_for_visitor("nobody-at-all-here", link.offer_id, start) == []


def test_switching_an_offer_to_first_click_indexes_its_next_buffered_clicks(client, shop, partner, link):
    """Last-click offers never read the visitor's buffered clicks, so the redirect does not file
    them by visitor; once the offer attributes to the first click, the next click is filed (the
    change leaves the link cache on commit), and the visitor's clicks are all found."""
    hit(client, f"/r/{link.code}")
    visitor = client.get_cookie("pn_vid").value
    since = clock.now() - timedelta(minutes=1)
    if buffer.click_redis() is not None:  # not filed: found once flushed
        assert services.clicks_for_visitor(visitor, link.offer_id, since) == []
    from partnernet.offers.models import Offer

    db.session.get(Offer, link.offer_id).attribution_model = "first_click"
    db.session.commit()
    hit(client, f"/r/{link.code}")
    found = services.clicks_for_visitor(visitor, link.offer_id, since)
    assert len(found) == (1 if buffer.click_redis() is not None else 2)  # buffered: the new one
    assert len(clicks()) == 2
    assert len(services.clicks_for_visitor(visitor, link.offer_id, since)) == 2
