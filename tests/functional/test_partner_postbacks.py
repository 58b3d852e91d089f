"""Outgoing partner postbacks against a local HTTP server: macros, signature, retries,
the delivery log, "send test", and the refusal to call private addresses."""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from partnernet import clock
from tests.factories import auth, make_click_row, make_merchant, make_offer, make_partner

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class Receiver:
    """A local partner tracker: records requests, answers with a scripted status."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                receiver.requests.append({"path": self.path, "headers": dict(self.headers)})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def dev_app(app_factory):
    """The app in development mode with private destinations explicitly allowed (tests only)."""
    app = app_factory(ENV_NAME="development", PARTNER_POSTBACK_ALLOW_PRIVATE=True)
    with app.app_context():
        yield app


@pytest.fixture
def shop(dev_app, receiver):
    from partnernet.extensions import db

    clock.freeze(NOW)
    shop = make_merchant()
    shop.offer = make_offer(shop.merchant.id)
    shop.partner = make_partner(shop.merchant.id)
    shop.partner.postback_url = (receiver.url + "/pb?cid={click_id}&o={order_id}&amt={amount}"
                                 "&com={commission}&cur={currency}&st={status}&s1={sub1}"
                                 "&ev={event}&conv={conversion_id}")
    db.session.commit()
    shop.click = make_click_row(shop.offer, shop.partner.id, sub1="spring promo&x=1",
                                at=NOW - timedelta(hours=1))
    return shop


def sale(client, shop, **extra):
    query = {"token": shop.postback_token, "click_id": shop.click.id, "order_id": "A&1",
             "amount": "49.90", **extra}
    r = client.get("/postback", query_string=query)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def deliveries():
    from partnernet.conversions.models import PartnerPostbackDelivery
    from partnernet.extensions import db

    db.session.expire_all()
    return list(db.session.scalars(select(PartnerPostbackDelivery).order_by(PartnerPostbackDelivery.id)))


def test_new_commission_fires_the_partners_postback_with_macros_and_signature(dev_app, shop,
                                                                              receiver):
    from partnernet.extensions import db

    body = sale(dev_app.test_client(), shop)
    [request] = receiver.requests
    query = parse_qs(urlsplit(request["path"]).query)
    assert query == {"cid": [shop.click.id], "o": ["A&1"], "amt": ["49.90"], "com": ["4.99"],
                     "cur": ["USD"], "st": [body["commission"]["status"]], "s1": ["spring promo&x=1"],
                     "ev": ["sale"], "conv": [str(body["conversion_id"])]}
    db.session.refresh(shop.partner)
    secret = shop.partner.postback_secret
    assert secret
    [delivery] = deliveries()
    stamp = request["headers"]["X-Partnernet-Timestamp"]
    expected = hmac.new(secret.encode(), f"{stamp}.{delivery.url}".encode(), hashlib.sha256)
    assert request["headers"]["X-Partnernet-Signature"] == "sha256=" + expected.hexdigest()
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert delivery.commission_status == body["commission"]["status"] == "pending"


def test_the_job_is_safe_to_run_twice_and_fires_again_on_status_change(dev_app, shop, receiver):
    from partnernet.commissions.models import Commission
    from partnernet.conversions.outgoing import notify_partner
    from partnernet.extensions import db

    body = sale(dev_app.test_client(), shop)
    commission_id = body["commission"]["id"]
    notify_partner(commission_id)
    assert len(receiver.requests) == 1
    commission = db.session.get(Commission, commission_id)
    commission.status = "approved"
    db.session.commit()
    notify_partner(commission_id)
    notify_partner(commission_id)
    assert len(receiver.requests) == 2
    assert "st=approved" in receiver.requests[1]["path"]


def test_refund_reversal_fires_a_postback(dev_app, shop, receiver):
    c = dev_app.test_client()
    sale(c, shop)
    r = c.get("/postback", query_string={"token": shop.postback_token, "order_id": "A&1",
                                         "status": "refunded"})
    assert r.status_code == 200
    assert len(receiver.requests) == 2 and "st=reversed" in receiver.requests[1]["path"]


def test_failures_are_retried_with_backoff_then_given_up(dev_app, shop, receiver):
    from partnernet.conversions.outgoing import MAX_ATTEMPTS, retry_due_deliveries

    receiver.statuses = [500] * 20
    sale(dev_app.test_client(), shop)
    [delivery] = deliveries()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_http_status == 500 and delivery.next_attempt_at == NOW + timedelta(minutes=1)
    assert retry_due_deliveries() == 0  # not due yet
    moment = NOW
    gaps = []
    while deliveries()[0].status == "pending":
        due = deliveries()[0].next_attempt_at
        gaps.append(due - moment)
        moment = due
        clock.freeze(due)
        assert retry_due_deliveries() == 1
    [delivery] = deliveries()
    assert delivery.status == "failed" and delivery.attempts == MAX_ATTEMPTS >= 5
    assert len(receiver.requests) == MAX_ATTEMPTS
    assert gaps == sorted(gaps) and sum(gaps, timedelta()) >= timedelta(hours=3)


def test_a_retry_that_succeeds_marks_it_delivered(dev_app, shop, receiver):
    from partnernet.conversions.outgoing import retry_due_deliveries

    receiver.statuses = [503]
    sale(dev_app.test_client(), shop)
    clock.freeze(NOW + timedelta(minutes=2))
    assert retry_due_deliveries() == 1
    [delivery] = deliveries()
    assert delivery.status == "delivered" and delivery.attempts == 2


def test_delivery_log_and_send_test_through_the_api(dev_app, shop, receiver):
    from partnernet.accounts.services import issue_api_key
    from partnernet.extensions import db

    c = dev_app.test_client()
    receiver.statuses = [500]
    sale(c, shop)
    partner_key = issue_api_key(partner_id=shop.partner.id)
    db.session.commit()
    page = c.get("/api/v1/partner-postbacks", headers=auth(partner_key)).get_json()
    assert page["total"] == 1
    [item] = page["items"]
    assert item["status"] == "pending" and item["attempt_log"][0]["http_status"] == 500
    merchant_view = c.get("/api/v1/partner-postbacks", headers=auth(shop.api_key)).get_json()
    assert merchant_view["total"] == 1
    other = make_merchant()
    assert c.get("/api/v1/partner-postbacks", headers=auth(other.api_key)).get_json()["total"] == 0

    r = c.post("/api/v1/partner-postbacks/test", json={}, headers=auth(partner_key))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["is_test"] is True and r.get_json()["status"] == "delivered"
    assert "o=TEST-ORDER" in receiver.requests[-1]["path"]
    r = c.post("/api/v1/partner-postbacks/test", json={"partner_id": shop.partner.id},
               headers=auth(shop.api_key))
    assert r.status_code == 201 and len(receiver.requests) == 3
    r = c.post("/api/v1/partner-postbacks/test", json={"partner_id": shop.partner.id},
               headers=auth(other.api_key))
    assert r.status_code == 404


def test_send_test_without_a_url_is_422(dev_app, shop):
    c = dev_app.test_client()
    partner = make_partner(shop.merchant.id)
    r = c.post("/api/v1/partner-postbacks/test", json={"partner_id": partner.id},
               headers=auth(shop.api_key))
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "no_postback_url"


@pytest.mark.parametrize("settings", [
    {"ENV_NAME": "development"},  # development but no explicit flag
    {"ENV_NAME": "staging", "PARTNER_POSTBACK_ALLOW_PRIVATE": True},  # flag outside development
])
def test_private_addresses_are_refused_without_dev_mode_and_the_flag(app_factory, receiver,
                                                                      settings):
    from partnernet.extensions import db

    app = app_factory(**settings)
    with app.app_context():
        shop = make_merchant()
        partner = make_partner(shop.merchant.id)
        partner.postback_url = receiver.url + "/pb"
        db.session.commit()
        r = app.test_client().post("/api/v1/partner-postbacks/test",
                                   json={"partner_id": partner.id}, headers=auth(shop.api_key))
        assert r.status_code == 201
        body = r.get_json()
        assert body["status"] == "failed" and "unsafe_postback_url" in body["last_error"]
    assert receiver.requests == []


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://localhost:9/x", "http://10.0.0.1/x",
    "http://[::1]/x", "http://0.0.0.0/x", "ftp://example.com/x", "http://user:pw@example.com/x",
])
def test_unsafe_destinations(app, url):
    from partnernet.conversions.exceptions import UnsafeDestination
    from partnernet.conversions.outgoing import resolve_destination

    with pytest.raises(UnsafeDestination):
        resolve_destination(url, allow_private=False)


def test_unsafe_destination_is_not_retried(app_factory, receiver):
    from partnernet.extensions import db

    app = app_factory(ENV_NAME="production-like")
    with app.app_context():
        clock.freeze(NOW)
        shop = make_merchant()
        offer = make_offer(shop.merchant.id)
        partner = make_partner(shop.merchant.id)
        partner.postback_url = receiver.url + "/pb?c={click_id}"
        db.session.commit()
        click = make_click_row(offer, partner.id, at=NOW - timedelta(hours=1))
        r = app.test_client().get("/postback", query_string={
            "token": shop.postback_token, "click_id": click.id, "order_id": "Z", "amount": "1.00"})
        assert r.status_code == 200
        [delivery] = deliveries()
        assert delivery.status == "failed" and delivery.next_attempt_at is None
    assert receiver.requests == []


def test_an_unreachable_queue_leaves_the_postback_for_the_retry_job(dev_app, shop, receiver,
                                                                    monkeypatch):
    from partnernet import jobs
    from partnernet.conversions.outgoing import retry_due_deliveries

    def queue_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(jobs, "enqueue", queue_down)
    sale(dev_app.test_client(), shop)  # the store still gets its 200
    [delivery] = deliveries()
    assert delivery.status == "pending" and delivery.attempts == 0 and receiver.requests == []
    assert retry_due_deliveries() == 1
    assert deliveries()[0].status == "delivered" and len(receiver.requests) == 1
