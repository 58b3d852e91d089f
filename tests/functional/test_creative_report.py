"""Report by creative: impressions, CTR, commission (conversions + CPM share) and CPM, hand-checked."""

from datetime import UTC, date, datetime

from partnernet import clock, tokens
from partnernet.extensions import db
from tests.commission_helpers import Shop
from tests.factories import make_merchant

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = date(2026, 3, 9)
AT = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def impressions(shop, creative_id, n, **flags):
    from partnernet.creatives.models import Impression

    db.session.add_all([Impression(id=tokens.new_click_id(), created_at=AT, link_id=1,
                                   merchant_id=shop.merchant_id, offer_id=shop.offer.id,
                                   partner_id=shop.partner.id, creative_id=creative_id,
                                   is_unique=flags.get("is_unique", True), is_bot=flags.get("is_bot", False))
                        for _ in range(n)])
    db.session.commit()


def test_report_by_creative_matches_hand_computed_figures(client):
    from partnernet.commissions.cpm import accrue_cpm

    clock.freeze(NOW)
    s = Shop(client, plans=[{"event": "sale", "type": "cps", "percent": "10"},
                            {"event": "impression", "type": "cpm", "amount": "2.00"}])
    make = lambda name: client.post(f"/api/v1/offers/{s.offer.id}/creatives", headers=s.auth(),  # noqa: E731
                                    json={"kind": "text_link", "name": name, "body": name}).get_json()["id"]
    a, b = make("A"), make("B")
    impressions(s, a, 40)
    impressions(s, a, 10, is_unique=False)
    impressions(s, a, 5, is_bot=True, is_unique=False)
    impressions(s, b, 7)
    impressions(s, None, 53)          # the plain pixel: paid by CPM, no creative's
    clicks = [s.click(age=NOW - AT, creative_id=a) for _ in range(3)]
    s.click(age=NOW - AT, creative_id=a, is_bot=True)
    s.sale("80.00", click=clicks[0])  # 10% = 8.00
    # CPM: 100 unique views × 2.00 / 1,000 = 0.20 paid to the partner for the day.
    assert accrue_cpm(DAY) == 1
    report = client.get(f"/api/v1/creatives/report?offer_id={s.offer.id}", headers=s.auth())
    assert report.status_code == 200
    rows = {r["creative_id"]: r for r in report.get_json()["items"]}
    # A: commission 8.00 + 40 × 0.002 = 8.08; CTR 3 / 40 = 0.0750; CPM 8.08 × 1000 / 40 = 202.00.
    assert {k: rows[a][k] for k in ("impressions", "unique_impressions", "clicks", "ctr", "commission",
                                    "cpm", "currency")} == {
        "impressions": 55, "unique_impressions": 40, "clicks": 3, "ctr": "0.0750", "commission": "8.08",
        "cpm": "202.00", "currency": "USD"}
    # B: 7 × 0.002 = 0.014 → 0.01 shown; its CPM from the exact worth is the plan's 2.00, not 1.43.
    assert {k: rows[b][k] for k in ("impressions", "clicks", "ctr", "commission", "cpm")} == {
        "impressions": 7, "clicks": 0, "ctr": "0.0000", "commission": "0.01", "cpm": "2.00"}
    one = client.get(f"/api/v1/creatives/{a}/stats", headers=s.auth())
    assert one.status_code == 200 and one.get_json() == rows[a]
    before = client.get(f"/api/v1/creatives/{a}/stats?to=2026-03-09T00:00:00Z", headers=s.auth()).get_json()
    assert (before["impressions"], before["clicks"], before["commission"], before["cpm"]) == \
        (0, 0, "0.00", None)


def test_stats_of_another_merchants_creative_answer_404(client):
    s = Shop(client)
    cid = client.post(f"/api/v1/offers/{s.offer.id}/creatives", headers=s.auth(),
                      json={"kind": "text_link", "name": "x", "body": "x"}).get_json()["id"]
    other = make_merchant()
    r = client.get(f"/api/v1/creatives/{cid}/stats", headers={"Authorization": f"Bearer {other.api_key}"})
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "creative_not_found"
    assert client.get("/api/v1/creatives/report", headers={"Authorization": f"Bearer {other.api_key}"}
                      ).get_json()["items"] == []
