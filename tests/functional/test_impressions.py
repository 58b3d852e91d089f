"""The impression pixel: GIF with no-cache headers, impressions through the buffer or the database."""

import pytest
from sqlalchemy import event, func, select

from partnernet.creatives.models import Impression
from partnernet.extensions import db
from tests.factories import auth, make_merchant, make_offer, make_partner

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"


def link_code(client):
    m = make_merchant()
    offer = make_offer(m.merchant.id)
    partner = make_partner(m.merchant.id)
    r = client.post("/api/v1/links", json={"offer_id": offer.id, "partner_id": partner.id},
                    headers=auth(m.api_key))
    assert r.status_code == 201, r.get_json()
    return m, offer, r.get_json()["code"]


def flush(app):
    from partnernet.creatives.pixel import flush_impressions

    with app.app_context():
        flush_impressions()


def impressions():
    db.session.rollback()
    return db.session.execute(select(Impression.creative_id, Impression.is_unique, Impression.is_bot)
                              .order_by(Impression.created_at)).all()


def make_creative(client, m, offer):
    r = client.post(f"/api/v1/offers/{offer.id}/creatives", headers=auth(m.api_key),
                    json={"kind": "text_link", "name": "CTA", "body": "Shop now"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def test_pixel_answers_a_gif_and_counts_unique_and_bots(app, client):
    m, offer, code = link_code(client)
    cid = make_creative(client, m, offer)
    r = client.get(f"/i/{code}/{cid}.gif", headers={"User-Agent": UA})
    assert r.status_code == 200 and r.mimetype == "image/gif" and r.data.startswith(b"GIF89a")
    assert "no-store" in r.headers["Cache-Control"]
    client.get(f"/i/{code}/{cid}.gif", headers={"User-Agent": UA})
    client.get(f"/i/{code}.gif", headers={"User-Agent": UA})
    client.get(f"/i/{code}/{cid}.gif", headers={"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"})
    flush(app)
    rows = impressions()
    assert sorted(rows, key=lambda r: (r[0] or 0, r[2], not r[1])) == [
        (None, True, False), (cid, True, False), (cid, False, False), (cid, False, True)]


def test_a_creative_id_not_of_the_offer_is_recorded_as_none_and_is_no_new_unique(app, client):
    """A partner varying the creative id in the pixel URL cannot mint unique (CPM) impressions."""
    m, offer, code = link_code(client)
    other_m = make_merchant()
    other_offer = make_offer(other_m.merchant.id)
    foreign = make_creative(client, other_m, other_offer)
    for path in (f"/i/{code}.gif", f"/i/{code}/{foreign}.gif", f"/i/{code}/999999.gif"):
        assert client.get(path, headers={"User-Agent": UA}).status_code == 200
    flush(app)
    assert sorted(impressions(), key=lambda r: not r[1]) == [
        (None, True, False), (None, False, False), (None, False, False)]


def test_unknown_code_still_answers_a_gif_and_records_nothing(app, client):
    r = client.get("/i/nosuchcode.gif", headers={"User-Agent": UA})
    assert r.status_code == 200 and r.mimetype == "image/gif"
    flush(app)
    assert db.session.scalar(select(func.count()).select_from(Impression)) == 0


def test_impressions_go_to_the_database_when_redis_is_down(app, client):
    m, offer, code = link_code(client)
    real_url = app.config.get("REDIS_URL")
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    app.extensions.pop("partnernet_links", None)
    try:
        for _ in range(3):
            assert client.get(f"/i/{code}/3.gif", headers={"User-Agent": UA}).status_code == 200
    finally:
        app.config["REDIS_URL"] = real_url
        app.extensions.pop("partnernet_links", None)
    rows = impressions()
    assert [r[1] for r in rows].count(True) == 1 and len(rows) == 3


def test_creative_report_counts_impressions_by_creative(app, client):
    m, offer, code = link_code(client)
    created = client.post(f"/api/v1/offers/{offer.id}/creatives", headers=auth(m.api_key),
                          json={"kind": "text_link", "name": "CTA", "body": "Shop now"}).get_json()
    for ua in (UA, UA + " a", UA + " b"):
        client.get(f"/i/{code}/{created['id']}.gif", headers={"User-Agent": ua})
    flush(app)
    report = client.get(f"/api/v1/creatives/report?offer_id={offer.id}", headers=auth(m.api_key)).get_json()
    row = report["items"][0]
    assert row["creative_id"] == created["id"]
    assert row["impressions"] == 3 and row["unique_impressions"] == 3
    other = make_merchant()
    assert client.get("/api/v1/creatives/report", headers=auth(other.api_key)).get_json()["items"] == []


def test_cached_pixel_runs_no_sql_and_answers_head_without_a_body(app, client, redis_url):
    if not redis_url:
        pytest.skip("needs REDIS_URL (without Redis each impression is an INSERT)")
    m, offer, code = link_code(client)
    cid = make_creative(client, m, offer)
    client.get(f"/i/{code}.gif", headers={"User-Agent": UA})  # caches the link
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for i in range(10):
            r = client.get(f"/i/{code}/{cid}.gif", headers={"User-Agent": f"{UA} {i}"})
            assert r.status_code == 200 and r.data.startswith(b"GIF89a")
        head = client.head(f"/i/{code}.gif", headers={"User-Agent": UA})
        assert head.status_code == 200 and head.data == b"" and head.mimetype == "image/gif"
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert statements == []
    flush(app)
    rows = impressions()
    assert len(rows) == 12 and sum(r[0] == cid and r[1] for r in rows) == 10
    assert sum(r[2] for r in rows) == 1  # the HEAD request is flagged as a bot
