"""The merchant admin panel through the test client: guards, tenant isolation, forms, lists."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from partnernet.accounts.models import Partner
from partnernet.extensions import db
from partnernet.offers.models import Membership, Offer
from tests.factories import make_click_row, make_merchant, make_offer, make_partner

PASSWORD = "correct horse battery"


def login(client: Any, email: str, password: str = PASSWORD) -> Any:
    return client.post("/login", data={"email": email, "password": password})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def fresh_visitor(app: Any) -> Any:
    """A second browser: the tests' long-lived app context must not carry the last user over."""
    from flask import g

    g.pop("_login_user", None)
    return app.test_client()


@pytest.fixture
def shop(app: Any) -> Any:
    return make_merchant("Acme Shop", password=PASSWORD)


@pytest.fixture
def merchant_client(client: Any, shop: Any) -> Any:
    assert login(client, shop.owner.email).status_code == 302
    return client


def test_admin_needs_login_and_sends_partners_to_their_portal(client: Any, shop: Any) -> None:
    answer = client.get("/admin/")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    make_partner(shop.merchant.id, email="p@creator.example", password=PASSWORD)
    login(client, "p@creator.example")
    answer = client.get("/admin/offers")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/portal/")


def test_login_lands_merchant_on_dashboard_with_30_day_figures(client: Any, shop: Any) -> None:
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id)
    for _ in range(3):
        make_click_row(offer, partner.id)
    answer = login(client, shop.owner.email)
    assert answer.headers["Location"] == "/admin"
    page = client.get("/admin/").get_data(as_text=True)
    assert "last 30 days" in page
    assert "<svg" in page and "Clicks per day" in page
    assert '<span>Clicks</span><strong>3</strong>' in page


def test_create_offer_with_cps_plan_and_tiers(merchant_client: Any, shop: Any) -> None:
    form = {
        "name": "Summer sale", "landing_url": "https://acme.example/summer", "status": "active",
        "attribution_window_days": "30", "attribution_model": "last_click", "click_id_param": "click_id",
        "allow_paid_search": "y",
        "plans-0-event": "sale", "plans-0-type": "cps", "plans-0-rate": "12.5",
        "plans-0-tiers": "50=15\n200=20",
        "plans-1-event": "lead", "plans-1-type": "cpl", "plans-1-rate": "2.00",
        "plans-2-event": "", "plans-2-type": "cps", "plans-2-rate": "",
    }
    answer = merchant_client.post("/admin/offers/new", data=form)
    assert answer.status_code == 302
    offer = db.session.scalar(select(Offer).where(Offer.name == "Summer sale"))
    assert offer.merchant_id == shop.merchant.id
    sale, lead = offer.plans
    assert (sale.type, str(sale.percent.normalize()), [t.min_conversions for t in sale.tiers]) == \
        ("cps", "12.5", [50, 200])
    assert (lead.type, lead.amount_minor) == ("cpl", 200)
    page = merchant_client.get(answer.headers["Location"]).get_data(as_text=True)
    assert 'value="12.5"' in page and "50=15" in page


def test_offer_errors_show_next_to_fields_and_keep_what_was_typed(merchant_client: Any) -> None:
    answer = merchant_client.post("/admin/offers/new", data={
        "name": "Kept name", "landing_url": "ftp://nope", "status": "active",
        "attribution_window_days": "30", "attribution_model": "last_click", "click_id_param": "click_id",
        "plans-0-event": "sale", "plans-0-type": "cps", "plans-0-rate": "",
    })
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert 'value="Kept name"' in page and 'value="ftp://nope"' in page
    assert 'id="landing_url-err"' in page
    assert 'id="plans-0-rate-err"' in page
    assert db.session.scalar(select(Offer)) is None


def test_pause_and_edit_offer(merchant_client: Any, shop: Any) -> None:
    offer = make_offer(shop.merchant.id)
    paused = merchant_client.post(f"/admin/offers/{offer.id}/status", data={"status": "paused"})
    assert paused.status_code == 302
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).status == "paused"
    page = merchant_client.get(f"/admin/offers/{offer.id}").get_data(as_text=True)
    assert 'value="Spring sale"' in page and "Resume offer" in page


