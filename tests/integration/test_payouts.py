"""Payout runs against the fake Stripe server, through the real ``stripe`` library.

Happy path in USD and JPY, lost answers (500 / dropped connection / timeout), refusals,
429 pacing, the 24-hour key window, clawbacks, skips with reasons, four eyes, manual
rail, reconciliation; the ledger is checked after each.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import make_merchant, make_offer, make_partner
from tests.payout_helpers import (
    approved_commission,
    assert_ledger_consistent,
    balance,
    clawback,
    onboard,
    payout,
    payouts,
    stripe_config,
)

FAKE_STRIPE_HANG_SECONDS = 5
SHOP_NAME = "Payout shop"


def earn(shop, partner, *amounts, currency="USD"):
    return [approved_commission(shop.merchant.id, partner.id, shop.offer.id, a, currency)
            for a in amounts]


def run(shop, **kwargs):
    from partnernet.payouts.services import create_run

    return create_run(shop.merchant.id, **kwargs)


def retry(minutes=90):
    """Run the sweeper as if ``minutes`` had passed (every backoff is due)."""
    from partnernet import clock
    from partnernet.payouts.services import retry_payouts

    clock.freeze(clock.now() + timedelta(minutes=minutes))
    try:
        return retry_payouts()
    finally:
        clock.freeze(None)


def in_flight(shop, fake, amount, fault):
    """A partner's payout whose transfer answer was lost (``fault``): left ``processing``."""
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    earn(shop, partner, amount)
    fake.fail_next("POST /v1/transfers", fault)
    run(shop)
    [p] = payouts()
    assert p.status == "processing"
    return partner, p


def test_happy_path_usd_and_jpy_amounts_are_the_claimed_balances(shop, fake):
    usd = make_partner(shop.merchant.id)
    yen = make_partner(shop.merchant.id)
    usd_acct, yen_acct = onboard(usd, fake), onboard(yen, fake)
    earn(shop, usd, 1999, 4001, 1)
    earn(shop, yen, 3000, 4500, currency="JPY")  # ¥7,500: zero-decimal, 7500 minor units

    created = run(shop)

    assert created.status == "approved" and created.skipped == []
    by_partner = {p.partner_id: p for p in payouts()}
    assert by_partner[usd.id].status == "paid" and by_partner[yen.id].status == "paid"
    [t_usd] = fake.transfers_for(by_partner[usd.id].id)
    [t_yen] = fake.transfers_for(by_partner[yen.id].id)
    assert (t_usd["amount"], t_usd["currency"], t_usd["destination"]) == (6001, "usd", usd_acct)
    assert (t_yen["amount"], t_yen["currency"], t_yen["destination"]) == (7500, "jpy", yen_acct)
    assert t_usd["transfer_group"] == t_yen["transfer_group"] == f"run-{created.id}"
    assert t_usd["metadata"]["payout_id"] == str(by_partner[usd.id].id)
    keys = [h.get("idempotency-key") for m, p, h in fake.requests if p == "/v1/transfers"]
    assert sorted(keys) == sorted(f"payout-{p.id}" for p in by_partner.values())
    assert balance(shop.merchant.id, usd.id) == 0 and balance(shop.merchant.id, yen.id, "JPY") == 0
    assert_ledger_consistent(fake)
    # Nothing left to pay: a second run makes no payout.
    assert run(shop).skipped == [] and len(payouts()) == 2


@pytest.mark.parametrize("fault", ["500_after_commit", "drop_after_commit", "hang_after_commit"])
def test_lost_answer_stays_processing_then_retry_makes_one_transfer(shop, fake, fault):
    _, p = in_flight(shop, fake, 12345, fault)

    assert p.transfer_id is None and p.attempts == 1
    assert "outcome unknown" in p.last_error
    assert len(fake.transfers_for(p.id)) == 1  # Stripe did make it
    fake.release()
    assert retry()["enqueued"] == 1
    p = payout(p.id)
    assert p.status == "paid" and p.attempts == 2
    [transfer] = fake.transfers_for(p.id)
    assert p.transfer_id == transfer["id"] and transfer["amount"] == 12345
    assert fake.post_count("/v1/transfers") == 2  # the retry was replayed by its key
    assert_ledger_consistent(fake)


