"""The commission engine through real postbacks: plans, tiers, overrides, caps, recurring,
fraud rules on the database, holds, approve-matured, reversals and clawbacks, CPC, the ledger."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, text

from partnernet import clock
from partnernet.extensions import db
from tests.commission_helpers import (
    NOW,
    Shop,
    assert_ledger_ok,
    balance,
    commission,
    entries,
)
from tests.factories import make_coupon_row


@pytest.fixture
def shop(client):
    clock.freeze(NOW)
    return Shop(client)


def rules(c):
    return [(f["rule"], f["action"]) for f in c["flags"]]


# -- plans ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("currency", "plan", "amount", "expected"), [
    ("USD", {"event": "sale", "type": "cps", "percent": "10"}, "0.25", "0.03"),    # half up
    ("USD", {"event": "sale", "type": "cpa", "amount": "5.00"}, "999.00", "5.00"),
    ("JPY", {"event": "sale", "type": "cps", "percent": "5"}, "1970", "99"),       # 98.5 → 99
    ("KWD", {"event": "sale", "type": "cps", "percent": "12.5"}, "1.234", "0.154"),
])
def test_plan_pays_in_the_offers_currency(client, currency, plan, amount, expected):
    clock.freeze(NOW)
    s = Shop(client, currency=currency, plans=[plan])
    c = s.sale(amount, currency=currency)
    assert (c["amount"], c["currency"], c["status"]) == (expected, currency, "pending")
    assert datetime.fromisoformat(c["hold_until"]) == NOW + timedelta(days=30)


def test_lead_pays_flat(client):
    clock.freeze(NOW)
    s = Shop(client, plans=[{"event": "lead", "type": "cpl", "amount": "2.50"}])
    assert s.sale(None, event="lead")["amount"] == "2.50"


def test_tier_applies_from_the_conversion_that_reaches_it_within_the_month(client):
    clock.freeze(datetime(2026, 3, 30, 12, tzinfo=UTC))
    s = Shop(client, plans=[{"event": "sale", "type": "cps", "percent": "10",
                             "tiers": [{"min_conversions": 3, "percent": "20"}]}])
    assert [s.sale("10.00")["amount"] for _ in range(4)] == ["1.00", "1.00", "2.00", "2.00"]
    clock.freeze(datetime(2026, 4, 1, 12, tzinfo=UTC))  # a new month starts from the plan again
    assert s.sale("10.00")["amount"] == "1.00"


def test_rejected_or_reversed_conversions_do_not_count_towards_tiers(client):
    clock.freeze(NOW)
    s = Shop(client, plans=[{"event": "sale", "type": "cps", "percent": "10",
                             "tiers": [{"min_conversions": 2, "percent": "20"}]}])
    s.sale("10.00")
    s.refund("O-1")
    assert s.sale("10.00")["amount"] == "1.00"
    assert s.sale("10.00")["amount"] == "2.00"


def test_override_beats_tier_beats_plan(client):
    clock.freeze(NOW)
    s = Shop(client, plans=[{"event": "sale", "type": "cps", "percent": "10",
                             "tiers": [{"min_conversions": 1, "percent": "15"}]}])
    other = s.partner
    assert s.sale("10.00")["amount"] == "1.50"      # tier beats plan
    r = client.post(f"/api/v1/offers/{s.offer.id}/overrides", headers=s.auth(),
                    json={"partner_id": other.id, "event": "sale", "percent": "30"})
    assert r.status_code == 201, r.get_json()
    assert s.sale("10.00")["amount"] == "3.00"      # override beats tier


def test_recurring_event_pays_within_n_months_of_the_first_sale(client):
    clock.freeze(NOW)
    s = Shop(client, plans=[{"event": "sale", "type": "cps", "percent": "10"},
                            {"event": "renewal", "type": "cpa", "amount": "3.00"}],
             recurring_months=2)
    s.sale("20.00", customer_id="cust-1")
    clock.freeze(NOW + timedelta(days=40))
    renewal = s.sale(None, event="renewal", customer_id="cust-1")
    assert (renewal["amount"], renewal["status"], renewal["flags"]) == ("3.00", "pending", [])
    clock.freeze(NOW + timedelta(days=70))
    late = s.sale(None, event="renewal", customer_id="cust-1")
    assert late["status"] == "rejected" and rules(late) == [("recurring_window", "reject")]
    stranger = s.sale(None, event="renewal", customer_id="cust-2")
    assert stranger["status"] == "rejected"


# -- fraud rules on real conversions ----------------------------------------------------------

def test_a_clean_conversion_has_no_flags(shop):
    c = shop.sale()
    assert c["status"] == "pending" and c["flags"] == []


def test_fast_conversion_holds_with_a_reason(shop):
    c = shop.sale(click=shop.click(age=timedelta(seconds=4)))
    assert c["status"] == "held" and rules(c) == [("fast_conversion", "hold")]
    assert "4 s" in c["flags"][0]["reason"]


def test_self_referral_by_email_and_by_own_domain(shop):
    c = shop.sale(customer_email=shop.partner.email.upper())
    assert c["status"] == "held" and rules(c) == [("self_referral", "hold")]
    domain = shop.partner.email.rpartition("@")[2]
    assert rules(shop.sale(customer_email=f"friend@{domain}")) == [("self_referral", "hold")]
    assert shop.sale(customer_email="someone@gmail.com")["flags"] == []


def test_duplicate_ip_holds_the_fourth_conversion_from_one_shopper_ip(shop):
    statuses = [shop.sale(click=shop.click(ip_hash="same-ip"))["status"] for _ in range(4)]
    assert statuses == ["pending", "pending", "pending", "held"]
    assert shop.sale(click=shop.click(ip_hash="other-ip"))["status"] == "pending"
    clock.freeze(NOW + timedelta(hours=25))  # a day later the window has passed
    assert shop.sale(click=shop.click(ip_hash="same-ip"))["status"] == "pending"


def test_blocked_ip_rejects_by_postback_or_click_network(shop, client):
    r = client.patch("/api/v1/fraud-rules", headers=shop.auth(), json={"ip_blocklist": ["127.0.0.0/8"]})
    assert r.status_code == 200, r.get_json()
    c = shop.sale()  # the test client's postback comes from 127.0.0.1
    assert c["status"] == "rejected" and rules(c) == [("blocked_ip", "reject")]
    client.patch("/api/v1/fraud-rules", headers=shop.auth(), json={"ip_blocklist": ["198.51.100.0/24"]})
    assert shop.sale(click=shop.click(ip_truncated="198.51.100.0"))["status"] == "rejected"
    assert shop.sale(click=shop.click(ip_truncated="203.0.113.0"))["status"] == "pending"


def test_bot_click_holds(shop):
    assert rules(shop.sale(click=shop.click(is_bot=True))) == [("bot_click", "hold")]


def test_paid_ads_hold_only_when_the_offer_forbids_paid_search(shop):
    assert shop.sale(click=shop.click(paid_ads_param="gclid"))["flags"] == []
    shop.offer.allow_paid_search = False
    db.session.commit()
    assert rules(shop.sale(click=shop.click(paid_ads_param="gclid"))) == [("paid_ads", "hold")]


def test_coupon_leak_is_flagged_but_paid_on_offers_that_do_not_require_a_click(shop):
    make_coupon_row(shop.offer, shop.partner.id, "SPRING10")
    c = shop.sale(coupon="SPRING10", click=None)
    assert c["status"] == "pending" and rules(c) == [("coupon_leak", "flag")]
    # With a click of the coupon's partner for this shopper, nothing is flagged.
    assert shop.sale(coupon="SPRING10", click=shop.click())["flags"] == []
    # Or a customer who came earlier through that partner's click.
    shop.sale(customer_id="c-9")
    assert shop.sale(coupon="SPRING10", click=None, customer_id="c-9")["flags"] == []


def test_amount_outlier_holds_above_ten_times_the_trailing_median(shop):
    for _ in range(5):
        shop.sale("10.00")
    assert shop.sale("100.00")["flags"] == []
    assert rules(shop.sale("100.01")) == [("amount_outlier", "hold")]


def test_daily_cap_holds_conversions_over_it(client):
    clock.freeze(NOW)
    s = Shop(client, daily_cap=2)
    assert [s.sale()["status"] for _ in range(3)] == ["pending", "pending", "held"]
    assert rules(s.sale()) == [("cap_exceeded", "hold")]
    clock.freeze(NOW + timedelta(days=1))
    assert s.sale()["status"] == "pending"


def test_per_merchant_threshold_action_and_shadow_mode(shop, client):
    assert shop.sale(click=shop.click(age=timedelta(seconds=30)))["status"] == "pending"
    r = client.patch("/api/v1/fraud-rules", headers=shop.auth(),
                     json={"rules": {"fast_conversion": {"threshold": 60, "action": "reject"}}})
    assert r.status_code == 200 and r.get_json()["rules"]["fast_conversion"]["threshold"] == 60
    assert shop.sale(click=shop.click(age=timedelta(seconds=30)))["status"] == "rejected"
    client.patch("/api/v1/fraud-rules", headers=shop.auth(),
                 json={"rules": {"fast_conversion": {"mode": "shadow", "action": "hold"}}})
    c = shop.sale(click=shop.click(age=timedelta(seconds=30)))
    assert c["status"] == "pending" and c["flags"][0]["action"] == "shadow"
    assert c["flags"][0]["would"] == "hold"
    client.patch("/api/v1/fraud-rules", headers=shop.auth(),
                 json={"rules": {"fast_conversion": {"enabled": False}}})
    assert shop.sale(click=shop.click(age=timedelta(seconds=1)))["flags"] == []


def test_another_merchants_settings_do_not_apply(shop, client):
    other = Shop(client)
    client.patch("/api/v1/fraud-rules", headers=other.auth(),
                 json={"rules": {"bot_click": {"action": "reject"}}})
    assert shop.sale(click=shop.click(is_bot=True))["status"] == "held"
    assert other.sale(click=other.click(is_bot=True))["status"] == "rejected"


# -- risk-based hold -------------------------------------------------------------------------

def test_trusted_partner_gets_a_shorter_hold_after_clean_paid_payouts(shop, client):
    from partnernet.payouts.models import Payout

    client.patch("/api/v1/fraud-rules", headers=shop.auth(),
                 json={"trusted_partner": {"enabled": True, "min_clean_payouts": 2, "hold_days": 5}})
    for n in range(2):
        assert datetime.fromisoformat(shop.sale()["hold_until"]) == NOW + timedelta(days=30)
        db.session.add(Payout(merchant_id=shop.merchant_id, partner_id=shop.partner.id,
                              amount_minor=100, currency="USD", rail="manual", status="paid"))
        db.session.commit()
    assert datetime.fromisoformat(shop.sale()["hold_until"]) == NOW + timedelta(days=5)


# -- approval, reversal, the ledger ------------------------------------------------------------

def run_job(app, name):
    from partnernet.cli import main

    result = app.test_cli_runner().invoke(main, ["jobs", "run", name])
    assert result.exit_code == 0, result.output
    return result


def test_approve_matured_approves_after_the_hold_and_credits_the_ledger(shop, app):
    from partnernet.commissions.services import approve_matured

    clean = shop.sale()
    held = shop.sale(click=shop.click(is_bot=True))
    make_coupon_row(shop.offer, shop.partner.id, "LEAK")
    flag_only = shop.sale(coupon="LEAK", click=None)      # coupon_leak: flag only
    assert rules(flag_only) == [("coupon_leak", "flag")]
    clock.freeze(NOW + timedelta(days=30) - timedelta(seconds=1))
    assert approve_matured() == 0
    clock.freeze(NOW + timedelta(days=30))
    run_job(app, "approve-matured")
    assert commission(clean["id"]).status == "approved"
    assert commission(held["id"]).status == "held"          # open flag: waits for a reviewer
    assert commission(flag_only["id"]).status == "approved"
    assert entries(clean["id"]) == [("commission", 499)]
    assert approve_matured() == 0                            # twice: nothing more
    assert balance(shop.merchant_id, shop.partner.id) == 998
    assert_ledger_ok()


def test_partial_then_full_refund_of_a_pending_commission_writes_nothing_until_approved(shop):
    c = shop.sale("100.00")                       # 10.00
    shop.refund("O-1", "25.00")
    assert commission(c["id"]).reversed_minor == 250 and commission(c["id"]).status == "pending"
    from partnernet.commissions.services import approve_matured

    clock.freeze(NOW + timedelta(days=31))
    approve_matured()
    assert entries(c["id"]) == [("commission", 750)]
    shop.refund("O-1", "100.00")
    assert commission(c["id"]).status == "reversed"
    assert entries(c["id"]) == [("commission", 750), ("reversal", -750)]
    assert_ledger_ok()


def pay_out(merchant_id):
    """Run the payouts engine's claim (manual rail): approved commissions become paid."""
    from partnernet.accounts.models import Merchant
    from partnernet.payouts.manual import mark_manual_paid
    from partnernet.payouts.models import Payout
    from partnernet.payouts.services import create_run

    db.session.get(Merchant, merchant_id).min_payout_minor = 1
    db.session.commit()
    run = create_run(merchant_id)
    for payout in db.session.scalars(select(Payout).where(Payout.run_id == run.id)).all():
        mark_manual_paid(merchant_id, payout.id, f"bank-{payout.id}")
    return run


