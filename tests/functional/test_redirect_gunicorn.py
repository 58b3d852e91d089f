"""The redirect end to end through a real gunicorn process on the test database (and Redis
when the run has it): real sockets, real headers, a client that sends no User-Agent."""

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from partnernet.extensions import db
from partnernet.links import buffer, services
from partnernet.links.models import Click
from tests.factories import make_merchant, make_offer, make_partner

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env, log):
    """gunicorn on a free port; None if it exited first (e.g. another process took the port)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "--timeout", "30",
         "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return proc, port
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    stop(proc)
    return None, None


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def gunicorn(app, database_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARTNERNET_", "REDIS", "DATABASE"))}
    env.update({
        "DATABASE_URL": database_url,
        "SECRET_KEY": app.config["SECRET_KEY"],
        "PARTNERNET_BASE_URL": app.config["BASE_URL"],
        "PARTNERNET_REDIS_PREFIX": app.config["REDIS_KEY_PREFIX"],
        "PARTNERNET_QUEUE_PREFIX": app.config["RQ_QUEUE_PREFIX"],
        "PARTNERNET_RATELIMIT": "0",
    })
    if app.config.get("REDIS_URL"):
        env["REDIS_URL"] = app.config["REDIS_URL"]
    with open(tmp_path / "gunicorn.log", "wb") as log:
        for _attempt in range(3):  # a free port can be taken by someone else before gunicorn binds it
            proc, port = start_gunicorn(env, log)
            if proc is not None:
                break
        else:
            log.flush()
            pytest.fail("gunicorn did not start:\n" + (tmp_path / "gunicorn.log").read_text()[-3000:])
        try:
            yield port
        finally:
            stop(proc)


def request(port, method, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers or {})  # http.client adds no User-Agent
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_redirect_through_gunicorn(app, gunicorn):
    shop = make_merchant()
    partner = make_partner(shop.merchant.id)
    offer = make_offer(shop.merchant.id, landing_url="https://shop.example/go?ref=net")
    link = services.create_link(shop.merchant.id, {"offer_id": offer.id, "partner_id": partner.id,
                                                   "utm_medium": "affiliate"})
    browser = {"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15"}

    r = request(gunicorn, "GET", f"/r/{link.code}?sub1=gun&gclid=abc", browser)
    assert r.status == 302
    location = r.getheader("Location")
    assert location.startswith("https://shop.example/go?ref=net&utm_medium=affiliate&click_id=")
    click_id = parse_qs(urlsplit(location).query)["click_id"][0]
    cookie = r.getheader("Set-Cookie")
    assert cookie.startswith("pn_vid=") and "SameSite=Lax" in cookie and "HttpOnly" in cookie
    visitor = cookie.split(";")[0].split("=", 1)[1]

    # The postback path sees the click at once, flushed or not.
    found = services.resolve_click(click_id)
    assert found is not None and found.sub1 == "gun" and found.paid_ads_param == "gclid"

    again = request(gunicorn, "GET", f"/r/{link.code}", {**browser, "Cookie": f"pn_vid={visitor}"})
    assert again.status == 302
    no_agent = request(gunicorn, "GET", f"/r/{link.code}")
    assert no_agent.status == 302
    head = request(gunicorn, "HEAD", f"/r/{link.code}", browser)
    assert head.status == 302
    for path in ("/r/%00", "/r/" + "z" * 3000, "/r/no-such-code"):
        assert request(gunicorn, "GET", path, browser).status == 404

    buffer.flush_clicks()
    db.session.rollback()
    stored = list(db.session.scalars(select(Click).order_by(Click.created_at)))
    assert len(stored) == 4
    first, second, agentless, headed = stored
    assert first.id == click_id and first.ip_truncated == "127.0.0.0" and first.is_unique
    assert second.visitor_id == first.visitor_id == visitor and not second.is_unique
    assert agentless.is_bot and agentless.user_agent is None
    assert headed.is_bot and not headed.is_unique