def test_a_payout_in_flight_waits_untouched_while_stripe_is_unconfigured(shop, fake):
    """Stripe's key removed while a transfer's outcome is unknown: the payout is neither
    failed (its money back in the balance would be paid twice, since Stripe made the
    transfer) nor sent; with the key back, the retry adopts the one transfer."""
    from flask import current_app

    from partnernet.payouts.services import send_payout

    partner, p = in_flight(shop, fake, 12345, "500_after_commit")
    assert len(fake.transfers_for(p.id)) == 1
    key = current_app.config["STRIPE_SECRET_KEY"]
    current_app.config["STRIPE_SECRET_KEY"] = None
    current_app.extensions["partnernet"].pop("payout_gateway", None)
    posts = fake.post_count("/v1/transfers")

    assert send_payout(p.id) == "processing"

    p = payout(p.id)
    assert p.status == "processing" and p.attempts == 1 and p.failed_at is None
    assert "Stripe is not configured" in p.last_error
    assert balance(shop.merchant.id, partner.id) == 0  # nothing returned to be paid again
    assert fake.post_count("/v1/transfers") == posts
    assert run(shop).skipped == [] and len(payouts()) == 1  # no second payout of the same money

    current_app.config["STRIPE_SECRET_KEY"] = key
    current_app.extensions["partnernet"].pop("payout_gateway", None)
    fake.release()
    assert retry()["enqueued"] == 1
    p = payout(p.id)
    assert p.status == "paid" and len(fake.transfers_for(p.id)) == 1
    assert_ledger_consistent(fake)


def test_the_librarys_own_retries_reuse_the_key(app_factory, fake):
    app = app_factory(**stripe_config(fake.url, STRIPE_MAX_NETWORK_RETRIES=2))
    with app.app_context():
        shop = make_merchant()
        partner = make_partner(shop.merchant.id)
        onboard(partner, fake)
        approved_commission(shop.merchant.id, partner.id, make_offer(shop.merchant.id).id, 5000)
        fake.fail_next("POST /v1/transfers", "500_after_commit")
        from partnernet.payouts.services import create_run

        create_run(shop.merchant.id)
        [p] = payouts()
        assert p.status == "paid" and p.attempts == 1
        assert len(fake.transfers_for(p.id)) == 1 and fake.post_count("/v1/transfers") == 2


def test_new_commission_between_attempts_goes_to_the_next_payout_not_the_retry(shop, fake):
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    earn(shop, partner, 6000)
    fake.fail_next("POST /v1/transfers", "500")  # nothing made, outcome unknown to us
    run(shop)
    [first] = payouts()
    assert first.status == "processing"
    earn(shop, partner, 7000)

    retry()

    first = payout(first.id)
    assert first.status == "paid" and first.amount_minor == 6000
    assert [t["amount"] for t in fake.transfers_for(first.id)] == [6000]
    second_run = run(shop)
    [second] = [p for p in payouts() if p.run_id == second_run.id]
    assert second.amount_minor == 7000 and second.status == "paid"
    assert_ledger_consistent(fake)


def test_refusal_fails_the_payout_restores_the_balance_and_the_next_run_pays(shop, fake):
    from partnernet.extensions import db
    from partnernet.payouts.models import PayoutNotice

    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    commissions = earn(shop, partner, 5000, 2500)
    fake.fail_next("POST /v1/transfers", "400")

    run(shop)

    [failed] = payouts()
    assert failed.status == "failed" and "account_invalid" in failed.last_error
    assert balance(shop.merchant.id, partner.id) == 7500
    assert {i["commission_id"] for i in failed.released_items} == {c.id for c in commissions}
    for c in commissions:
        db.session.refresh(c)
        assert c.status == "approved"
    notice = db.session.query(PayoutNotice).filter_by(partner_id=partner.id).one()
    assert notice.kind == "transfer_failed" and "75.00" in notice.message

    again = run(shop)

    [paid] = [p for p in payouts() if p.run_id == again.id]
    assert paid.id != failed.id and paid.status == "paid" and paid.amount_minor == 7500
    assert len(fake.transfers_for(paid.id)) == 1 and fake.transfers_for(failed.id) == []
    assert balance(shop.merchant.id, partner.id) == 0
    assert_ledger_consistent(fake)


