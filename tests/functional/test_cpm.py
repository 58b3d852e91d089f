"""CPM plans: a daily job pays unique, non-bot impressions per 1,000, carrying fractions of a cent."""

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from partnernet import clock, tokens
from partnernet.extensions import db
from tests.commission_helpers import Shop, count
from tests.factories import make_partner

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY1, DAY2, DAY3 = date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)


def impressions(offer, partner_id, day, n, **fields):
    """``n`` impressions of the offer by the partner at noon of ``day``; commits."""
    from partnernet.creatives.models import Impression

    at = datetime(day.year, day.month, day.day, 12, 0, tzinfo=UTC)
    db.session.add_all([Impression(id=tokens.new_click_id(), created_at=at, link_id=1,
                                   merchant_id=offer.merchant_id, offer_id=offer.id,
                                   partner_id=partner_id, creative_id=None,
                                   is_unique=fields.get("is_unique", True),
                                   is_bot=fields.get("is_bot", False)) for _ in range(n)])
    db.session.commit()


def commissions():
    from partnernet.commissions.models import Commission

    db.session.expire_all()
    return db.session.scalars(select(Commission).order_by(Commission.id)).all()


def test_offer_accepts_a_cpm_plan_with_an_amount(client):
    s = Shop(client, plans=[{"event": "impression", "type": "cpm", "amount": "2.50"}])
    r = client.get(f"/api/v1/offers/{s.offer.id}", headers=s.auth())
    assert r.status_code == 200
    [plan] = r.get_json()["plans"]
    assert (plan["type"], plan["amount"]) == ("cpm", "2.50")
    bad = client.post("/api/v1/offers", headers=s.auth(), json={
        "name": "x", "landing_url": "https://shop.example/", "currency": "USD",
        "plans": [{"event": "impression", "type": "cpm", "percent": "5"}]})
    assert bad.status_code in (400, 422) and bad.get_json()["error"]["code"]


def test_cpm_pays_whole_cents_and_carries_the_fraction_across_days(client, app):
    """7.77 USD per 1,000 = 777 cents per 1,000 impressions = 0.777 cent each.
    Day 1: 3 × 0.777 = 2.331 → pays 2, carries 0.331.
    Day 2: 1 → 0.331 + 0.777 = 1.108 → pays 1, carries 0.108.
    Day 3: 2 → 0.108 + 1.554 = 1.662 → pays 1, carries 0.662.
    Total 4 = floor(6 × 0.777 = 4.662): nothing lost, nothing paid early."""
    from partnernet.commissions.cpm import accrue_cpm
    from partnernet.creatives.models import CpmAccrual

    clock.freeze(NOW)
    s = Shop(client, plans=[{"event": "impression", "type": "cpm", "amount": "7.77"}])
    impressions(s.offer, s.partner.id, DAY1, 3)
    impressions(s.offer, s.partner.id, DAY1, 4, is_bot=True)       # never paid
    impressions(s.offer, s.partner.id, DAY1, 5, is_unique=False)   # repeat views: not paid
    impressions(s.offer, s.partner.id, DAY2, 1)
    impressions(s.offer, s.partner.id, DAY3, 2)
    assert [accrue_cpm(d) for d in (DAY1, DAY2, DAY3)] == [1, 1, 1]
    assert [(c.kind, c.amount_minor, c.currency, c.status, c.conversion_id) for c in commissions()] == [
        ("cpm", 2, "USD", "pending", None), ("cpm", 1, "USD", "pending", None),
        ("cpm", 1, "USD", "pending", None)]
    rows = db.session.scalars(select(CpmAccrual).order_by(CpmAccrual.day)).all()
    assert [(r.day, r.impressions, r.value_milli, r.amount_minor) for r in rows] == [
        (DAY1, 3, 2331, 2), (DAY2, 1, 777, 1), (DAY3, 2, 1554, 1)]
    assert sum(c.amount_minor for c in commissions()) == 6 * 777 // 1000


