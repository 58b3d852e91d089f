"""Reports against a small hand-checked data set: every number of the report is asserted.

The data (two days, two partners, clicks with a duplicate and a bot, sales in USD and
EUR, a lead, a held and a rejected commission, a refund and a conversion that arrive
after the first rollup) is inserted as rows: the redirect and postback are other
features' business, the report only reads their tables.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from partnernet import clock
from tests.factories import auth, make_merchant, make_offer, make_partner

D1 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
D2 = D1 + timedelta(days=1)


# -- row factories ---------------------------------------------------------------------

def add_click(offer, partner_id, at, *, sub1=None, unique=True, bot=False, country=None,
              visitor=None, sub2=None):
    from partnernet import tokens
    from partnernet.extensions import db
    from partnernet.links.models import Click, Link

    link = Link(code=tokens.new_code(10), merchant_id=offer.merchant_id, offer_id=offer.id,
                partner_id=partner_id, sub1=sub1)
    db.session.add(link)
    db.session.flush()
    click = Click(id=tokens.new_click_id(), link_id=link.id, merchant_id=offer.merchant_id,
                  offer_id=offer.id, partner_id=partner_id, created_at=at, sub1=sub1, sub2=sub2,
                  is_unique=unique and not bot, is_bot=bot, country=country, visitor_id=visitor)
    db.session.add(click)
    db.session.commit()
    return click


_orders = iter(range(1, 10_000))


def add_conversion(offer, partner_id, at, *, click=None, event="sale", amount=None,
                   currency="USD", commission=None, commission_status="approved",
                   customer_id=None, commission_currency=None, arrived=None):
    """A conversion row dated ``at`` (stored at ``arrived``, default the same time) and,
    when ``commission`` is given, its commission."""
    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db

    with clock.frozen(arrived or at):
        conv = Conversion(merchant_id=offer.merchant_id, offer_id=offer.id, partner_id=partner_id,
                          click_id=click.id if click else None, event=event,
                          order_id=f"o-{next(_orders)}", amount_minor=amount, currency=currency,
                          customer_id=customer_id, created_at=at)
        db.session.add(conv)
        db.session.flush()
        comm = None
        if commission is not None:
            comm = Commission(merchant_id=offer.merchant_id, partner_id=partner_id,
                              offer_id=offer.id, conversion_id=conv.id, amount_minor=commission,
                              currency=commission_currency or currency, status=commission_status,
                              hold_until=at + timedelta(days=30), created_at=at)
            db.session.add(comm)
        db.session.commit()
    return conv, comm


def refund(conv, comm, at, refunded_minor, reversed_minor):
    from partnernet.extensions import db

    with clock.frozen(at):
        conv.refunded_minor = refunded_minor
        conv.status = "refunded" if refunded_minor == conv.amount_minor else "partially_refunded"
        comm.reversed_minor = reversed_minor
        comm.status = "reversed" if reversed_minor == comm.amount_minor else comm.status
        db.session.commit()


def run_rollup_at(at):
    from partnernet.reports.rollup import run_rollup

    with clock.frozen(at):
        return run_rollup(settle_seconds=0)


def report(client, key, **query):
    query.setdefault("from", "2026-03-02")
    query.setdefault("to", "2026-03-03")
    resp = client.get("/api/v1/reports", query_string=query, headers=auth(key))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json() if query.get("format") != "csv" else resp.get_data(as_text=True)


# -- the golden data set ---------------------------------------------------------------

@pytest.fixture
def golden(app):
    from partnernet.accounts.services import create_partner

    shop = make_merchant(name="Golden shop")
    mid = shop.merchant.id
    offer = make_offer(mid)
    p1, _ = create_partner(mid, email="ig@creator.example", name="Insta", channel_type="influencer")
    p2, _ = create_partner(mid, email="news@letter.example", name="News", channel_type="email")
    h = timedelta(hours=1)
    # D1, partner 1: three unique clicks and a repeat on sub1=ig (US), one bot without sub1.
    ig = [add_click(offer, p1.id, D1 + 8 * h, sub1="ig", country="US") for _ in range(3)]
    add_click(offer, p1.id, D1 + 9 * h, sub1="ig", unique=False, country="US")
    add_click(offer, p1.id, D1 + 9 * h, bot=True)
    # D1, partner 2: two unique clicks from Germany with sub2=x.
    nl = [add_click(offer, p2.id, D1 + 8 * h, country="DE", sub2="x") for _ in range(2)]
    # D2: one unique click each.
    ig2 = add_click(offer, p1.id, D2 + 8 * h, sub1="ig", country="US")
    nl2 = add_click(offer, p2.id, D2 + 8 * h, country="DE")
    add_conversion(offer, p1.id, D1 + 10 * h, click=ig[0], amount=10000, commission=1000)
    c2 = add_conversion(offer, p1.id, D1 + 11 * h, click=ig[1], amount=5000, commission=500)
    add_conversion(offer, p2.id, D1 + 12 * h, click=nl[0], amount=8000, currency="EUR",
                   commission=800, commission_status="held")
    add_conversion(offer, p2.id, D1 + 13 * h, click=nl[1], event="lead", commission=200,
                   commission_status="pending")
    add_conversion(offer, p1.id, D2 + 9 * h, click=ig2, amount=4000, commission=400,
                   commission_status="rejected")
    return {"shop": shop, "offer": offer, "p1": p1, "p2": p2, "c2": c2, "nl2": nl2}


def late_changes(g):
    """After the first rollup: C2 is refunded in full and a late sale arrives for day 2."""
    refund(*g["c2"], D2 + timedelta(days=5), 5000, 500)
    add_conversion(g["offer"], g["p2"].id, D2 + timedelta(hours=20), click=g["nl2"], amount=3000,
                   commission=300, arrived=D2 + timedelta(days=5))


def row(**values):
    base = {"currency": None, "clicks": 0, "unique_clicks": 0, "bot_clicks": 0, "conversions": 0,
            "sales": 0, "leads": 0, "conversion_rate": None, "revenue": None, "refunds": None,
            "refunded_conversions": 0, "commission": None, "epc": None,
            "revenue_per_click": None, "cpa": None, "cpl": None, "roas": None,
            "reversal_rate": None, "held": 0, "rejected": 0}
    base.update(values)
    return base


def expected_day_partner(g, *, late: bool):
    p1, p2 = g["p1"].id, g["p2"].id
    d1p1 = row(day="2026-03-02", partner_id=p1, currency="USD", clicks=5, unique_clicks=3,
               bot_clicks=1, conversions=2, sales=2, conversion_rate="66.67", revenue="150.00",
               refunds="50.00" if late else "0.00", refunded_conversions=1 if late else 0,
               commission="10.00" if late else "15.00",
               epc="2.0000" if late else "3.0000", revenue_per_click="30.0000",
               cpa="5.00" if late else "7.50", roas="15.00" if late else "10.00",
               reversal_rate="33.33" if late else "0.00")
    d1p2_eur = row(day="2026-03-02", partner_id=p2, currency="EUR", clicks=2, unique_clicks=2,
                   conversions=1, sales=1, conversion_rate="50.00", revenue="80.00",
                   refunds="0.00", commission="8.00", epc="4.0000", revenue_per_click="40.0000",
                   cpa="8.00", roas="10.00", reversal_rate="0.00", held=1)
    d1p2_usd = row(day="2026-03-02", partner_id=p2, currency="USD", clicks=2, unique_clicks=2,
                   conversions=1, leads=1, conversion_rate="50.00", revenue="0.00",
                   refunds="0.00", commission="2.00", epc="1.0000", revenue_per_click="0.0000",
                   cpl="2.00", roas="0.00", reversal_rate="0.00")
    d2p1 = row(day="2026-03-03", partner_id=p1, currency="USD", clicks=1, unique_clicks=1,
               conversions=1, sales=1, conversion_rate="100.00", revenue="40.00", refunds="0.00",
               commission="0.00", epc="0.0000", revenue_per_click="40.0000", cpa="0.00",
               rejected=1)
    if late:
        d2p2 = row(day="2026-03-03", partner_id=p2, currency="USD", clicks=1, unique_clicks=1,
                   conversions=1, sales=1, conversion_rate="100.00", revenue="30.00",
                   refunds="0.00", commission="3.00", epc="3.0000",
                   revenue_per_click="30.0000", cpa="3.00", roas="10.00", reversal_rate="0.00")
    else:
        d2p2 = row(day="2026-03-03", partner_id=p2, clicks=1, unique_clicks=1,
                   conversion_rate="0.00")
    return sorted([d1p1, d1p2_eur, d1p2_usd, d2p1, d2p2],
                  key=lambda r: (r["day"], r["partner_id"], r["currency"] or ""))


def test_golden_report_by_day_and_partner_before_and_after_late_changes(client, golden):
    key = golden["shop"].api_key
    run_rollup_at(D2 + timedelta(days=1))
    body = report(client, key, group_by="day,partner")
    assert body["source"] == "rollup"
    assert body["items"] == expected_day_partner(golden, late=False)

    late_changes(golden)
    # Not in the rollups until the job runs again.
    assert report(client, key, group_by="day,partner")["items"] == \
        expected_day_partner(golden, late=False)
    result = run_rollup_at(D2 + timedelta(days=6))
    assert result["money_days"] == 2 and result["click_rows"] == 0
    assert report(client, key, group_by="day,partner")["items"] == \
        expected_day_partner(golden, late=True)
    # Running it again changes nothing.
    run_rollup_at(D2 + timedelta(days=6, minutes=5))
    assert report(client, key, group_by="day,partner")["items"] == \
        expected_day_partner(golden, late=True)


def test_golden_groupings_sub1_week_channel_and_raw_country(client, golden):
    key = golden["shop"].api_key
    late_changes(golden)
    run_rollup_at(D2 + timedelta(days=6))
    p1, p2 = golden["p1"].id, golden["p2"].id

    by_sub1 = report(client, key, group_by="sub1")
    assert by_sub1["source"] == "rollup"
    # sub1=ig: 5 clicks (4 on D1, 1 on D2), 4 unique; C1, C2, C5 in USD.
    # no sub1: the bot (P1) and P2's 3 clicks; C3 EUR, C4 lead and the late sale in USD.
    assert by_sub1["items"] == [
        row(sub1="ig", currency="USD", clicks=5, unique_clicks=4, conversions=3, sales=3,
            conversion_rate="75.00", revenue="190.00", refunds="50.00", refunded_conversions=1,
            commission="10.00", epc="2.0000", revenue_per_click="38.0000", cpa="3.33",
            roas="19.00", reversal_rate="33.33", rejected=1),
        row(sub1=None, currency="EUR", clicks=4, unique_clicks=3, bot_clicks=1, conversions=1,
            sales=1, conversion_rate="33.33", revenue="80.00", refunds="0.00", commission="8.00",
            epc="2.0000", revenue_per_click="20.0000", cpa="8.00", roas="10.00",
            reversal_rate="0.00", held=1),
        row(sub1=None, currency="USD", clicks=4, unique_clicks=3, bot_clicks=1, conversions=2,
            sales=1, leads=1, conversion_rate="66.67", revenue="30.00", refunds="0.00",
            commission="5.00", epc="1.2500", revenue_per_click="7.5000", cpa="3.00", cpl="2.00",
            roas="6.00", reversal_rate="0.00"),
    ]

    by_week_channel = report(client, key, group_by="week,channel")
    assert [(r["week"], r["channel"], r["currency"], r["clicks"], r["commission"])
            for r in by_week_channel["items"]] == [
        ("2026-03-02", "email", "EUR", 3, "8.00"),
        ("2026-03-02", "email", "USD", 3, "5.00"),
        ("2026-03-02", "influencer", "USD", 6, "10.00"),
    ]
    by_month = report(client, key, group_by="month")["items"]
    assert [(r["month"], r["currency"], r["clicks"], r["unique_clicks"], r["conversions"])
            for r in by_month] == [("2026-03", "EUR", 9, 7, 1), ("2026-03", "USD", 9, 7, 5)]

    by_country = report(client, key, group_by="country,partner")
    assert by_country["source"] == "raw"
    assert [(r["country"], r["partner_id"], r["currency"], r["clicks"], r["conversions"],
             r["commission"]) for r in by_country["items"]] == [
        ("DE", p2, "EUR", 3, 1, "8.00"),
        ("DE", p2, "USD", 3, 2, "5.00"),
        ("US", p1, "USD", 5, 3, "10.00"),
        (None, p1, None, 1, 0, None),
    ]
    by_sub2 = report(client, key, group_by="sub2", sub2="x")
    assert by_sub2["source"] == "raw"
    assert [(r["sub2"], r["currency"], r["clicks"], r["conversions"]) for r in by_sub2["items"]] \
        == [("x", "EUR", 2, 1), ("x", "USD", 2, 1)]


def test_raw_and_rollup_agree_on_the_golden_set(client, golden):
    """The same rows from the rollups and from the raw tables, for every grouping."""
    from partnernet.reports.rollup import Scope
    from partnernet.reports.services import build_report

    late_changes(golden)
    run_rollup_at(D2 + timedelta(days=6))
    scope = Scope(merchant_id=golden["shop"].merchant.id)
    for group_by in (["day", "partner", "sub1"], ["offer"], ["month", "channel"], ["week"]):
        rolled = build_report(scope, group_by, D1.date(), D2.date())
        raw = build_report(scope, group_by, D1.date(), D2.date(), force_source="raw")
        assert (rolled.source, raw.source) == ("rollup", "raw")
        assert raw.rows == rolled.rows and rolled.rows


def test_partner_day_rows_of_a_database_rolled_up_before_they_existed(client, golden):
    """A database whose rollups predate the kept partner × day rows answers from the
    partner-day rollups until the job's next run fills the rows, then from them: the same
    golden numbers all along."""
    from sqlalchemy import delete, func, select

    from partnernet.extensions import db
    from partnernet.reports.models import PartnerDayReportRow, RollupWatermark
    from partnernet.reports.rollup import ROWS_MARK

    key = golden["shop"].api_key
    late_changes(golden)
    run_rollup_at(D2 + timedelta(days=6))
    expected = expected_day_partner(golden, late=True)
    kept = select(func.count()).select_from(PartnerDayReportRow)
    assert db.session.scalar(kept) == len(expected)
    db.session.execute(delete(PartnerDayReportRow))
    db.session.execute(delete(RollupWatermark).where(RollupWatermark.name == ROWS_MARK))
    db.session.commit()
    assert report(client, key, group_by="day,partner")["items"] == expected
    run_rollup_at(D2 + timedelta(days=6, minutes=5))
    assert db.session.scalar(kept) == len(expected)
    assert report(client, key, group_by="day,partner")["items"] == expected
    assert report(client, key, group_by="partner,day")["items"] == sorted(
        expected, key=lambda r: (r["partner_id"], r["day"], r["currency"] or ""))


def test_csv_parses_and_matches_json(client, golden):
    key = golden["shop"].api_key
    late_changes(golden)
    run_rollup_at(D2 + timedelta(days=6))
    for group_by in ("day,partner", "sub1,offer", "country"):
        body = report(client, key, group_by=group_by)
        resp = client.get("/api/v1/reports", headers=auth(key), query_string={
            "group_by": group_by, "from": "2026-03-02", "to": "2026-03-03", "format": "csv"})
        assert resp.status_code == 200 and resp.mimetype == "text/csv"
        assert "attachment" in resp.headers["Content-Disposition"]
        parsed = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
        assert len(parsed) == len(body["items"]) > 0
        for line, item in zip(parsed, body["items"], strict=True):
            assert set(line) == set(item)
            assert line == {k: "" if v is None else str(v) for k, v in item.items()}


def test_csv_defuses_spreadsheet_formulas_in_sub_ids(client, app):
    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id)
    add_click(offer, partner.id, D1, sub1="=HYPERLINK(\"http://evil\")")
    run_rollup_at(D2)
    text = report(client, shop.api_key, group_by="sub1", format="csv")
    line = list(csv.DictReader(io.StringIO(text)))[0]
    assert line["sub1"] == "'=HYPERLINK(\"http://evil\")" and line["clicks"] == "1"


def test_partner_key_sees_only_its_own_traffic(client, golden):
    from partnernet.accounts.services import issue_api_key
    from partnernet.extensions import db

    key = issue_api_key(partner_id=golden["p2"].id)
    db.session.commit()
    late_changes(golden)
    run_rollup_at(D2 + timedelta(days=6))
    # A partner cannot widen the report to another partner's traffic.
    body = report(client, key, group_by="day,partner", partner_id=golden["p1"].id)
    everyone = expected_day_partner(golden, late=True)
    assert body["items"] == [r for r in everyone if r["partner_id"] == golden["p2"].id]


def test_other_merchant_sees_nothing_of_the_golden_set(client, golden):
    other = make_merchant(name="Other", currency="EUR")
    run_rollup_at(D2 + timedelta(days=1))
    body = report(client, other.api_key, group_by="day,partner",
                  partner_id=golden["p1"].id, offer_id=golden["offer"].id)
    assert body["items"] == []


@pytest.mark.parametrize("query, code", [
    ({"group_by": "hour"}, "validation_error"),
    ({"group_by": "day,day"}, "validation_error"),
    ({"from": "2026-03-05", "to": "2026-03-01"}, "invalid_report_range"),
    ({"from": "2020-01-01", "to": "2026-03-01"}, "invalid_report_range"),
    ({"from": "yesterday"}, "validation_error"),
    ({"format": "xlsx"}, "validation_error"),
])
def test_bad_report_queries_are_400(client, app, query, code):
    shop = make_merchant()
    resp = client.get("/api/v1/reports", query_string=query, headers=auth(shop.api_key))
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == code


def test_late_flushed_click_is_recounted_by_reconcile(client, app):
    """A click stored after the rollup passed its time is added by the daily recount."""
    from partnernet.reports.rollup import reconcile_days

    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id)
    add_click(offer, partner.id, D1 + timedelta(hours=1))
    run_rollup_at(D1 + timedelta(hours=2))
    add_click(offer, partner.id, D1 + timedelta(hours=1, minutes=30))  # flushed late
    run_rollup_at(D2 + timedelta(hours=1))
    assert report(client, shop.api_key, group_by="day")["items"][0]["clicks"] == 1
    with clock.frozen(D2 + timedelta(hours=1)):
        reconcile_days(2)
    assert report(client, shop.api_key, group_by="day")["items"][0]["clicks"] == 2
    run_rollup_at(D2 + timedelta(hours=3))
    assert report(client, shop.api_key, group_by="day")["items"][0]["clicks"] == 2


def test_rollup_job_runs_from_the_cli(app):
    from partnernet import jobs

    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    add_click(offer, make_partner(shop.merchant.id).id, clock.now() - timedelta(hours=1))
    result = app.test_cli_runner().invoke(args=["jobs", "run", "rollup"])
    assert result.exit_code == 0, result.output
    from sqlalchemy import func, select

    from partnernet.extensions import db
    from partnernet.reports.models import ClickRollup

    assert db.session.scalar(select(func.sum(ClickRollup.clicks))) == 1
    assert "rollup" in jobs.PERIODIC and "anomalies" in jobs.PERIODIC


def test_country_report_from_the_trusted_header_end_to_end(app_factory):
    """Clicks get their country from the configured CDN header at the redirect; the country
    report (raw path: the rollups hold no country) splits clicks and the conversions of those
    clicks by it, and its totals equal the rollup report's."""
    from urllib.parse import parse_qs, urlsplit

    from flask import g

    from partnernet.extensions import db

    app = app_factory(COUNTRY_HEADER="CF-IPCountry")
    with app.app_context():
        shop = make_merchant()
        offer = make_offer(shop.merchant.id)
        partner = make_partner(shop.merchant.id)
        client = app.test_client()
        made = client.post("/api/v1/links", json={"offer_id": offer.id, "partner_id": partner.id},
                           headers=auth(shop.api_key))
        assert made.status_code == 201, made.get_json()
        code = made.get_json()["code"]
        ids = {}
        with clock.frozen(D1 + timedelta(hours=8)):
            for n, country in enumerate(["DE", "DE", "FR", None, "XX"]):
                client.delete_cookie("pn_vid")
                answer = client.get(f"/r/{code}", headers={
                    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                    **({"CF-IPCountry": country} if country else {})},
                    environ_base={"REMOTE_ADDR": f"203.0.113.{n + 1}"})
                assert answer.status_code == 302
                ids.setdefault(country, []).append(
                    parse_qs(urlsplit(answer.headers["Location"]).query)["click_id"][0])
        with clock.frozen(D1 + timedelta(hours=9)):
            for order, (click, amount) in enumerate([(ids["DE"][0], "50.00"),
                                                     (ids["FR"][0], "20.00"),
                                                     (ids[None][0], "10.00")]):
                sent = client.get("/postback", query_string={
                    "token": shop.postback_token, "click_id": click, "order_id": f"C-{order}",
                    "amount": amount})
                assert sent.status_code == 200, sent.get_json()
        run_rollup_at(D2)

        def get(**query):
            query.update({"from": "2026-03-02", "to": "2026-03-03"})
            answer = client.get("/api/v1/reports", query_string=query, headers=auth(shop.api_key))
            assert answer.status_code == 200, answer.get_json()
            return answer.get_json()

        by_country = get(group_by="country")
        assert by_country["source"] == "raw"
        rows = {r["country"]: r for r in by_country["items"]}
        assert list(rows) == ["DE", "FR", None]  # "XX" (unknown) is no country
        assert [(c, rows[c]["clicks"], rows[c]["conversions"], rows[c]["revenue"])
                for c in rows] == [("DE", 2, 1, "50.00"), ("FR", 1, 1, "20.00"),
                                   (None, 2, 1, "10.00")]
        assert rows["DE"]["conversion_rate"] == "50.00"
        # The country split adds up to the rollup report of the same days.
        total = get(group_by="month")["items"]
        assert total[0]["clicks"] == sum(r["clicks"] for r in rows.values()) == 5
        assert total[0]["conversions"] == sum(r["conversions"] for r in rows.values()) == 3
        assert total[0]["revenue"] == "80.00"
        # A country filter (any case) narrows any grouping to that country's clicks.
        de = get(group_by="day", country="de")
        assert de["source"] == "raw"
        assert [(r["day"], r["clicks"], r["conversions"]) for r in de["items"]] == \
            [("2026-03-02", 2, 1)]
        g.pop("_login_user", None)
        db.session.remove()