def test_skips_below_minimum_not_onboarded_and_disabled_with_reasons(shop, fake):
    from partnernet.extensions import db
    from partnernet.payouts.services import partner_payout_readiness

    small = make_partner(shop.merchant.id)
    onboard(small, fake)
    earn(shop, small, 4999)  # minimum is 50.00
    not_onboarded = make_partner(shop.merchant.id)
    not_onboarded.payout_rail = "stripe"
    db.session.commit()
    earn(shop, not_onboarded, 9000)
    disabled = make_partner(shop.merchant.id)
    onboard(disabled, fake, payouts_enabled=False)
    earn(shop, disabled, 9000)

    created = run(shop)

    reasons = {s["partner_id"]: s["reason"] for s in created.skipped}
    assert reasons == {small.id: "below_minimum", not_onboarded.id: "stripe_not_onboarded",
                       disabled.id: "payouts_disabled"}
    assert all(s["message"] for s in created.skipped)
    assert payouts() == [] and fake.post_count("/v1/transfers") == 0
    assert balance(shop.merchant.id, disabled.id) == 9000
    readiness = partner_payout_readiness(shop.merchant.id, disabled.id)
    assert readiness["ready"] is False and readiness["reason"] == "payouts_disabled"
    # the merchant lowers its minimum: now the small one is paid
    shop.merchant.min_payout_minor = 1000
    db.session.commit()
    assert [p.partner_id for p in payouts(run(shop).merchant_id)] == [small.id]


def test_clawback_of_a_paid_commission_is_netted_by_the_next_payout(shop, fake):
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    [paid_one] = earn(shop, partner, 10000)
    run(shop)
    clawback(paid_one, 3000)  # refund after payment
    earn(shop, partner, 9000)

    second = run(shop)

    [p] = [p for p in payouts() if p.run_id == second.id]
    assert p.amount_minor == 6000 and p.status == "paid"
    assert fake.transfers_for(p.id)[0]["amount"] == 6000
    assert balance(shop.merchant.id, partner.id) == 0
    assert_ledger_consistent(fake)


def test_clawback_larger_than_earnings_carries_over(shop, fake):
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    [paid_one] = earn(shop, partner, 10000)
    run(shop)
    clawback(paid_one, 10000)
    earn(shop, partner, 6000)
    created = run(shop)
    assert created.skipped[0]["reason"] == "below_minimum" and created.skipped[0]["amount"] == "-40.00"
    earn(shop, partner, 10000)
    third = run(shop)
    [p] = [p for p in payouts() if p.run_id == third.id]
    assert p.amount_minor == 6000
    assert_ledger_consistent(fake)


def test_retry_after_the_key_window_adopts_the_existing_transfer(shop, fake):
    from partnernet import clock
    from partnernet.payouts.services import retry_payouts

    _, p = in_flight(shop, fake, 8000, "drop_after_commit")
    fake.forget_idempotency_keys()  # 25 hours later Stripe no longer knows the key

    clock.freeze(clock.now() + timedelta(hours=25))
    try:
        retry_payouts()
    finally:
        clock.freeze(None)

    p = payout(p.id)
    assert p.status == "paid" and p.last_error == "adopted existing transfer"
    assert len(fake.transfers_for(p.id)) == 1 and fake.post_count("/v1/transfers") == 1
    assert_ledger_consistent(fake)


def test_retry_after_the_key_window_sends_when_nothing_was_made(shop, fake):
    from partnernet import clock
    from partnernet.payouts.services import retry_payouts

    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    earn(shop, partner, 8000)
    fake.fail_next("POST /v1/transfers", "timeout")
    run(shop)
    fake.release()
    clock.freeze(clock.now() + timedelta(hours=25))
    try:
        retry_payouts()
    finally:
        clock.freeze(None)
    [p] = payouts()
    assert p.status == "paid" and len(fake.transfers_for(p.id)) == 1


