"""One test per rule of the README's security section that the lead's tests do not cover yet:
security headers, CSRF on every state-changing form, password hashing parameters, secrets
stored hashed, secrets never in logs, SSRF guard (incl. DNS rebinding), mass assignment,
session cookie renewed at login."""

from __future__ import annotations

import logging
import re
import socket
from typing import Any

import pytest
from flask import g
from sqlalchemy import select

from partnernet.extensions import db
from tests.factories import make_click_row, make_merchant, make_offer, make_partner

PASSWORD = "correct horse battery"


def login(client: Any, email: str, **extra: str) -> Any:
    return client.post("/login", data={"email": email, "password": PASSWORD, **extra})


def all_rows_text() -> str:
    db.session.expire_all()
    with db.engine.connect() as conn:
        return "\n".join(repr(tuple(r)) for t in db.metadata.sorted_tables for r in conn.execute(select(t)))


def test_security_headers_on_pages_and_api(app: Any, app_factory: Any) -> None:
    shop = make_merchant(password=PASSWORD)
    client = app.test_client()
    for answer in (client.get("/login"), client.get("/api/v1/offers",
                                                    headers={"Authorization": f"Bearer {shop.api_key}"})):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        csp = answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert "Strict-Transport-Security" not in answer.headers  # plain http: no HSTS
    db.session.remove()  # no open transaction of this app while the second one cleans up
    https = app_factory(SESSION_COOKIE_SECURE=True)
    hsts = https.test_client().get("/login", base_url="https://partnernet.test")
    assert "max-age=" in hsts.headers["Strict-Transport-Security"]


def test_every_state_changing_admin_and_portal_form_refuses_a_post_without_csrf(app_factory: Any) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        shop = make_merchant(password=PASSWORD)
        offer = make_offer(shop.merchant.id)
        partner = make_partner(shop.merchant.id, password=PASSWORD)
        click = make_click_row(offer, partner.id)
        ids = {"offer_id": offer.id, "partner_id": partner.id, "link_id": click.link_id, "payout_id": 1,
               "run_id": 1, "merchant_id": shop.merchant.id}
        posts = sorted(r.rule for r in app.url_map.iter_rules()
                        if "POST" in (r.methods or set()) and r.rule.startswith(("/admin", "/portal")))
        assert len(posts) >= 15
        client = app.test_client()
        form = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
        assert login(client, shop.owner.email, csrf_token=token).status_code == 302
        before = all_rows_text()
        refused = []
        for rule in posts:
            url = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: str(ids[m.group(1)]), rule)
            answer = client.post(url, data={"name": "x", "status": "paused", "action": "approve"})
            refused.append((rule, answer.status_code))
            assert answer.status_code == 400, (rule, answer.status_code)
        assert all_rows_text().count("\n") == before.count("\n")
        g.pop("_login_user", None)
        db.session.remove()


def test_passwords_use_a_slow_salted_hash(app: Any) -> None:
    from partnernet.accounts.models import User

    shop = make_merchant(password=PASSWORD)
    user = db.session.get(User, shop.owner.id)
    method, salt, digest = user.password_hash.split("$")
    name, n, r, p = method.split(":")
    assert name == "scrypt" and int(n) >= 2**15 and int(r) >= 8 and int(p) >= 1
    assert len(salt) >= 16 and PASSWORD not in user.password_hash
    other = make_merchant(password=PASSWORD)
    assert db.session.get(User, other.owner.id).password_hash != user.password_hash  # salted


def test_api_keys_and_postback_tokens_are_stored_only_hashed(app: Any) -> None:
    shop = make_merchant(password=PASSWORD)
    rows = all_rows_text()
    assert shop.api_key not in rows
    assert shop.postback_token not in rows
    assert PASSWORD not in rows