def test_another_merchants_ids_answer_404(merchant_client: Any) -> None:
    other = make_merchant("Other")
    their_offer = make_offer(other.merchant.id)
    their_partner = make_partner(other.merchant.id, status="pending")
    assert merchant_client.get(f"/admin/offers/{their_offer.id}").status_code == 404
    assert merchant_client.post(f"/admin/offers/{their_offer.id}/status",
                                data={"status": "paused"}).status_code == 404
    assert merchant_client.get(f"/admin/partners/{their_partner.id}").status_code == 404
    assert merchant_client.post(f"/admin/partners/{their_partner.id}/status",
                                data={"status": "approved"}).status_code == 404
    db.session.expire_all()
    assert db.session.get(Offer, their_offer.id).status == "active"
    assert db.session.scalar(select(Membership.status).where(Membership.partner_id == their_partner.id)) == \
        "pending"
    assert "Other" not in merchant_client.get("/admin/partners").get_data(as_text=True)


def test_approve_reject_ban_and_channel(merchant_client: Any, shop: Any) -> None:
    applicant = make_partner(shop.merchant.id, name="Ann Applicant", status="pending")
    page = merchant_client.get("/admin/partners?status=pending").get_data(as_text=True)
    assert "Ann Applicant" in page
    merchant_client.post(f"/admin/partners/{applicant.id}/status", data={"status": "approved"})
    status = lambda: db.session.scalar(select(Membership.status).where(  # noqa: E731
        Membership.partner_id == applicant.id))
    assert status() == "approved"
    merchant_client.post(f"/admin/partners/{applicant.id}/status", data={"status": "banned"})
    db.session.expire_all()
    assert status() == "banned"
    assert merchant_client.post(f"/admin/partners/{applicant.id}/status",
                                data={"status": "owner"}).status_code == 400
    merchant_client.post(f"/admin/partners/{applicant.id}", data={"action": "channel",
                                                                  "channel_type": "influencer"})
    db.session.expire_all()
    assert applicant.channel_type == "influencer"


def test_override_form_validates_against_the_plan(merchant_client: Any, shop: Any) -> None:
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id)
    bad = merchant_client.post(f"/admin/partners/{partner.id}", data={
        "action": "override", "ov-offer_id": offer.id, "ov-event": "sale", "ov-rate": "abc"})
    assert bad.status_code == 400 and 'id="ov-rate-err"' in bad.get_data(as_text=True)
    good = merchant_client.post(f"/admin/partners/{partner.id}", data={
        "action": "override", "ov-offer_id": offer.id, "ov-event": "sale", "ov-rate": "18"})
    assert good.status_code == 302
    assert "18%" in merchant_client.get(f"/admin/offers/{offer.id}").get_data(as_text=True)


def test_invite_link_joins_partner_approved(merchant_client: Any, shop: Any, app: Any) -> None:
    answer = merchant_client.post("/admin/partners/invite", data={"email": "Inv@Creator.example",
                                                                   "name": "Invited"})
    assert answer.status_code == 302
    page = merchant_client.get("/admin/partners").get_data(as_text=True)
    link = page.split("Send this invitation link to Inv@Creator.example: ")[1].split("<")[0]
    path = link.replace(app.config["BASE_URL"], "").replace("&amp;", "&")
    newcomer = fresh_visitor(app)
    form = newcomer.get(path).get_data(as_text=True)
    assert 'value="inv@creator.example"' in form
    joined = newcomer.post(path, data={"name": "Invited", "email": "inv@creator.example",
                                       "password": "a long password", "confirm": "a long password",
                                       "channel_type": "influencer"})
    assert joined.status_code == 302
    assert db.session.scalar(select(Membership.status)) == "approved"
    # a forged invitation is an ordinary (pending) application
    forged = path.split("invite=")[0] + "invite=x" + path.split("invite=")[1][1:]
    assert fresh_visitor(app).post(forged, data={
        "name": "Eve", "email": "eve@x.example", "password": "a long password",
        "confirm": "a long password", "channel_type": "other"}).status_code == 302
    assert db.session.scalars(select(Membership.status).order_by(Membership.id)).all() == \
        ["approved", "pending"]


