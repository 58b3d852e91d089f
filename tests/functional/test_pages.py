"""Pages: HTML errors for people, login with CSRF, lock-out, no open redirect."""

import pytest

from tests.factories import make_merchant


def test_unknown_page_is_html_404(client):
    r = client.get("/no-such-page")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert b"404" in r.data


def test_security_headers(client):
    r = client.get("/")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_login_logout_and_stale_cookie(client, app):
    make_merchant(name="Owner shop", password="correct horse battery")
    from partnernet.accounts.models import User
    from partnernet.extensions import db

    user = db.session.query(User).one()
    r = client.post("/login", data={"email": user.email, "password": "correct horse battery"})
    assert r.status_code == 302 and r.headers["Location"] == "/admin"
    with client.session_transaction() as sess:
        cookie_session = dict(sess)
    assert client.post("/logout").status_code == 302
    # replaying the old session cookie after logout does not log anyone in
    with client.session_transaction() as sess:
        sess.update(cookie_session)
    assert client.post("/logout").status_code in (302, 401)
    assert client.post("/logout").headers.get("Location", "").startswith("/login")


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example",
                                    "javascript:alert(1)"])
def test_login_next_is_never_an_open_redirect(client, app, target):
    make_merchant(password="correct horse battery")
    from partnernet.accounts.models import User
    from partnernet.extensions import db

    user = db.session.query(User).one()
    r = client.post(f"/login?next={target}", data={"email": user.email,
                                                    "password": "correct horse battery"})
    assert r.status_code == 302 and r.headers["Location"] == "/admin"


def test_lockout_after_five_failures(client, app):
    make_merchant(password="correct horse battery")
    from partnernet.accounts.models import User
    from partnernet.extensions import db

    user = db.session.query(User).one()
    for _ in range(5):
        assert client.post("/login", data={"email": user.email, "password": "nope"}).status_code == 401
    r = client.post("/login", data={"email": user.email, "password": "correct horse battery"})
    assert r.status_code == 401  # locked, even with the right password


def test_login_form_needs_csrf_when_enabled(app_factory):
    app = app_factory(WTF_CSRF_ENABLED=True)
    r = app.test_client().post("/login", data={"email": "a@b.example", "password": "x"})
    assert r.status_code == 400 and r.mimetype == "text/html"


def test_login_is_rate_limited(app_factory):
    c = app_factory(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per minute").test_client()
    codes = [c.post("/login", data={"email": "a@b.example", "password": "x"}).status_code
             for _ in range(4)]
    assert codes[:3] == [401, 401, 401] and codes[-1] == 429


def test_untrusted_host_header_is_refused(app_factory):
    app = app_factory(TRUSTED_HOSTS=["partners.example.com"])
    client = app.test_client()
    assert client.get("/healthz", headers={"Host": "partners.example.com"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "evil.example"}).status_code == 400


def test_logins_and_failures_are_audited_with_escaped_values(client, app, caplog):
    import logging

    from partnernet.accounts.models import AuditEvent, User
    from partnernet.extensions import db

    make_merchant(password="correct horse battery")
    user = db.session.query(User).one()
    with caplog.at_level(logging.INFO, logger="partnernet.audit"):
        client.post("/login", data={"email": user.email, "password": "wrong"})
        client.post("/login", data={"email": user.email, "password": "correct horse battery"})
        client.get("/api/v1/offers", headers={"Authorization": "Bearer pn_forged"})
        from partnernet.audit import audit

        audit("login_failed", persist=False, email="x@y.example\r\nINFO login ok admin")
    actions = [e.action for e in db.session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions == ["login_failed", "login"]
    assert all("\n" not in r.getMessage() and "\r" not in r.getMessage() for r in caplog.records)
    assert any("api_auth_denied" in r.getMessage() for r in caplog.records)
