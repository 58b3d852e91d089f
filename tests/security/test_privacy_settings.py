"""The admin panel's privacy settings: click retention (30..1095 days) and cookieless mode, per
merchant, CSRF-protected, audited, and effective (no visitor cookie; old clicks deleted)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import g
from sqlalchemy import func, select

from partnernet import clock
from partnernet.accounts.models import AuditEvent, Merchant
from partnernet.extensions import db
from partnernet.links.models import Click, Link
from tests.factories import make_click_row, make_merchant, make_offer, make_partner

PASSWORD = "correct horse battery"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def csrf(client: Any, url: str) -> str:
    g.pop("csrf_token", None)  # the tests' shared app context caches the token per "request"
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True)).group(1)


def log_in(app: Any, email: str) -> Any:
    g.pop("_login_user", None)
    client = app.test_client()
    assert client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": csrf(client, "/login")}).status_code == 302
    return client


def settings_of(merchant_id: int) -> tuple[int, bool]:
    db.session.expire_all()
    merchant = db.session.get(Merchant, merchant_id)
    return merchant.click_retention_days, merchant.cookieless


def save(client: Any, token: str | None, days: Any, cookieless: bool, **extra: Any) -> Any:
    data = {"action": "privacy", "privacy-click_retention_days": str(days), **extra}
    if cookieless:
        data["privacy-cookieless"] = "y"
    if token:
        data["privacy-csrf_token"] = token
    return client.post("/admin/settings", data=data)


@pytest.fixture
def capp(app_factory: Any) -> Any:
    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        yield app
        g.pop("_login_user", None)
        db.session.remove()


def test_a_merchant_sets_retention_and_cookieless_and_it_is_audited(capp: Any) -> None:
    shop = make_merchant(password=PASSWORD)
    client = log_in(capp, shop.owner.email)
    page = client.get("/admin/settings").get_data(as_text=True)
    assert 'name="privacy-click_retention_days"' in page and 'value="395"' in page
    token = csrf(client, "/admin/settings")
    answer = save(client, token, 90, True)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/admin/settings")
    assert settings_of(shop.merchant.id) == (90, True)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "privacy_settings_changed"))
    assert event.merchant_id == shop.merchant.id and event.user_id == shop.owner.id
    assert event.detail == {"click_retention_days": "395->90", "cookieless": "False->True"}
    shown = client.get("/admin/settings").get_data(as_text=True)
    box = re.search(r'<input[^>]*name="privacy-cookieless"[^>]*>', shown).group(0)
    assert 'value="90"' in shown and " checked" in box
    # Unticking the box turns cookieless off again.
    assert save(client, token, 90, False).status_code == 302
    assert settings_of(shop.merchant.id) == (90, False)


@pytest.mark.parametrize("days", ["29", "1096", "0", "-30", "abc", "", "90.5", "99999999999999999999"])
def test_out_of_range_or_malformed_retention_is_refused_with_a_clear_error(capp: Any, days: str) -> None:
    shop = make_merchant(password=PASSWORD)
    client = log_in(capp, shop.owner.email)
    answer = save(client, csrf(client, "/admin/settings"), days, True)
    assert answer.status_code == 400
    assert 'id="privacy-click_retention_days-err"' in answer.get_data(as_text=True)
    assert settings_of(shop.merchant.id) == (395, False)  # nothing saved, not even the checkbox
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "privacy_settings_changed")) == 0


def test_the_bounds_themselves_are_accepted(capp: Any) -> None:
    shop = make_merchant(password=PASSWORD)
    client = log_in(capp, shop.owner.email)
    token = csrf(client, "/admin/settings")
    assert save(client, token, 30, False).status_code == 302
    assert settings_of(shop.merchant.id) == (30, False)
    assert save(client, token, 1095, False).status_code == 302
    assert settings_of(shop.merchant.id) == (1095, False)
    answer = save(client, token, 29, False)
    assert "from 30 to 1095" in answer.get_data(as_text=True)


def test_without_the_csrf_token_nothing_changes(capp: Any) -> None:
    shop = make_merchant(password=PASSWORD)
    client = log_in(capp, shop.owner.email)
    assert save(client, None, 60, True).status_code == 400
    assert settings_of(shop.merchant.id) == (395, False)


def test_a_merchant_changes_only_its_own_settings(capp: Any) -> None:
    shop, other = make_merchant(password=PASSWORD), make_merchant(password=PASSWORD)
    partner = make_partner(shop.merchant.id, password=PASSWORD)
    client = log_in(capp, shop.owner.email)
    # A planted merchant id in the form is ignored: the logged-in user's merchant is changed.
    assert save(client, csrf(client, "/admin/settings"), 45, True,
                merchant_id=str(other.merchant.id)).status_code == 302
    assert settings_of(shop.merchant.id) == (45, True)
    assert settings_of(other.merchant.id) == (395, False)
    assert 'value="395"' in log_in(capp, other.owner.email).get("/admin/settings").get_data(as_text=True)
    # A partner of the program, or nobody, cannot reach the page.
    as_partner = log_in(capp, partner.email)
    assert as_partner.get("/admin/settings").headers["Location"].endswith("/portal/")
    assert save(as_partner, csrf(as_partner, "/portal/settings"), 31, False).status_code == 302
    g.pop("_login_user", None)
    anonymous = capp.test_client()
    assert "/login" in anonymous.get("/admin/settings").headers["Location"]
    assert anonymous.post("/admin/settings", data={"action": "privacy",
                                                   "privacy-click_retention_days": "31"}).status_code == 400
    assert settings_of(shop.merchant.id) == (45, True)


def test_cookieless_mode_takes_effect_on_the_next_redirect(capp: Any) -> None:
    shop = make_merchant(password=PASSWORD)
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id)
    code = db.session.get(Link, make_click_row(offer, partner.id).link_id).code
    visitor = capp.test_client()
    assert "pn_vid" in (visitor.get(f"/r/{code}", headers={"User-Agent": UA}).headers.get("Set-Cookie") or "")
    client = log_in(capp, shop.owner.email)
    assert save(client, csrf(client, "/admin/settings"), 395, True).status_code == 302
    g.pop("_login_user", None)
    answer = capp.test_client().get(f"/r/{code}", headers={"User-Agent": UA})
    assert answer.status_code == 302 and "click_id=" in answer.headers["Location"]
    assert "Set-Cookie" not in answer.headers


def test_a_shorter_retention_deletes_older_clicks_at_the_next_partition_job(capp: Any) -> None:
    from partnernet.links.partitions import maintain

    shop, other = make_merchant(password=PASSWORD), make_merchant()
    offer, other_offer = make_offer(shop.merchant.id), make_offer(other.merchant.id)
    partner, other_partner = make_partner(shop.merchant.id), make_partner(other.merchant.id)
    now = clock.now()
    old = make_click_row(offer, partner.id, at=now - timedelta(days=40)).id
    recent = make_click_row(offer, partner.id, at=now - timedelta(days=10)).id
    theirs = make_click_row(other_offer, other_partner.id, at=now - timedelta(days=40)).id
    client = log_in(capp, shop.owner.email)
    assert save(client, csrf(client, "/admin/settings"), 30, False).status_code == 302
    maintain(now)
    db.session.expire_all()
    kept = set(db.session.scalars(select(Click.id)))
    assert recent in kept and theirs in kept and old not in kept