def test_settings_rotate_postback_credentials_and_api_keys(merchant_client: Any, shop: Any) -> None:
    page = merchant_client.get("/admin/settings").get_data(as_text=True)
    assert "http://partnernet.test/postback?token=" in page
    rotated = merchant_client.post("/admin/settings", data={"action": "rotate"}).get_data(as_text=True)
    new_token = rotated.split('<code class="secret">')[1].split("<")[0]
    assert new_token.startswith("pbt_") and new_token != shop.postback_token
    assert f"/postback?token={new_token}&amp;click_id={{click_id}}" in rotated
    created = merchant_client.post("/admin/settings", data={"action": "new_key", "key-name": "ci"})
    key = created.get_data(as_text=True).split('<code class="secret">')[1].split("<")[0]
    assert merchant_client.get("/api/v1/offers", headers=bearer(key)).status_code == 200
    from partnernet.accounts.models import ApiKey

    row = db.session.scalar(select(ApiKey).where(ApiKey.name == "ci"))
    merchant_client.post("/admin/settings", data={"action": "revoke", "key_id": row.id})
    assert merchant_client.get("/api/v1/offers", headers=bearer(key)).status_code == 401
    other = make_merchant("Other")
    their_key = db.session.scalar(select(ApiKey).where(ApiKey.merchant_id == other.merchant.id))
    assert merchant_client.post("/admin/settings", data={"action": "revoke",
                                                         "key_id": their_key.id}).status_code == 404


def test_every_admin_page_renders(merchant_client: Any, shop: Any) -> None:
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id)
    make_click_row(offer, partner.id)
    for path in ("/admin/", "/admin/offers", "/admin/offers/new", f"/admin/offers/{offer.id}",
                 "/admin/partners", f"/admin/partners/{partner.id}", "/admin/links", "/admin/conversions",
                 "/admin/conversions?order_id=A1", "/admin/review", "/admin/payouts", "/admin/reports",
                 "/admin/reports?group_by=partner", "/admin/settings", "/admin/settings/rules"):
        answer = merchant_client.get(path)
        assert answer.status_code == 200, path
        assert 'aria-label="Admin sections"' in answer.get_data(as_text=True)


def test_csrf_refuses_a_form_post_without_token(app_factory: Any) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        shop = make_merchant("Csrf shop", password=PASSWORD)
        client = app.test_client()
        form = client.get("/login").get_data(as_text=True)
        token = form.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        assert client.post("/login", data={"email": shop.owner.email, "password": PASSWORD,
                                           "csrf_token": token}).status_code == 302
        before = db.session.scalar(select(Offer.id))
        answer = client.post("/admin/offers/new", data={"name": "No token", "landing_url": "https://x.example",
                                                       "plans-0-event": "sale", "plans-0-type": "cps",
                                                       "plans-0-rate": "5"})
        assert answer.status_code == 400
        assert db.session.scalar(select(Offer.id)) == before is None
        page = client.get("/admin/settings").get_data(as_text=True)
        assert client.post("/admin/settings", data={"action": "rotate"}).status_code == 400
        assert page.count('name="csrf_token"') >= 2


def test_partner_list_pages_without_n_plus_1(merchant_client: Any, shop: Any) -> None:
    from partnernet.accounts.services import create_partner

    for i in range(60):
        create_partner(shop.merchant.id, email=f"bulk{i}@creators.example", name=f"Bulk {i}",
                       status="pending" if i % 2 else "approved")
    offer = make_offer(shop.merchant.id)
    for i in range(30):
        make_offer(shop.merchant.id, name=f"Offer {i}")
    partner_ids = db.session.scalars(select(Membership.partner_id).limit(40)).all()
    for pid in partner_ids:
        make_click_row(offer, pid)
    counts = {}
    for i in range(30):
        _held_commission(shop, offer, db.session.get(Partner, partner_ids[i]), f"N-{i}")
    for path in ("/admin/partners", "/admin/partners?page=2", "/admin/offers", "/admin/links",
                 "/admin/review", "/admin/conversions"):
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            page = merchant_client.get(path)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert page.status_code == 200
        counts[path] = len(statements)
    # 25 rows a page: a query per row would be 25+; a fixed handful proves no N+1.
    assert max(counts.values()) <= 10, counts
    page2 = merchant_client.get("/admin/partners?page=2").get_data(as_text=True)
    assert "Page 2 of 3" in page2


def _held_commission(shop: Any, offer: Any, partner: Any, order_id: str) -> Any:
    from partnernet.commissions.models import Commission

    click = make_click_row(offer, partner.id)
    from flask import current_app

    answer = current_app.test_client().post("/postback", data={
        "token": shop.postback_token, "click_id": click.id, "order_id": order_id, "amount": "40.00",
        "customer_email": partner.email})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    commission = db.session.get(Commission, answer.get_json()["commission"]["id"])
    assert commission.status == "held"
    return commission


