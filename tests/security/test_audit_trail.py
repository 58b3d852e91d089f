"""The audit trail beyond logins: postback and Stripe webhook refusals (bad token, bad
signature, rate limit) are logged without the secret; payout run approvals and rejections are
recorded with who decided."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

import pytest
from sqlalchemy import select

from partnernet.accounts.models import AuditEvent, User
from partnernet.extensions import db
from tests.factories import make_click_row, make_merchant, make_offer, make_partner
from tests.payout_helpers import approved_commission


def audit_lines(caplog: pytest.LogCaptureFixture, action: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "partnernet.audit" and r.getMessage().startswith(action + " ")]


def test_postback_token_and_signature_failures_are_logged_without_the_secret(
        app: Any, caplog: pytest.LogCaptureFixture) -> None:
    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    click = make_click_row(offer, make_partner(shop.merchant.id).id)
    client = app.test_client()
    forged = "pbt_forged_token_value_123"
    with caplog.at_level(logging.INFO, logger="partnernet.audit"):
        assert client.get("/postback", query_string={"token": forged, "click_id": click.id,
                                                     "order_id": "A-1", "amount": "10.00"}).status_code == 401
        query = f"click_id={click.id}&order_id=A-2&amount=10.00&merchant_id={shop.merchant.id}"
        bad = hmac.new(b"not-the-secret", query.encode(), hashlib.sha256).hexdigest()
        assert client.get(f"/postback?{query}",
                          headers={"X-Partnernet-Signature": f"sha256={bad}"}).status_code == 401
        ok = client.get("/postback", query_string={"token": shop.postback_token, "click_id": click.id,
                                                   "order_id": "A-3", "amount": "10.00"})
        assert ok.status_code == 200
    lines = audit_lines(caplog, "signature_failed")
    assert len(lines) == 2, lines  # the accepted postback is not a refusal
    assert all('"source": "postback"' in line and '"status": "401"' in line for line in lines)
    assert sorted(line.split('"code": "')[1].split('"')[0] for line in lines) == [
        "invalid_signature", "invalid_token"]
    assert not any(forged in r.getMessage() or shop.postback_token in r.getMessage() for r in caplog.records)


def test_a_stripe_webhook_with_a_bad_signature_is_logged(app_factory: Any,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    app = app_factory(STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_test_secret")
    with app.app_context(), caplog.at_level(logging.INFO, logger="partnernet.audit"):
        answer = app.test_client().post("/webhooks/stripe", data=b'{"type": "account.updated"}',
                                        headers={"Stripe-Signature": "t=1,v1=deadbeef",
                                                 "Content-Type": "application/json"})
        assert answer.status_code == 400  # Stripe's convention for a bad signature
    [line] = audit_lines(caplog, "signature_failed")
    assert '"source": "stripe_webhook"' in line and '"code": "invalid_signature"' in line
    assert not any("whsec_test_secret" in r.getMessage() for r in caplog.records)


def test_a_rate_limited_postback_is_logged(app_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = app_factory(RATELIMIT_ENABLED=True, POSTBACK_RATE_LIMIT="2 per minute")
    with app.app_context(), caplog.at_level(logging.INFO, logger="partnernet.audit"):
        shop = make_merchant()
        client = app.test_client()
        answers = [client.get("/postback", query_string={"token": shop.postback_token, "order_id": f"R-{i}",
                                                         "click_id": "nope"}).status_code for i in range(3)]
        db.session.remove()
    assert answers[-1] == 429
    assert any('"source": "postback"' in line for line in audit_lines(caplog, "rate_limited"))


def test_payout_run_approval_and_rejection_are_recorded_with_the_decider(app: Any) -> None:
    from partnernet.payouts.services import approve_run, create_run, reject_run

    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    shop.merchant.payout_settings = {"approval_threshold_minor": 1000}
    second = User(email="cfo@shop.example", role="merchant", merchant_id=shop.merchant.id)
    db.session.add(second)
    db.session.commit()
    first_partner, second_partner = make_partner(shop.merchant.id), make_partner(shop.merchant.id)
    approved_commission(shop.merchant.id, first_partner.id, offer.id, 9000)
    approved = create_run(shop.merchant.id, created_by_id=shop.owner.id, partner_ids=[first_partner.id])
    assert approved.status == "awaiting_approval"
    approve_run(shop.merchant.id, approved.id, second.id)
    approved_commission(shop.merchant.id, second_partner.id, offer.id, 9000)
    rejected = create_run(shop.merchant.id, created_by_id=shop.owner.id, partner_ids=[second_partner.id])
    reject_run(shop.merchant.id, rejected.id, second.id)
    events = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action.in_(("payout_run_approved", "payout_run_rejected"))).order_by(AuditEvent.id)).all()
    assert [(e.action, e.user_id, e.merchant_id, e.detail["run_id"]) for e in events] == [
        ("payout_run_approved", second.id, shop.merchant.id, str(approved.id)),
        ("payout_run_rejected", second.id, shop.merchant.id, str(rejected.id))]