def test_cpm_rerun_is_idempotent_and_the_job_is_registered(client, app):
    from partnernet.cli import main
    from partnernet.commissions.cpm import accrue_cpm
    from partnernet.commissions.models import Commission

    clock.freeze(NOW)
    s = Shop(client, plans=[{"event": "impression", "type": "cpm", "amount": "2.50"}])
    impressions(s.offer, s.partner.id, DAY3, 1234)                # yesterday: 1,234 × 0.25 = 308.5 cents
    impressions(s.offer, s.partner.id, NOW.date(), 10)            # today's: accrued tomorrow
    assert accrue_cpm() == 1
    assert accrue_cpm() == 0
    result = app.test_cli_runner().invoke(main, ["jobs", "run", "accrue-cpm"])
    assert result.exit_code == 0, result.output
    [c] = commissions()
    assert (c.amount_minor, c.offer_id, c.partner_id) == (308, s.offer.id, s.partner.id)
    assert c.hold_until > NOW                                     # held like any commission
    assert count(Commission) == 1
    from partnernet.commissions.services import approve_matured
    from tests.commission_helpers import assert_ledger_ok, balance

    clock.freeze(c.hold_until + timedelta(hours=1))
    approve_matured()
    assert balance(s.merchant_id, s.partner.id) == 308          # credited to the ledger once
    assert_ledger_ok()


def test_cpm_day_below_a_cent_creates_no_commission_but_carries(client):
    from partnernet.commissions.cpm import accrue_cpm

    clock.freeze(NOW)
    s = Shop(client, plans=[{"event": "impression", "type": "cpm", "amount": "0.40"}])
    impressions(s.offer, s.partner.id, DAY1, 2)     # 2 × 0.04 = 0.08 cent
    impressions(s.offer, s.partner.id, DAY2, 24)    # 0.08 + 0.96 = 1.04 → 1 cent
    assert accrue_cpm(DAY1) == 0
    assert accrue_cpm(DAY1) == 0
    assert commissions() == []
    assert accrue_cpm(DAY2) == 1
    assert [c.amount_minor for c in commissions()] == [1]


def test_cpm_per_partner_with_override_and_zero_decimal_currency(client):
    from partnernet.commissions.cpm import accrue_cpm

    clock.freeze(NOW)
    s = Shop(client, currency="JPY", plans=[{"event": "impression", "type": "cpm", "amount": "150"}])
    other = make_partner(s.merchant_id)
    r = client.post(f"/api/v1/offers/{s.offer.id}/overrides", headers=s.auth(),
                    json={"partner_id": other.id, "event": "impression", "amount": "1000"})
    assert r.status_code == 201, r.get_json()
    impressions(s.offer, s.partner.id, DAY3, 7)     # 7 × 0.15 yen = 1.05 → 1 yen
    impressions(s.offer, other.id, DAY3, 3)         # override: 3 × 1 yen = 3 yen
    assert accrue_cpm(DAY3) == 2
    got = sorted((c.partner_id, c.amount_minor, c.currency) for c in commissions())
    assert got == sorted([(s.partner.id, 1, "JPY"), (other.id, 3, "JPY")])


def test_cpm_and_cpc_on_one_offer_accrue_side_by_side(client):
    from partnernet.commissions.cpc import accrue_cpc
    from partnernet.commissions.cpm import accrue_cpm

    clock.freeze(NOW)
    s = Shop(client, plans=[{"event": "impression", "type": "cpm", "amount": "5.00"},
                            {"event": "click", "type": "cpc", "amount": "0.10"}])
    impressions(s.offer, s.partner.id, DAY3, 200)   # 200 × 0.5 cent = 100 cents
    s.click(age=NOW - datetime(2026, 3, 9, 12, 0, tzinfo=UTC))
    assert accrue_cpm() == 1
    assert accrue_cpc() == 1
    assert sorted((c.kind, c.amount_minor) for c in commissions()) == [("cpc", 10), ("cpm", 100)]