def test_secrets_never_reach_the_logs(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    shop = make_merchant(password=PASSWORD)
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id, password=PASSWORD)
    click = make_click_row(offer, partner.id)
    client = app.test_client()
    client.get("/api/v1/offers", headers={"Authorization": f"Bearer {shop.api_key}"})
    client.get("/api/v1/offers", headers={"Authorization": f"Bearer {shop.api_key}x"})  # a denial
    client.get("/postback", query_string={"token": shop.postback_token, "click_id": click.id,
                                          "order_id": "L-1", "amount": "5.00"})
    client.get("/postback", query_string={"token": shop.postback_token + "x", "order_id": "L-2"})
    login(client, shop.owner.email)
    login(app.test_client(), shop.owner.email, password=PASSWORD + "typo")
    logged = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    for secret in (shop.api_key, shop.postback_token, shop.postback_secret, PASSWORD):
        assert secret not in logged, secret[:6]
    assert any("login" in r.getMessage() for r in caplog.records)  # the scenario was logged


PRIVATE = ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "100.64.0.1",
           "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1"]


@pytest.mark.parametrize("address", PRIVATE)
def test_partner_postback_urls_never_reach_private_addresses(app: Any, monkeypatch: Any,
                                                             address: str) -> None:
    from partnernet.conversions import outgoing

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(family, socket.SOCK_STREAM, 6, "",
                                                                 (address, 80))])
    with pytest.raises(outgoing.UnsafeDestination):
        outgoing.resolve_destination("http://partner.example/cb?c={click_id}", allow_private=False)


def test_dns_rebinding_cannot_switch_the_checked_address(app: Any, monkeypatch: Any) -> None:
    """The address checked is the one connected to: a second lookup (now private) is never made."""
    from partnernet.conversions import outgoing

    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))],
                    [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))]])
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: next(answers))
    dest = outgoing.resolve_destination("http://rebind.example/cb", allow_private=False)
    assert dest.ip == "93.184.216.34"
    connected: list[tuple[str, int]] = []

    def fake_connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connected.append(address)
        raise OSError("no network in tests")

    monkeypatch.setattr(socket, "create_connection", fake_connect)
    with pytest.raises(OSError):
        outgoing.http_get(dest, {}, timeout=1)
    assert connected == [("93.184.216.34", 80)]
    # A mixed answer (one public, one private address) is refused outright.
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 80))])
    with pytest.raises(outgoing.UnsafeDestination):
        outgoing.resolve_destination("http://mixed.example/cb", allow_private=False)


def test_mass_assignment_of_owner_and_status_fields_is_refused(app: Any) -> None:
    from partnernet.accounts.models import Partner

    shop = make_merchant()
    victim = make_merchant()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {shop.api_key}"}
    for extra in ({"merchant_id": victim.merchant.id}, {"stripe_account_id": "acct_evil"},
                  {"payouts_enabled": True}, {"id": 999}):
        answer = client.post("/api/v1/partners", headers=headers,
                             json={"name": "Mass", "email": f"mass{len(extra)}{list(extra)[0]}@x.example",
                                   **extra})
        assert answer.status_code in (201, 400), answer.get_json()
        if answer.status_code == 201:
            created = db.session.get(Partner, answer.get_json()["id"])
            assert created.stripe_account_id is None and not created.payouts_enabled
    offer = client.post("/api/v1/offers", headers=headers, json={
        "name": "Mass", "landing_url": "https://shop.example/", "merchant_id": victim.merchant.id,
        "plans": [{"event": "sale", "type": "cps", "percent": "10"}]})
    assert offer.status_code in (201, 400)
    if offer.status_code == 201:
        from partnernet.offers.models import Offer

        assert db.session.get(Offer, offer.get_json()["id"]).merchant_id == shop.merchant.id


def test_session_cookie_is_renewed_at_login(app: Any) -> None:
    shop = make_merchant(password=PASSWORD)
    client = app.test_client()
    client.get("/login")
    before = client.get_cookie("session")
    assert login(client, shop.owner.email).status_code == 302
    after = client.get_cookie("session")
    assert after is not None and (before is None or after.value != before.value)
    # An attacker holding the pre-login cookie is not logged in with it.
    g.pop("_login_user", None)
    planted = app.test_client()
    if before is not None:
        planted.set_cookie("session", before.value)
    assert planted.get("/admin/").status_code == 302