def test_refund_of_a_paid_commission_is_a_clawback_the_next_payout_nets(shop):
    from partnernet.commissions.services import approve_matured

    a = shop.sale("100.00")
    shop.sale("50.00")
    clock.freeze(NOW + timedelta(days=31))
    approve_matured()
    pay_out(shop.merchant_id)
    assert commission(a["id"]).status == "paid"
    assert balance(shop.merchant_id, shop.partner.id) == 0
    shop.refund("O-1", "50.00")                   # half of a paid 10.00
    assert commission(a["id"]).status == "paid"
    assert entries(a["id"]) == [("commission", 1000), ("reversal", -500)]
    assert balance(shop.merchant_id, shop.partner.id) == -500   # netted by the next payout
    shop.refund("O-1")
    assert commission(a["id"]).status == "reversed"
    assert balance(shop.merchant_id, shop.partner.id) == -1000
    assert_ledger_ok()
    c = shop.sale("200.00")                        # 20.00 later: the next payout nets −10.00
    clock.freeze(NOW + timedelta(days=62))
    approve_matured()
    run = pay_out(shop.merchant_id)
    from partnernet.payouts.models import Payout

    assert run.skipped == [], run.skipped
    [payout] = db.session.scalars(select(Payout).where(Payout.run_id == run.id)).all()
    assert payout.amount_minor == 1000 and commission(c["id"]).status == "paid"
    assert balance(shop.merchant_id, shop.partner.id) == 0
    assert_ledger_ok()