def test_review_queue_bulk_decisions_with_reason_and_isolation(merchant_client: Any, shop: Any) -> None:
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id, email="self@ref.example")
    first, second, third = (_held_commission(shop, offer, partner, f"O-{i}") for i in range(3))
    page = merchant_client.get("/admin/review").get_data(as_text=True)
    assert "self_referral" in page and "O-1" in page
    answer = merchant_client.post("/admin/review", data={"ids": [first.id, second.id], "action": "reject",
                                                         "reason": "self purchase"})
    assert answer.status_code == 302
    db.session.expire_all()
    assert [first.status, second.status, third.status] == ["rejected", "rejected", "held"]
    assert first.review_reason == "self purchase"
    again = merchant_client.post("/admin/review", data={"ids": [first.id, third.id], "action": "approve"})
    assert again.status_code == 302
    db.session.expire_all()
    assert (first.status, third.status) == ("rejected", "approved")
    assert "Not changed: #" in merchant_client.get("/admin/review").get_data(as_text=True)

    other = make_merchant("Other")
    other_offer = make_offer(other.merchant.id)
    other_partner = make_partner(other.merchant.id, email="x@other.example")
    theirs = _held_commission(other, other_offer, other_partner, "T-1")
    refused = merchant_client.post("/admin/review", data={"ids": [theirs.id], "action": "approve"})
    assert refused.status_code == 404
    db.session.expire_all()
    assert theirs.status == "held"
    assert "x@other" not in merchant_client.get("/admin/review?status=all").get_data(as_text=True)


def test_payout_run_manual_csv_and_mark_paid(merchant_client: Any, shop: Any, app: Any) -> None:
    from flask import current_app

    from partnernet.commissions.services import approve_matured
    from partnernet.payouts.models import Payout

    offer = make_offer(shop.merchant.id, hold_days=0,
                       plans=[{"event": "sale", "type": "cps", "percent": "50"}])
    partner = make_partner(shop.merchant.id, name="Paid Partner")
    from datetime import timedelta

    from partnernet import clock

    click = make_click_row(offer, partner.id, at=clock.now() - timedelta(hours=2))
    answer = current_app.test_client().post("/postback", data={
        "token": shop.postback_token, "click_id": click.id, "order_id": "P-1", "amount": "300.00"})
    assert answer.status_code == 200
    clock.freeze(clock.now() + timedelta(seconds=5))
    approve_matured()
    clock.freeze(None)
    ran = merchant_client.post("/admin/payouts/run")
    assert ran.status_code == 302, merchant_client.get("/admin/payouts").get_data(as_text=True)
    payout = db.session.scalar(select(Payout))
    assert (payout.partner_id, payout.amount_minor, payout.rail, payout.status) == \
        (partner.id, 15000, "manual", "queued")
    page = merchant_client.get("/admin/payouts").get_data(as_text=True)
    assert "Paid Partner" in page and "150.00 USD" in page and "1 payout created" in page
    csv_text = merchant_client.get("/admin/payouts/manual.csv?format=paypal").get_data(as_text=True)
    assert "150.00" in csv_text and partner.email in csv_text
    assert merchant_client.post(f"/admin/payouts/{payout.id}/manual", data={"outcome": "paid",
                                                                            "note": ""}).status_code == 302
    db.session.expire_all()
    assert payout.status == "queued"  # a reference is required
    merchant_client.post(f"/admin/payouts/{payout.id}/manual", data={"outcome": "paid", "note": "BANK-77"})
    db.session.expire_all()
    assert (payout.status, payout.manual_reference) == ("paid", "BANK-77")

    other = make_merchant("Other", password=PASSWORD)
    fresh_visitor(app)
    other_client = app.test_client()
    login(other_client, other.owner.email)
    assert other_client.post(f"/admin/payouts/{payout.id}/manual",
                             data={"outcome": "failed", "note": "x"}).status_code == 404
    assert "Paid Partner" not in other_client.get("/admin/payouts").get_data(as_text=True)