def test_429_backs_off_and_goes_through(shop, fake):
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    earn(shop, partner, 8000)
    fake.fail_next("POST /v1/transfers", "429", times=2)
    run(shop)
    [p] = payouts()
    assert p.status == "paid" and fake.post_count("/v1/transfers") == 3


def test_pacer_keeps_under_the_rate():
    from partnernet.payouts.gateway import Pacer

    slept = []
    pacer = Pacer(20, sleep=slept.append)
    for _ in range(41):
        pacer.wait()
    # 41 calls at 20/s span at least two seconds: the waits add up to ~2 s.
    assert sum(slept) >= 1.9
    pacer.backoff(5)
    slept.clear()
    pacer.wait()
    assert slept and slept[-1] >= 4.5


def test_four_eyes_run_waits_for_another_merchant_user(shop, fake):
    from partnernet.accounts.models import User
    from partnernet.extensions import db
    from partnernet.payouts.exceptions import SecondApproverRequired
    from partnernet.payouts.services import approve_run

    shop.merchant.payout_settings = {"approval_threshold_minor": {"USD": 100000}}
    second = User(email="cfo@shop.example", role="merchant", merchant_id=shop.merchant.id)
    db.session.add(second)
    db.session.commit()
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    earn(shop, partner, 150000)

    created = run(shop, created_by_id=shop.owner.id)

    assert created.status == "awaiting_approval"
    [p] = payouts()
    assert p.status == "awaiting_approval" and fake.post_count("/v1/transfers") == 0
    assert retry()["enqueued"] == 0  # the sweeper leaves it alone
    with pytest.raises(SecondApproverRequired):
        approve_run(shop.merchant.id, created.id, shop.owner.id)
    approve_run(shop.merchant.id, created.id, second.id)
    assert payout(p.id).status == "paid" and len(fake.transfers_for(p.id)) == 1
    assert_ledger_consistent(fake)


def test_rejected_run_returns_the_balance(shop, fake):
    from partnernet.payouts.services import reject_run

    shop.merchant.payout_settings = {"approval_threshold_minor": 1000}
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    earn(shop, partner, 9000)
    created = run(shop)
    reject_run(shop.merchant.id, created.id)
    assert payouts()[0].status == "failed" and balance(shop.merchant.id, partner.id) == 9000
    assert_ledger_consistent(fake)


def test_manual_rail_csv_and_mark_paid(shop, fake):
    from partnernet.extensions import db
    from partnernet.payouts.exceptions import NotManualPayout
    from partnernet.payouts.manual import export_manual_csv, mark_manual_paid

    shop.merchant.payout_settings = {"rail": "manual"}
    db.session.commit()
    partner = make_partner(shop.merchant.id, name="=HYPERLINK(evil)")
    onboard(partner, fake)  # the merchant prefers manual even for Stripe partners
    earn(shop, partner, 5000, 1234)
    run(shop)
    [p] = payouts()
    assert p.rail == "manual" and p.status == "queued" and fake.post_count("/v1/transfers") == 0
    paypal = export_manual_csv(shop.merchant.id, "paypal").splitlines()
    assert paypal[0] == "Recipient,Amount,Currency,Customer ID,Note"
    assert paypal[1].startswith(f"{partner.email},62.34,USD,payout-{p.id},")
    wise = export_manual_csv(shop.merchant.id, "wise").splitlines()
    assert wise[0].startswith("name,recipientEmail,paymentReference")
    assert wise[1].startswith("'=HYPERLINK(evil)")  # no formula injection
    assert balance(shop.merchant.id, partner.id) == 0

    mark_manual_paid(shop.merchant.id, p.id, "PAYPAL-BATCH-77")

    p = payout(p.id)
    assert p.status == "paid" and p.manual_reference == "PAYPAL-BATCH-77"
    assert export_manual_csv(shop.merchant.id).count("\n") == 1  # header only now
    with pytest.raises(NotManualPayout):
        mark_manual_paid(shop.merchant.id, p.id, "again")
    assert_ledger_consistent()


