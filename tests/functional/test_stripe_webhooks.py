"""``POST /webhooks/stripe``: signatures, replay and concurrent duplicates, order, effects."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.factories import make_partner
from tests.fakestripe import sign_payload
from tests.payout_helpers import (
    WEBHOOK_SECRET,
    approved_commission,
    assert_ledger_consistent,
    balance,
    onboard,
    payouts,
)

SHOP_NAME = "Webhook shop"


@pytest.fixture
def client(papp):
    return papp.test_client()


_seq = iter(range(1, 10_000))


def event(type_, obj, created=None, account=None, event_id=None):
    body = {"id": event_id or f"evt_{next(_seq):06d}", "object": "event", "type": type_,
            "created": created or int(time.time()), "data": {"object": obj}, "livemode": False}
    if account:
        body["account"] = account
    return json.dumps(body)


def send(client, payload, secret=WEBHOOK_SECRET, timestamp=None, signature=None):
    header = signature if signature is not None else sign_payload(payload, secret, timestamp)
    return client.post("/webhooks/stripe", data=payload, content_type="application/json",
                       headers={"Stripe-Signature": header})


def account_obj(acct_id, enabled):
    return {"id": acct_id, "object": "account", "payouts_enabled": enabled}


@pytest.mark.parametrize("how", ["wrong_secret", "old", "future", "garbage", "missing", "tampered"])
def test_bad_signatures_are_400_and_change_nothing(client, shop, fake, how):
    from partnernet.extensions import db
    from partnernet.payouts.models import StripeEvent

    partner = make_partner(shop.merchant.id)
    acct = onboard(partner, fake, payouts_enabled=False)
    payload = event("account.updated", account_obj(acct, True))
    now = int(time.time())
    if how == "wrong_secret":
        response = send(client, payload, secret="whsec_other")
    elif how == "old":
        response = send(client, payload, timestamp=now - 301)
    elif how == "future":
        response = send(client, payload, timestamp=now + 600)
    elif how == "garbage":
        response = send(client, payload, signature="t=abc,v1=zz")
    elif how == "missing":
        response = client.post("/webhooks/stripe", data=payload, content_type="application/json")
    else:
        header = sign_payload(payload, WEBHOOK_SECRET)
        response = send(client, payload.replace("true", "false "), signature=header)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_signature"
    db.session.refresh(partner)
    assert partner.payouts_enabled is False and db.session.query(StripeEvent).count() == 0


def test_account_updated_enables_payouts_and_a_replay_is_a_noop(client, shop, fake):
    from partnernet.extensions import db
    from partnernet.payouts.models import StripeEvent

    partner = make_partner(shop.merchant.id)
    acct = onboard(partner, fake, payouts_enabled=False)
    payload = event("account.updated", account_obj(acct, True))
    first = send(client, payload)
    assert first.status_code == 200 and first.get_json()["outcome"] == "payouts_enabled"
    db.session.refresh(partner)
    assert partner.payouts_enabled is True
    partner.payouts_enabled = False  # if the replay were applied, it would flip back to True
    db.session.commit()
    again = send(client, payload)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    db.session.refresh(partner)
    assert partner.payouts_enabled is False and db.session.query(StripeEvent).count() == 1


def test_account_events_out_of_order_end_in_the_newest_state(client, shop, fake):
    from partnernet.extensions import db
    from partnernet.payouts.models import PayoutNotice

    partner = make_partner(shop.merchant.id)
    acct = onboard(partner, fake, payouts_enabled=False)
    now = int(time.time())
    newer = event("account.updated", account_obj(acct, False), created=now - 10)
    older = event("account.updated", account_obj(acct, True), created=now - 100)
    assert send(client, newer).get_json()["outcome"] == "payouts_disabled"
    assert send(client, older).get_json()["outcome"] == "stale"
    db.session.refresh(partner)
    assert partner.payouts_enabled is False
    # and a payout run skips it with the reason
    approved_commission(shop.merchant.id, partner.id, shop.offer.id, 9000)
    from partnernet.payouts.services import create_run

    assert create_run(shop.merchant.id).skipped[0]["reason"] == "payouts_disabled"
    assert db.session.query(PayoutNotice).count() == 0  # it was never enabled


def test_concurrent_duplicate_deliveries_apply_once(papp, shop, fake):
    """Eight threads deliver one transfer.reversed event at once: one +payout_return."""
    from partnernet.commissions.models import LedgerEntry
    from partnernet.extensions import db
    from partnernet.payouts.services import create_run

    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    approved_commission(shop.merchant.id, partner.id, shop.offer.id, 9000)
    create_run(shop.merchant.id)
    [p] = payouts()
    transfer = dict(fake.transfers[p.transfer_id], amount_reversed=9000, reversed=True)
    payload = event("transfer.reversed", transfer)
    header = sign_payload(payload, WEBHOOK_SECRET)
    results = []
    barrier = threading.Barrier(8)

    def deliver():
        with papp.test_client() as c:
            barrier.wait()
            results.append(send(c, payload, signature=header))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [r.status_code for r in results] == [200] * 8
    db.session.expire_all()
    returns = db.session.query(LedgerEntry).filter_by(kind="payout_return").all()
    assert [e.amount_minor for e in returns] == [9000]
    assert balance(shop.merchant.id, partner.id) == 9000


def test_transfer_reversed_returns_the_payout_and_the_next_run_pays_again(client, shop, fake):
    from partnernet.extensions import db
    from partnernet.payouts.models import PayoutNotice
    from partnernet.payouts.services import create_run

    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    approved_commission(shop.merchant.id, partner.id, shop.offer.id, 7000)
    create_run(shop.merchant.id)
    [p] = payouts()
    transfer = dict(fake.transfers[p.transfer_id], amount_reversed=7000, reversed=True)

    response = send(client, event("transfer.reversed", transfer))

    assert response.get_json()["outcome"] == "returned"
    [p] = payouts()
    assert p.status == "returned" and p.returned_at is not None
    assert balance(shop.merchant.id, partner.id) == 7000
    assert db.session.query(PayoutNotice).filter_by(kind="transfer_reversed").count() == 1
    second = create_run(shop.merchant.id)
    [again] = [q for q in payouts() if q.run_id == second.id]
    assert again.amount_minor == 7000 and again.status == "paid"
    assert balance(shop.merchant.id, partner.id) == 0
    assert_ledger_consistent(fake)


def test_transfer_reversed_before_the_lost_answer_is_retried(client, shop, fake):
    """Out of order: Stripe made the transfer (answer lost) and reversed it before our retry."""
    from partnernet.payouts.services import create_run

    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    approved_commission(shop.merchant.id, partner.id, shop.offer.id, 6000)
    fake.fail_next("POST /v1/transfers", "500_after_commit")
    create_run(shop.merchant.id)
    [p] = payouts()
    assert p.status == "processing"
    [transfer] = fake.transfers_for(p.id)
    send(client, event("transfer.reversed", dict(transfer, amount_reversed=6000)))
    [p] = payouts()
    assert p.status == "returned" and p.transfer_id == transfer["id"]
    from tests.integration.test_payouts import retry

    retry()
    [p] = payouts()
    assert p.status == "returned" and len(fake.transfers_for(p.id)) == 1
    assert balance(shop.merchant.id, partner.id) == 6000
    assert_ledger_consistent(fake)


def test_payout_failed_on_the_connected_account_is_recorded_for_the_partner(client, shop, fake):
    from partnernet.payouts.services import partner_notices

    partner = make_partner(shop.merchant.id)
    acct = onboard(partner, fake)
    po = {"id": "po_123", "object": "payout", "amount": 4200, "currency": "usd",
          "failure_code": "account_closed", "failure_message": "The bank account has been closed."}
    assert send(client, event("payout.failed", po, account=acct)).get_json()["outcome"] == "recorded"
    [notice] = partner_notices(partner.id)
    assert notice.kind == "payout_failed" and "42.00 USD" in notice.message
    assert "bank account has been closed" in notice.message


def test_unknown_event_types_are_acknowledged(client, shop):
    response = send(client, event("charge.succeeded", {"id": "ch_1"}))
    assert response.status_code == 200 and response.get_json()["outcome"] == "ignored"