def test_fraud_rules_blocklist_and_payout_settings(merchant_client: Any, shop: Any) -> None:
    from partnernet.accounts.models import Merchant
    from partnernet.commissions.fraud import DEFAULT_RULES

    page = merchant_client.get("/admin/settings/rules").get_data(as_text=True)
    assert "fast conversion" in page and "seconds between click and conversion" in page
    form: dict[str, str] = {"section": "fraud", "ip_blocklist": "203.0.113.0/24\n198.51.100.9"}
    for name, conf in DEFAULT_RULES.items():
        form[f"{name}-enabled"] = "on"
        form[f"{name}-mode"] = "active"
        if conf["action"] != "auto":
            form[f"{name}-action"] = conf["action"]
        if conf["threshold"] is not None:
            form[f"{name}-threshold"] = str(conf["threshold"])
    form["fast_conversion-threshold"] = "30"
    form.pop("paid_ads-enabled")
    assert merchant_client.post("/admin/settings/rules", data=form).status_code == 302
    merchant = db.session.get(Merchant, shop.merchant.id)
    db.session.refresh(merchant)
    assert merchant.ip_blocklist == ["203.0.113.0/24", "198.51.100.9/32"]
    assert str(merchant.fraud_settings["rules"]["fast_conversion"]["threshold"]) == "30"
    assert merchant.fraud_settings["rules"]["paid_ads"]["enabled"] is False

    bad = merchant_client.post("/admin/settings/rules", data={**form, "ip_blocklist": "not-an-ip"})
    assert bad.status_code == 400 and 'id="fraud-err"' in bad.get_data(as_text=True)
    assert "not-an-ip" in bad.get_data(as_text=True)  # what was typed stays

    ok = merchant_client.post("/admin/settings/rules", data={
        "section": "payouts", "min_payout": "25.00", "approval_threshold": "", "weekday": "4",
        "hour": "10", "rail": "auto"})
    assert ok.status_code == 302
    db.session.refresh(merchant)
    assert merchant.min_payout_minor == 2500
    assert merchant.payout_settings["schedule"] == {"weekday": 4, "hour": 10}
    wrong = merchant_client.post("/admin/settings/rules", data={
        "section": "payouts", "min_payout": "12.345", "weekday": "", "hour": "9", "rail": "auto"})
    assert wrong.status_code == 400
    text = wrong.get_data(as_text=True)
    assert 'id="min_payout-err"' in text and 'value="12.345"' in text


def test_coupon_codes_and_link_disable(merchant_client: Any, shop: Any, app: Any) -> None:
    from partnernet.links.models import Coupon, Link
    from partnernet.links.services import create_link

    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id, name="Coupon Cat")
    made = merchant_client.post("/admin/links", data={"coupon-partner_id": partner.id,
                                                      "coupon-offer_id": offer.id, "coupon-code": "Cat10"})
    assert made.status_code == 302
    assert db.session.scalar(select(Coupon.code_normalized)) == "CAT10"
    taken = merchant_client.post("/admin/links", data={"coupon-partner_id": partner.id,
                                                       "coupon-offer_id": offer.id, "coupon-code": "cat10"})
    assert taken.status_code == 400
    assert 'id="coupon-code-err"' in taken.get_data(as_text=True)
    assert 'value="cat10"' in taken.get_data(as_text=True)

    link = create_link(shop.merchant.id, {"offer_id": offer.id, "partner_id": partner.id})
    merchant_client.post(f"/admin/links/{link.id}/status", data={"status": "disabled"})
    db.session.expire_all()
    assert db.session.get(Link, link.id).status == "disabled"
    assert fresh_visitor(app).get(f"/r/{link.code}").status_code == 404


def test_reports_filters_csv_and_errors(merchant_client: Any, shop: Any) -> None:
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id, name="Rita Reports")
    for _ in range(4):
        make_click_row(offer, partner.id, sub1="yt")
    make_click_row(offer, partner.id, sub1="ig")
    page = merchant_client.get(f"/admin/reports?group_by=sub1&offer_id={offer.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "<td>yt</td><td>4</td>" in text and "<td>ig</td><td>1</td>" in text
    csv_answer = merchant_client.get("/admin/reports?group_by=partner&format=csv")
    assert csv_answer.mimetype == "text/csv"
    header, row = csv_answer.get_data(as_text=True).splitlines()[:2]
    assert header.startswith("partner_id,currency,clicks") and row.startswith(f"{partner.id},,5,")
    bad = merchant_client.get("/admin/reports?from=2026-02-10&to=2026-01-01")
    assert bad.status_code == 400 and 'id="r-to-err"' in bad.get_data(as_text=True)
    assert 'value="2026-02-10"' in bad.get_data(as_text=True)
    other = make_merchant("Other")
    other_offer = make_offer(other.merchant.id)
    make_click_row(other_offer, make_partner(other.merchant.id).id)
    total = merchant_client.get("/admin/reports?group_by=offer").get_data(as_text=True)
    assert f"<td>{other_offer.id}</td>" not in total and f"<td>{offer.id}</td><td>5</td>" in total