def test_reconcile_reports_differences(shop, fake):
    from partnernet.extensions import db
    from partnernet.payouts.reconcile import reconcile

    a, b = make_partner(shop.merchant.id), make_partner(shop.merchant.id)
    onboard(a, fake)
    onboard(b, fake)
    earn(shop, a, 7000)
    earn(shop, b, 8000)
    fake.fail_next("POST /v1/transfers", "drop_after_commit")
    run(shop)
    assert {d["problem"] for d in reconcile(shop.merchant.id)} == {"transfer_exists_but_payout_processing"}
    retry()
    assert reconcile(shop.merchant.id) == []
    pa = [p for p in payouts() if p.partner_id == a.id][0]
    fake.transfers[pa.transfer_id]["amount"] = 6999  # someone changed it behind our back
    pa.amount_minor = pa.amount_minor  # no-op: the database keeps 7000
    db.session.commit()
    assert [d["problem"] for d in reconcile(shop.merchant.id)] == ["amount_differs"]


def test_cli_run_and_reconcile(papp, shop, fake):
    import json

    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    earn(shop, partner, 5500)
    runner = papp.test_cli_runner()
    result = runner.invoke(args=["payouts", "run", "--merchant", str(shop.merchant.id)])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["payouts"][0]["amount"] == "55.00" and body["payouts"][0]["status"] == "paid"
    result = runner.invoke(args=["payouts", "reconcile"])
    assert result.exit_code == 0 and json.loads(result.output)["ok"] is True
    result = runner.invoke(args=["jobs", "run", "retry-payouts"])
    assert result.exit_code == 0 and '"enqueued": 0' in result.output
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output


def test_clawback_waits_while_its_payout_is_in_flight_and_is_not_lost_if_it_fails(shop, fake):
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    [first] = earn(shop, partner, 10000)
    fake.fail_next("POST /v1/transfers", "500")  # unknown outcome: in flight
    run(shop)
    [in_flight] = payouts()
    clawback(first, 10000)  # refunded while the payout is in flight
    earn(shop, partner, 8000)

    second = run(shop)  # the clawback waits for the first payout: nothing may exceed the balance

    assert [s["reason"] for s in second.skipped] == ["payout_in_flight"]
    fake.fail_next("POST /v1/transfers", "400")
    retry()  # the in-flight payout is now definitely refused
    assert payout(in_flight.id).status == "failed"
    # the refunded commission was never paid and is not clawed back from anything else
    assert balance(shop.merchant.id, partner.id) == 8000
    third = run(shop)
    [p3] = [p for p in payouts() if p.run_id == third.id]
    assert p3.amount_minor == 8000 and p3.status == "paid"
    assert_ledger_consistent(fake)


def test_clawback_while_in_flight_is_netted_once_the_payout_is_paid(shop, fake):
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    [first] = earn(shop, partner, 10000)
    fake.fail_next("POST /v1/transfers", "500")
    run(shop)
    clawback(first, 4000)
    earn(shop, partner, 9000)
    assert run(shop).skipped[0]["reason"] == "payout_in_flight"
    retry()  # the first payout goes through: 100.00 paid
    later = run(shop)
    [p] = [p for p in payouts() if p.run_id == later.id]
    assert p.amount_minor == 5000  # 90.00 − 40.00 clawback
    assert_ledger_consistent(fake)


def test_pacer_shares_the_rate_across_workers_through_redis():
    import fakeredis

    from partnernet.payouts.gateway import Pacer

    conn = fakeredis.FakeRedis()
    slept: list[float] = []
    workers = [Pacer(5, conn, "pn:test:", sleep=slept.append) for _ in range(2)]
    for i in range(5):
        workers[i % 2].wait()
    assert slept == [] or max(slept) < 1  # five in the window: only in-process spacing
    workers[0].wait()  # the sixth in the same second, from either worker, waits for the next
    assert any(0 < s <= 1 for s in slept)


