"""Fresh login: a payout destination (Stripe onboarding) or a login email changes only when the
password was entered in the last 10 minutes; otherwise a re-authentication page (CSRF, failures
counted toward the lockout) and back to the page, never to another site."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import g
from sqlalchemy import select

from partnernet import clock
from partnernet.accounts.models import AuditEvent, Partner, User
from partnernet.extensions import db
from tests.factories import make_merchant, make_partner
from tests.payout_helpers import stripe_config

PASSWORD = "correct horse battery"
START = datetime.now(UTC).replace(microsecond=0)


def csrf(client: Any, url: str) -> str:
    # The tests' app context is shared by the test client's requests: Flask-WTF's per-request
    # cache of the token (g.csrf_token) must go, or a new session never gets its token.
    g.pop("csrf_token", None)
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True)).group(1)


def log_in(app: Any, email: str) -> Any:
    g.pop("_login_user", None)
    client = app.test_client()
    answer = client.post("/login", data={"email": email, "password": PASSWORD,
                                         "csrf_token": csrf(client, "/login")})
    assert answer.status_code == 302
    return client


def reauth_target(answer: Any) -> str:
    """The ``next`` of a redirect to the re-authentication page."""
    assert answer.status_code == 302, answer.status_code
    url = urlsplit(answer.headers["Location"])
    assert url.path == "/reauth", answer.headers["Location"]
    return parse_qs(url.query)["next"][0]


FAKE_STRIPE_HANG_SECONDS = 10


@pytest.fixture
def capp(app_factory: Any, fake: Any) -> Any:
    """CSRF on, Stripe (the fake) configured."""
    app = app_factory(WTF_CSRF_ENABLED=True, **stripe_config(fake.url))
    with app.app_context():
        yield app
        g.pop("_login_user", None)
        db.session.remove()


def test_stripe_onboarding_needs_a_password_entered_in_the_last_ten_minutes(capp: Any, fake: Any) -> None:
    shop = make_merchant()
    partner = make_partner(shop.merchant.id, password=PASSWORD)
    clock.freeze(START)
    client = log_in(capp, partner.email)

    clock.freeze(START + timedelta(minutes=11))
    stale = client.post("/portal/payouts/connect", data={"csrf_token": csrf(client, "/portal/payouts")})
    assert reauth_target(stale) == "/portal/payouts/connect"  # a GET back to the page: no replay
    assert fake.accounts == {} and db.session.get(Partner, partner.id).stripe_account_id is None

    # The re-authentication page: CSRF, then the password.
    assert client.post("/reauth?next=/portal/payouts/connect", data={"password": PASSWORD}).status_code == 400
    token = csrf(client, "/reauth?next=/portal/payouts/connect")
    wrong = client.post("/reauth?next=/portal/payouts/connect",
                        data={"password": "nope", "csrf_token": token})
    assert wrong.status_code == 401
    assert reauth_target(client.post("/portal/payouts/connect", data={"csrf_token": token}))
    back = client.post("/reauth?next=/portal/payouts/connect", data={"password": PASSWORD,
                                                                    "csrf_token": token})
    assert back.status_code == 302 and back.headers["Location"] == "/portal/payouts/connect"
    assert client.get(back.headers["Location"]).headers["Location"].endswith("/portal/payouts")

    fresh = client.post("/portal/payouts/connect", data={"csrf_token": csrf(client, "/portal/payouts")})
    assert fresh.status_code == 302 and fresh.headers["Location"].startswith("https://connect.stripe.test/")
    db.session.expire_all()
    assert db.session.get(Partner, partner.id).stripe_account_id in fake.accounts
    user = db.session.scalar(select(User).where(User.partner_id == partner.id))
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.user_id == user.id)).all()
    assert {"reauth_failed", "reauthenticated"} <= set(actions)

    # Ten minutes after the re-authentication it is stale again.
    clock.freeze(START + timedelta(minutes=22))
    assert reauth_target(client.post("/portal/payouts/connect",
                                     data={"csrf_token": csrf(client, "/portal/payouts")}))


def test_right_after_login_onboarding_goes_straight_to_stripe(capp: Any, fake: Any) -> None:
    shop = make_merchant()
    partner = make_partner(shop.merchant.id, password=PASSWORD)
    clock.freeze(START)
    client = log_in(capp, partner.email)
    clock.freeze(START + timedelta(minutes=9))
    answer = client.post("/portal/payouts/connect", data={"csrf_token": csrf(client, "/portal/payouts")})
    assert answer.headers["Location"].startswith("https://connect.stripe.test/")
    # Without the CSRF token nothing happens, fresh or not.
    assert client.post("/portal/payouts/connect", data={}).status_code == 400


def test_email_change_needs_a_fresh_login_and_csrf(capp: Any) -> None:
    shop = make_merchant(password=PASSWORD)
    clock.freeze(START)
    client = log_in(capp, shop.owner.email)
    assert 'href="/account/email"' in client.get("/admin/settings").get_data(as_text=True)

    # Fresh: CSRF still required, then the change lands and is audited.
    assert client.post("/account/email", data={"email": "new@shop.example"}).status_code == 400
    taken = make_merchant()
    token = csrf(client, "/account/email")
    clash = client.post("/account/email", data={"email": taken.owner.email, "csrf_token": token})
    assert clash.status_code == 409 and "already exists" in clash.get_data(as_text=True)
    done = client.post("/account/email", data={"email": "New@Shop.example", "csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"] == "/admin/settings"
    db.session.expire_all()
    assert db.session.get(User, shop.owner.id).email == "new@shop.example"
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "email_changed"))
    assert event.user_id == shop.owner.id and event.detail["new_domain"] == "shop.example"
    assert "new@shop.example" not in str(event.detail)  # the audit trail keeps no address

    # Eleven minutes on: neither the page nor a POST works until the password is entered again.
    clock.freeze(START + timedelta(minutes=11))
    assert reauth_target(client.get("/account/email")) == "/account/email"
    stale = client.post("/account/email", data={"email": "third@shop.example", "csrf_token": token})
    assert reauth_target(stale) == "/account/email"
    db.session.expire_all()
    assert db.session.get(User, shop.owner.id).email == "new@shop.example"
    back = client.post("/reauth?next=/account/email", data={"password": PASSWORD, "csrf_token": token})
    assert back.headers["Location"] == "/account/email"
    assert client.post("/account/email", data={"email": "third@shop.example",
                                               "csrf_token": token}).status_code == 302
    # The new email logs in; the old one no longer does.
    assert log_in(capp, "third@shop.example")
    g.pop("_login_user", None)
    old = capp.test_client()
    assert old.post("/login", data={"email": "new@shop.example", "password": PASSWORD,
                                    "csrf_token": csrf(old, "/login")}).status_code == 401


def test_a_partner_email_change_moves_the_profile_email_too(capp: Any) -> None:
    shop = make_merchant()
    partner = make_partner(shop.merchant.id, email="me@creator.example", password=PASSWORD)
    other = make_partner(shop.merchant.id, email="other@creator.example")
    clock.freeze(START)
    client = log_in(capp, partner.email)
    assert 'href="/account/email"' in client.get("/portal/settings").get_data(as_text=True)
    token = csrf(client, "/account/email")
    assert client.post("/account/email", data={"email": other.email, "csrf_token": token}).status_code == 409
    answer = client.post("/account/email", data={"email": "me@new.example", "csrf_token": token})
    assert answer.headers["Location"] == "/portal/settings"
    db.session.expire_all()
    assert db.session.get(Partner, partner.id).email == "me@new.example"
    assert db.session.get(Partner, other.id).email == "other@creator.example"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example",
                                    "javascript:alert(1)", "http:/evil.example"])
def test_reauth_never_redirects_off_site(capp: Any, target: str) -> None:
    shop = make_merchant(password=PASSWORD)
    client = log_in(capp, shop.owner.email)
    answer = client.post("/reauth", query_string={"next": target},
                         data={"password": PASSWORD, "csrf_token": csrf(client, "/reauth")})
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin"


def test_reauth_failures_count_toward_the_lockout(capp: Any) -> None:
    shop = make_merchant(password=PASSWORD)
    client = log_in(capp, shop.owner.email)
    token = csrf(client, "/reauth")
    for _ in range(5):
        assert client.post("/reauth", data={"password": "guess", "csrf_token": token}).status_code == 401
    # Locked now: even the right password is refused for a while.
    assert client.post("/reauth", data={"password": PASSWORD, "csrf_token": token}).status_code == 401
    db.session.expire_all()
    assert db.session.get(User, shop.owner.id).locked_until is not None


def test_pages_need_a_login_before_any_reauth(capp: Any) -> None:
    g.pop("_login_user", None)
    client = capp.test_client()
    assert urlsplit(client.get("/account/email").headers["Location"]).path == "/login"
    assert urlsplit(client.get("/reauth").headers["Location"]).path == "/login"
