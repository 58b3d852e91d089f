"""Admin panel pages of the reports: anomaly alerts (list, acknowledge) and budget pacing,
each behind the merchant login, scoped to the merchant, and CSRF-checked on POST."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from partnernet import clock
from partnernet.extensions import db
from tests.factories import make_merchant, make_offer, make_partner

PASSWORD = "correct horse battery"
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def login(client: Any, email: str, **extra: str) -> Any:
    return client.post("/login", data={"email": email, "password": PASSWORD, **extra})


def add_alert(merchant_id: int, subject: str, subject_id: int, kind: str, observed: str,
              baseline: str, day: date = date(2026, 3, 9)) -> Any:
    from partnernet.reports.models import AnomalyAlert

    alert = AnomalyAlert(merchant_id=merchant_id, subject=subject, subject_id=subject_id,
                         kind=kind, day=day, observed=observed, baseline=baseline,
                         message=f"{subject} {subject_id}: {kind}")
    db.session.add(alert)
    db.session.commit()
    return alert


def status_of(alert_id: int) -> str:
    from partnernet.reports.models import AnomalyAlert

    db.session.expire_all()
    return db.session.get(AnomalyAlert, alert_id).status


@pytest.fixture
def two_shops(app: Any) -> dict[str, Any]:
    shop = make_merchant("Alert shop", password=PASSWORD)
    other = make_merchant("Other shop", password=PASSWORD)
    offer = make_offer(shop.merchant.id, name="Spring sale")
    partner = make_partner(shop.merchant.id, name="Insta Creator")
    other_offer = make_offer(other.merchant.id, name="Rival offer")
    flood = add_alert(shop.merchant.id, "partner", partner.id, "click_flood", "900", "1400")
    drop = add_alert(shop.merchant.id, "offer", offer.id, "conversion_rate_drop", "0.50", "4.00")
    foreign = add_alert(other.merchant.id, "offer", other_offer.id, "refund_spike", "30.00",
                        "2.00")
    return {"shop": shop, "other": other, "offer": offer, "partner": partner,
            "other_offer": other_offer, "flood": flood, "drop": drop, "foreign": foreign}


def test_alert_and_budget_pages_need_a_merchant_login(client: Any, two_shops: Any) -> None:
    for path in ("/admin/reports/alerts", "/admin/reports/budgets"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    answer = client.post("/admin/reports/alerts/acknowledge",
                         data={"alert_id": two_shops["flood"].id})
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    assert status_of(two_shops["flood"].id) == "open"


def test_alerts_page_lists_only_the_merchants_alerts_with_their_figures(
        client: Any, two_shops: Any) -> None:
    login(client, two_shops["shop"].owner.email)
    page = client.get("/admin/reports/alerts")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # Partner and offer by name, the metric, actual vs baseline (a flood's baseline is the
    # 14-day total, shown as a daily mean: 1400 / 14 = 100), and the day.
    assert "Insta Creator" in html and "Spring sale" in html
    assert re.search(r"<td>Clicks</td><td>900</td><td>100.00 a day</td>", html)
    assert re.search(r"<td>Conversion rate</td><td>0.50%</td><td>4.00%</td>", html)
    assert "2026-03-09" in html and html.count("Acknowledge</button>") == 2
    assert "Rival offer" not in html and "refund_spike" not in html
    assert 'href="/admin/reports/alerts"' in html  # in the admin navigation


def test_acknowledge_moves_the_alert_out_of_the_open_list(client: Any, two_shops: Any) -> None:
    login(client, two_shops["shop"].owner.email)
    answer = client.post("/admin/reports/alerts/acknowledge",
                         data={"alert_id": two_shops["flood"].id})
    assert answer.status_code == 302
    assert status_of(two_shops["flood"].id) == "dismissed"
    assert status_of(two_shops["drop"].id) == "open"
    open_page = client.get("/admin/reports/alerts").get_data(as_text=True)
    assert "Insta Creator" not in open_page and "Spring sale" in open_page
    done = client.get("/admin/reports/alerts?status=dismissed").get_data(as_text=True)
    assert "Insta Creator" in done and "acknowledged" in done


def test_another_merchants_alert_is_404_and_stays_open(client: Any, two_shops: Any) -> None:
    login(client, two_shops["shop"].owner.email)
    answer = client.post("/admin/reports/alerts/acknowledge",
                         data={"alert_id": two_shops["foreign"].id})
    assert answer.status_code == 404
    assert status_of(two_shops["foreign"].id) == "open"


def test_alert_and_budget_posts_refuse_a_missing_csrf_token(app_factory: Any) -> None:
    from flask import g

    from partnernet.reports import insights

    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        shop = make_merchant("Csrf alerts", password=PASSWORD)
        offer = make_offer(shop.merchant.id)
        alert = add_alert(shop.merchant.id, "offer", offer.id, "click_flood", "500", "700")
        client = app.test_client()
        form = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
        assert login(client, shop.owner.email, csrf_token=token).status_code == 302
        assert client.post("/admin/reports/alerts/acknowledge",
                           data={"alert_id": alert.id}).status_code == 400
        assert status_of(alert.id) == "open"
        assert client.post("/admin/reports/budgets",
                           data={"offer_id": offer.id, "amount": "100.00"}).status_code == 400
        assert insights.pacing_overview(shop.merchant.id)[0]["budget"] is None
        # The test's app context outlives requests: drop the login page's token cached in
        # g, so the page renders (and stores in the renewed session) a token of its own.
        g.pop("csrf_token", None)
        page = client.get("/admin/reports/alerts").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        assert client.post("/admin/reports/alerts/acknowledge",
                           data={"alert_id": alert.id, "csrf_token": token}).status_code == 302
        assert status_of(alert.id) == "dismissed"
        g.pop("_login_user", None)
        db.session.remove()


def add_commission(offer: Any, partner_id: int, at: datetime, amount_minor: int,
                   status: str = "approved") -> None:
    from partnernet.commissions.models import Commission

    db.session.add(Commission(merchant_id=offer.merchant_id, partner_id=partner_id,
                              offer_id=offer.id, conversion_id=None, kind="cpc",
                              amount_minor=amount_minor, currency=offer.currency, status=status,
                              hold_until=at, created_at=at))
    db.session.commit()


def test_budget_page_shows_pacing_per_offer_and_sets_a_budget(client: Any, two_shops: Any) -> None:
    shop, offer, partner = two_shops["shop"], two_shops["offer"], two_shops["partner"]
    quiet = make_offer(shop.merchant.id, name="Quiet offer")
    add_commission(offer, partner.id, NOW - timedelta(days=5), 10_000)
    add_commission(offer, partner.id, NOW - timedelta(days=4), 5_000, status="rejected")
    add_commission(offer, partner.id, NOW - timedelta(days=40), 7_000)  # last month
    login(client, shop.owner.email)
    with clock.frozen(NOW):
        answer = client.post("/admin/reports/budgets",
                             data={"offer_id": offer.id, "amount": "200.00"})
        assert answer.status_code == 302
        html = client.get("/admin/reports/budgets").get_data(as_text=True)
    # 100.00 spent in 10 days of March: 310.00 projected over 31 days, past the 200.00 budget.
    # Offers by name: "Quiet offer" first, then "Spring sale".
    spring = html[html.index("Spring sale"):]
    assert re.search(r"<td>200.00 USD</td><td>100.00 USD</td><td>310.00 USD</td>"
                     r"<td>100.00 USD</td>", spring)
    assert "over pace" in spring and "day 10 of 31" in spring
    assert "No budget" in html[html.index("Quiet offer"):html.index("Spring sale")]
    with clock.frozen(NOW):
        client.post("/admin/reports/budgets", data={"offer_id": quiet.id, "amount": "50"})
        client.post("/admin/reports/budgets", data={"offer_id": offer.id, "amount": "400.00"})
        html = client.get("/admin/reports/budgets").get_data(as_text=True)
    assert "No budget" not in html and html.count("on track") == 2
    bad = client.post("/admin/reports/budgets", data={"offer_id": offer.id, "amount": "12.345"},
                      follow_redirects=True)
    assert bad.status_code == 200 and "decimal places" in bad.get_data(as_text=True)


def test_budget_of_another_merchants_offer_is_404(client: Any, two_shops: Any) -> None:
    from partnernet.reports import insights

    login(client, two_shops["shop"].owner.email)
    answer = client.post("/admin/reports/budgets",
                         data={"offer_id": two_shops["other_offer"].id, "amount": "10.00"})
    assert answer.status_code == 404
    assert insights.pacing_overview(two_shops["other"].merchant.id)[0]["budget"] is None
    page = client.get("/admin/reports/budgets").get_data(as_text=True)
    assert "Rival offer" not in page and "Spring sale" in page


def test_a_partner_is_sent_to_the_portal(client: Any, two_shops: Any) -> None:
    make_partner(two_shops["shop"].merchant.id, email="p@alerts.example", password=PASSWORD)
    login(client, "p@alerts.example")
    answer = client.get("/admin/reports/alerts")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/portal/")