@pytest.mark.parametrize("seed", range(12))
def test_random_histories_keep_the_ledger_and_one_transfer_per_payout(shop, fake, seed):
    """Random interleavings of earnings, runs, faults, clawbacks and retries."""
    import random

    rnd = random.Random(seed)
    partners = [make_partner(shop.merchant.id) for _ in range(3)]
    for p in partners:
        onboard(p, fake)
    commissions = []
    faults = ["500", "400", "500_after_commit", "drop_after_commit", "429"]
    for _ in range(18):
        step = rnd.choice(["earn", "earn", "run", "fault", "clawback", "retry"])
        if step == "earn":
            commissions += earn(shop, rnd.choice(partners), rnd.randint(1000, 9000))
        elif step == "run":
            run(shop)
        elif step == "fault":
            fake.fail_next("POST /v1/transfers", rnd.choice(faults))
        elif step == "clawback" and commissions:
            from partnernet.extensions import db

            c = rnd.choice(commissions)
            db.session.refresh(c)
            if c.status in ("approved", "paid") and c.reversed_minor == 0:
                clawback(c, rnd.randint(1, c.amount_minor))
        elif step == "retry":
            retry()
    fake.faults.clear()
    retry(minutes=24 * 60)  # past every backoff set by the earlier (time-shifted) retries
    assert {p.status for p in payouts()} <= {"paid", "failed"}
    assert_ledger_consistent(fake)


def test_wrong_api_key_leaves_the_payout_processing_not_failed(app_factory, fake):
    app = app_factory(**stripe_config(fake.url, STRIPE_SECRET_KEY="rk_wrong"))
    with app.app_context():
        shop = make_merchant()
        partner = make_partner(shop.merchant.id)
        onboard(partner, fake)
        approved_commission(shop.merchant.id, partner.id, make_offer(shop.merchant.id).id, 6000)
        from partnernet.payouts.services import create_run

        create_run(shop.merchant.id)
        [p] = payouts()
        assert p.status == "processing" and "API key" in p.last_error
        assert balance(shop.merchant.id, partner.id) == 0  # still claimed: fix the key, retry


def test_concurrent_sends_of_one_payout_make_one_transfer(papp, shop, fake):
    import threading

    from partnernet.extensions import db
    from partnernet.payouts.services import send_payout

    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    earn(shop, partner, 7777)
    fake.fail_next("POST /v1/transfers", "500")
    run(shop)
    [p] = payouts()
    barrier = threading.Barrier(4)

    def send():
        with papp.app_context():
            barrier.wait()
            try:
                send_payout(p.id)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    p = payout(p.id)
    assert p.status == "paid" and len(fake.transfers_for(p.id)) == 1
    assert_ledger_consistent(fake)


def test_cli_four_eyes_approval(papp, shop, fake):
    import json

    from partnernet.accounts.models import User
    from partnernet.extensions import db

    shop.merchant.payout_settings = {"approval_threshold_minor": 5000}
    db.session.add(User(email="second@shop.example", role="merchant", merchant_id=shop.merchant.id))
    db.session.commit()
    partner = make_partner(shop.merchant.id)
    onboard(partner, fake)
    earn(shop, partner, 9000)
    runner = papp.test_cli_runner()
    out = json.loads(runner.invoke(args=["payouts", "run", "--merchant", str(shop.merchant.id)]).output)
    assert out["status"] == "awaiting_approval" and out["payouts"][0]["status"] == "awaiting_approval"
    refused = runner.invoke(args=["payouts", "approve", str(out["run_id"]), "--merchant",
                                  str(shop.merchant.id), "--user-email", partner.email])
    assert refused.exit_code != 0 and "four eyes" in refused.output
    ok = runner.invoke(args=["payouts", "approve", str(out["run_id"]), "--merchant",
                             str(shop.merchant.id), "--user-email", "second@shop.example"])
    assert ok.exit_code == 0, ok.output
    assert payouts()[0].status == "paid" and len(fake.transfers_for(payouts()[0].id)) == 1
