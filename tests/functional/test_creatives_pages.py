"""Creatives in the panels: the merchant's library, split test and fatigue pages, the partner's
snippets; other tenants get 404, forms need their CSRF token."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import g
from PIL import Image
from sqlalchemy import select

from partnernet import clock
from partnernet.creatives.models import Creative, LandingVariant
from partnernet.extensions import db
from tests.factories import auth, make_click_row, make_merchant, make_offer, make_partner

PASSWORD = "correct horse battery"


def login(app: Any, email: str) -> Any:
    g.pop("_login_user", None)
    client = app.test_client()
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302
    return client


def png(w: int = 300, h: int = 250) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def shop(app: Any, tmp_path: Any) -> Any:
    app.config["CREATIVES_DIR"] = str(tmp_path / "creatives")
    m = make_merchant("Pages Shop", password=PASSWORD)
    offer = make_offer(m.merchant.id, name="Spring Sale")
    return m, offer


def creatives(offer_id: int) -> list[tuple[str, str]]:
    db.session.expire_all()
    return [(c.name, c.status) for c in db.session.scalars(
        select(Creative).where(Creative.offer_id == offer_id).order_by(Creative.id))]


def test_library_upload_approve_and_archive(app: Any, shop: Any, tmp_path: Any) -> None:
    m, offer = shop
    client = login(app, m.owner.email)
    index = client.get("/admin/creatives")
    assert index.status_code == 200 and "Spring Sale" in index.get_data(as_text=True)
    page = client.get(f"/admin/creatives/offers/{offer.id}")
    assert page.status_code == 200 and "Add a creative" in page.get_data(as_text=True)
    r = client.post(f"/admin/creatives/offers/{offer.id}", data={
        "kind": "text_link", "name": "Save 20% link", "body": "Save 20% this spring"})
    assert r.status_code == 302
    r = client.post(f"/admin/creatives/offers/{offer.id}", data={
        "kind": "banner", "name": "Leaderboard", "body": "Spring banner", "publish": "1",
        "image": (io.BytesIO(png()), "b.png")}, content_type="multipart/form-data")
    assert r.status_code == 302
    assert creatives(offer.id) == [("Save 20% link", "pending"), ("Leaderboard", "active")]
    body = client.get(f"/admin/creatives/offers/{offer.id}").get_data(as_text=True)
    assert "300×250 png" in body and "Approve" in body
    text_id = db.session.scalar(select(Creative.id).where(Creative.name == "Save 20% link"))
    r = client.post(f"/admin/creatives/offers/{offer.id}/status",
                    data={"creative_id": text_id, "action": "approve"})
    assert r.status_code == 302
    client.post(f"/admin/creatives/offers/{offer.id}/status",
                data={"creative_id": text_id, "action": "archive"})
    assert creatives(offer.id) == [("Save 20% link", "archived"), ("Leaderboard", "active")]


def test_library_refuses_svg_and_empty_names_with_a_message_and_stores_nothing(
        app: Any, shop: Any, tmp_path: Any) -> None:
    m, offer = shop
    client = login(app, m.owner.email)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    r = client.post(f"/admin/creatives/offers/{offer.id}", data={
        "kind": "banner", "name": "Evil", "image": (io.BytesIO(svg), "x.svg")},
        content_type="multipart/form-data")
    assert r.status_code == 422 and "SVG is not accepted" in r.get_data(as_text=True)
    r = client.post(f"/admin/creatives/offers/{offer.id}",
                    data={"kind": "text_link", "name": "", "body": "x"})
    assert r.status_code == 400 and "Give the creative a name" in r.get_data(as_text=True)
    assert creatives(offer.id) == []
    assert not (tmp_path / "creatives").exists() or not list((tmp_path / "creatives").iterdir())


def test_split_page_shows_rate_interval_epc_and_verdict_then_ends_keeping_the_winner(
        app: Any, shop: Any) -> None:
    m, offer = shop
    client = login(app, m.owner.email)
    bad = client.post(f"/admin/creatives/offers/{offer.id}/split",
                      data={"variants": "A | https://shop.example/a | 1\n"
                                        "B | https://elsewhere.example.net/b | 0"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "1.weight" in text and "1.url" in text
    ok = client.post(f"/admin/creatives/offers/{offer.id}/split",
                     data={"variants": "A | https://shop.example/a | 1\nB | https://shop.example/b | 3"})
    assert ok.status_code == 302
    a, b = db.session.scalars(select(LandingVariant).where(LandingVariant.offer_id == offer.id)
                              .order_by(LandingVariant.id)).all()
    partner = make_partner(m.merchant.id)
    clicks = [make_click_row(offer, partner.id, variant_id=a.id) for _ in range(4)]
    make_click_row(offer, partner.id, variant_id=b.id)
    answer = client.get("/postback", query_string={"token": m.postback_token, "click_id": clicks[0].id,
                                                   "order_id": "S-1", "amount": "50.00"})
    assert answer.status_code == 200, answer.get_json()
    page = client.get(f"/admin/creatives/offers/{offer.id}/split").get_data(as_text=True)
    # A: 1 of 4 converted. Wilson 95%: centre (0.25 + 1.9208/4)/(1 + 3.8415/4) = 0.3725,
    # half 1.96·√(0.25·0.75/4 + 3.8415/64)/1.9604 = 0.3269 → 4.56%–69.94%. EPC 10% of 50.00 / 4 clicks.
    assert "25.00% (4.56–69.94%)" in page
    assert "1.25" in page
    assert "not enough data yet" in page
    assert page.count("End test keeping this") == 2
    r = client.post(f"/admin/creatives/offers/{offer.id}/split/end", data={"winner_id": b.id})
    assert r.status_code == 302
    db.session.expire_all()
    assert db.session.get(type(offer), offer.id).landing_url == "https://shop.example/b"


def test_fatigue_page_lists_flagged_creatives_with_their_ctr_curve(app: Any, shop: Any) -> None:
    from partnernet.creatives.models import Impression
    from partnernet.creatives.services_fatigue import flag_fatigued

    m, offer = shop
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    clock.freeze(now - timedelta(days=40))
    r = app.test_client().post(f"/api/v1/offers/{offer.id}/creatives", headers=auth(m.api_key),
                               json={"kind": "text_link", "name": "Old faithful", "body": "Shop now"})
    cid = r.get_json()["id"]
    clock.freeze(now)
    partner = make_partner(m.merchant.id)
    day = now - timedelta(days=3)
    db.session.add_all([Impression(id=f"imp{i:028d}", created_at=day, link_id=1, merchant_id=m.merchant.id,
                                   offer_id=offer.id, partner_id=partner.id, creative_id=cid, is_unique=True,
                                   is_bot=False) for i in range(8)])
    db.session.commit()
    make_click_row(offer, partner.id, at=day, creative_id=cid)
    flag_fatigued()
    page = login(app, m.owner.email).get("/admin/creatives/fatigue")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "Old faithful" in body and "due for a refresh" in body
    assert "<polyline" in body
    assert f"<td>{day.date().isoformat()}</td><td>8</td><td>1</td><td>12.50%</td>" in body


def test_settings_page_saves_and_refuses_bad_values(app: Any, shop: Any) -> None:
    m, _ = shop
    client = login(app, m.owner.email)
    assert client.get("/admin/creatives/settings").status_code == 200
    r = client.post("/admin/creatives/settings", data={"fatigue_drop_percent": "150", "refresh_days": "14",
                                                       "variant_hosts": ""})
    assert r.status_code == 400 and "from 1 to 99" in r.get_data(as_text=True)
    r = client.post("/admin/creatives/settings", data={"fatigue_drop_percent": "20", "refresh_days": "14",
                                                       "variant_hosts": "promo.example.org\n"})
    assert r.status_code == 302
    got = app.test_client().get("/api/v1/creatives/settings", headers=auth(m.api_key)).get_json()
    assert got == {"fatigue_drop_percent": 20, "refresh_days": 14, "variant_hosts": ["promo.example.org"]}


def test_portal_shows_approved_creatives_with_the_partners_own_link_and_pixel(app: Any, shop: Any) -> None:
    m, offer = shop
    key = auth(m.api_key)
    api = app.test_client()
    live = api.post(f"/api/v1/offers/{offer.id}/creatives", headers=key,
                    json={"kind": "text_link", "name": "Live link",
                          "body": "Spring <deals> [20%]"}).get_json()
    api.post(f"/api/v1/offers/{offer.id}/creatives", headers=key,
             json={"kind": "email", "name": "Draft mail", "body": "Hello", "status": "pending"})
    me = make_partner(m.merchant.id, email="me@p.example", password=PASSWORD)
    other = make_partner(m.merchant.id, email="other@p.example", password=PASSWORD)
    mine = api.post("/api/v1/links", headers=key, json={"offer_id": offer.id, "partner_id": me.id}).get_json()
    theirs = api.post("/api/v1/links", headers=key,
                      json={"offer_id": offer.id, "partner_id": other.id}).get_json()
    client = login(app, "me@p.example")
    page = client.get("/portal/creatives")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Live link" in body and "Draft mail" not in body
    base = app.config["BASE_URL"]
    assert f"{base}/r/{mine['code']}?cr={live['id']}" in body
    assert f"{base}/i/{mine['code']}/{live['id']}.gif" in body
    assert theirs["code"] not in body
    assert "Spring &lt;deals&gt;" in body and "<deals>" not in body       # escaped, even inside snippets
    # The markdown snippet's link text is HTML-escaped (markdown passes HTML through) and keeps its
    # brackets from closing the link early; the page shows that text escaped once more.
    assert f"[Spring &amp;lt;deals&amp;gt; \\[20%\\]]({base}/r/{mine['code']}?cr={live['id']})" in body
    assert client.get(f"/portal/creatives/links/{mine['id']}").status_code == 200
    assert client.get(f"/portal/creatives/links/{theirs['id']}").status_code == 404


def test_other_merchants_get_404_and_change_nothing(app: Any, shop: Any) -> None:
    m, offer = shop
    cid = app.test_client().post(f"/api/v1/offers/{offer.id}/creatives", headers=auth(m.api_key), json={
        "kind": "text_link", "name": "Victim's", "body": "x", "status": "pending"}).get_json()["id"]
    intruder = make_merchant("Intruder", password=PASSWORD)
    own = make_offer(intruder.merchant.id)
    client = login(app, intruder.owner.email)
    for url in (f"/admin/creatives/offers/{offer.id}", f"/admin/creatives/offers/{offer.id}/split"):
        assert client.get(url).status_code == 404
    assert client.post(f"/admin/creatives/offers/{offer.id}/status",
                       data={"creative_id": cid, "action": "approve"}).status_code == 404
    # The victim's creative id through the intruder's own offer: still 404.
    assert client.post(f"/admin/creatives/offers/{own.id}/status",
                       data={"creative_id": cid, "action": "approve"}).status_code == 404
    assert client.post(f"/admin/creatives/offers/{offer.id}/split/end",
                       data={"winner_id": 1}).status_code == 404
    assert "Victim's" not in client.get("/admin/creatives").get_data(as_text=True)
    assert creatives(offer.id) == [("Victim's", "pending")]


def test_forms_refuse_a_post_without_its_csrf_token(app_factory: Any) -> None:
    csrf_app = app_factory(WTF_CSRF_ENABLED=True)
    with csrf_app.app_context():
        m = make_merchant("Csrf Shop", password=PASSWORD)
        offer = make_offer(m.merchant.id)
        client = csrf_app.test_client()
        login_page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login_page)
        assert client.post("/login", data={"email": m.owner.email, "password": PASSWORD,
                                           "csrf_token": token.group(1)}).status_code == 302
        data = {"kind": "text_link", "name": "No token", "body": "x"}
        assert client.post(f"/admin/creatives/offers/{offer.id}", data=data).status_code == 400
        assert client.post("/admin/creatives/settings", data={"refresh_days": "3"}).status_code == 400
        g.pop("csrf_token", None)  # the test's long-lived app context would hand out the pre-login token
        page = client.get(f"/admin/creatives/offers/{offer.id}").get_data(as_text=True)
        form_token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        ok = client.post(f"/admin/creatives/offers/{offer.id}", data={**data, "csrf_token": form_token})
        assert ok.status_code == 302, ok.get_data(as_text=True)[-1500:]
        assert creatives(offer.id) == [("No token", "pending")]
        g.pop("_login_user", None)
        db.session.remove()