def test_rejected_commission_is_not_reversed_nor_in_the_ledger(shop):
    c = shop.sale(click=shop.click(age=timedelta(seconds=1)))
    from partnernet.commissions.services import reject_commission

    reject_commission(shop.merchant_id, c["id"], "looks bad")
    shop.refund("O-1")
    assert commission(c["id"]).status == "rejected" and entries(c["id"]) == []


def test_ledger_refuses_update_and_delete_in_the_database(shop):
    from partnernet.commissions.ledger import post_entry

    post_entry(merchant_id=shop.merchant_id, partner_id=shop.partner.id, currency="USD",
               amount_minor=100, kind="adjustment")
    db.session.commit()
    for statement in ("UPDATE ledger_entries SET amount_minor = 1000000",
                      "DELETE FROM ledger_entries"):
        with pytest.raises(Exception, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
    assert balance(shop.merchant_id, shop.partner.id) == 100


def test_ledger_verify_command_passes_then_catches_a_difference(shop, app):
    from partnernet.cli import main
    from partnernet.commissions.ledger import post_entry
    from partnernet.commissions.services import approve_matured

    first = shop.sale()
    clock.freeze(NOW + timedelta(days=31))
    approve_matured()
    runner = app.test_cli_runner()
    ok = runner.invoke(main, ["ledger", "verify"])
    assert ok.exit_code == 0 and "ledger ok" in ok.output
    c = commission(first["id"])
    post_entry(merchant_id=shop.merchant_id, partner_id=shop.partner.id, currency="USD",
               amount_minor=1, kind="commission", commission_id=c.id)  # a stray credit
    db.session.commit()
    bad = runner.invoke(main, ["ledger", "verify"])
    assert bad.exit_code == 1
    assert f"commission {c.id}: expected 499, ledger says 500" in bad.output


# -- CPC accrual ---------------------------------------------------------------------------------

def test_cpc_accrual_pays_unique_human_clicks_once_per_partner_offer_day(client, app):
    from partnernet.commissions.cpc import accrue_cpc
    from partnernet.commissions.models import Commission
    from tests.commission_helpers import count

    clock.freeze(NOW)
    s = Shop(client, plans=[{"event": "click", "type": "cpc", "amount": "0.07"}])
    yesterday = NOW - timedelta(days=1)
    for _ in range(3):
        s.click(age=timedelta(days=1))
    s.click(age=timedelta(days=1), is_bot=True)
    s.click(age=timedelta(days=1), is_unique=False)
    s.click(age=timedelta(hours=1))   # today's: tomorrow's accrual
    assert accrue_cpc() == 1
    assert accrue_cpc() == 0                       # idempotent
    run_job(app, "accrue-cpc")
    [c] = db.session.scalars(select(Commission)).all()
    assert (c.amount_minor, c.click_count, c.accrual_date, c.kind, c.status) == \
        (21, 3, yesterday.date(), "cpc", "pending")
    assert count(Commission) == 1
    assert accrue_cpc(date(2026, 3, 10)) == 1      # today's click, accrued for its own day
