"""A merchant and a partner use the panels in a real browser (Chromium via Playwright)."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from partnernet.commissions.models import Commission
from partnernet.extensions import db
from partnernet.links.models import Click, Link
from partnernet.offers.models import Offer
from tests.browser.conftest import shoot
from tests.factories import make_click_row, make_merchant, make_partner

PASSWORD = "correct horse battery"


def log_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def test_merchant_creates_a_cps_offer_and_approves_a_partner(live: Any, new_page: Any,
                                                              tmp_path: Path) -> None:
    shop = make_merchant("Acme Outdoor", password=PASSWORD)
    make_partner(shop.merchant.id, name="Paula Pending", status="pending")
    page = new_page()
    log_in(page, shop.owner.email)
    assert page.url.endswith("/admin/")
    assert page.get_by_role("heading", name=re.compile("last 30 days")).is_visible()

    page.get_by_role("link", name="Offers").click()
    page.get_by_role("link", name="New offer").click()
    page.get_by_label("Name", exact=True).fill("Trail shoes")
    page.get_by_label("Landing URL").fill("shop dot example")  # invalid: the error shows, typing is kept
    page.locator("#plans-0-rate").fill("12.5")
    page.get_by_role("button", name="Create offer").click()
    assert page.locator("#landing_url-err").is_visible()
    assert page.get_by_label("Name", exact=True).input_value() == "Trail shoes"
    assert page.locator("#plans-0-rate").input_value() == "12.5"
    page.get_by_label("Landing URL").fill(f"{live.url}/healthz?from=shoes")
    page.locator("#plans-0-type").select_option("cps")
    page.locator("#plans-0-tiers").fill("20=15")
    page.get_by_role("button", name="Create offer").click()
    assert page.get_by_text("created").is_visible()
    offer = db.session.scalar(select(Offer).where(Offer.name == "Trail shoes"))
    assert offer.plans[0].type == "cps" and str(offer.plans[0].percent.normalize()) == "12.5"
    assert offer.plans[0].tiers[0].min_conversions == 20

    page.get_by_role("link", name="Partners").click()
    row = page.get_by_role("row", name=re.compile("Paula Pending"))
    row.get_by_role("button", name="Approve").click()
    assert page.get_by_role("row", name=re.compile("Paula Pending")).get_by_text("approved").is_visible()

    # a sale whose customer is the partner: held by the self-referral rule, reviewed here
    partner = make_partner(shop.merchant.id, name="Sam Self", email="sam@self.example")
    click = make_click_row(offer, partner.id)
    body = urllib.parse.urlencode({"token": shop.postback_token, "click_id": click.id, "order_id": "S-1",
                                   "amount": "50.00", "customer_email": "sam@self.example"}).encode()
    with urllib.request.urlopen(f"{live.url}/postback", data=body, timeout=10) as answer:  # noqa: S310
        assert answer.status == 200
    page.get_by_role("link", name="Fraud review").click()
    row = page.get_by_role("row", name=re.compile("Sam Self"))
    assert row.get_by_text("self_referral").is_visible() and row.get_by_text("S-1").is_visible()
    row.get_by_role("checkbox").check()
    page.get_by_label("Decision", exact=True).select_option("approve")
    page.get_by_label("Reason (kept with the decision)").fill("Known customer, checked by phone")
    page.get_by_role("button", name="Apply to the ticked commissions").click()
    assert page.get_by_text("1 commission approved.").is_visible()
    db.session.expire_all()
    reviewed = db.session.scalar(select(Commission).where(Commission.partner_id == partner.id))
    assert (reviewed.status, reviewed.review_reason) == ("approved", "Known customer, checked by phone")
    page.get_by_role("link", name="Settings").click()
    assert f"{live.url}/postback?token=" in page.locator("pre.snippet").first.inner_text()


def test_partner_signs_up_gets_approved_builds_a_link_and_sees_the_sale(live: Any, new_page: Any,
                                                                        tmp_path: Path) -> None:
    shop = make_merchant("Acme Outdoor", password=PASSWORD)
    from tests.factories import make_offer

    make_offer(shop.merchant.id, name="Trail shoes", landing_url=f"{live.url}/healthz?from=shoes")

    partner_page = new_page(390, 844)  # a phone
    partner_page.goto(f"/portal/join/{shop.merchant.id}")
    partner_page.get_by_label("Your name or brand").fill("Cora Creator")
    partner_page.get_by_label("Email", exact=True).fill("cora@creators.example")
    partner_page.get_by_label("Password (at least 10 characters)").fill(PASSWORD)
    partner_page.get_by_label("Repeat the password").fill(PASSWORD)
    partner_page.get_by_label("How you promote").select_option("influencer")
    partner_page.get_by_role("button", name="Apply").click()
    assert partner_page.get_by_text("waiting for the merchant's approval").is_visible()
    assert partner_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

    merchant_page = new_page()
    log_in(merchant_page, shop.owner.email)
    merchant_page.goto("/admin/partners?status=pending")
    merchant_page.get_by_role("row", name=re.compile("Cora Creator")).get_by_role(
        "button", name="Approve").click()

    partner_page.get_by_role("link", name="Offers").click()
    partner_page.get_by_role("link", name="Get a link").click()
    partner_page.get_by_label("sub1").fill("reel-7")
    partner_page.get_by_role("button", name="Create tracking link").click()
    url = partner_page.locator("tr.new input.copy").input_value()
    assert re.fullmatch(re.escape(live.url) + r"/r/[A-Za-z0-9_-]+", url)

    partner_page.goto(url)  # a follower taps the link
    assert partner_page.url.startswith(f"{live.url}/healthz?from=shoes")
    click_id = urllib.parse.parse_qs(urllib.parse.urlsplit(partner_page.url).query)["click_id"][0]
    link = db.session.scalar(select(Link))
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Click).where(Click.link_id == link.id)) == 1

    body = urllib.parse.urlencode({"token": shop.postback_token, "click_id": click_id,
                                   "order_id": "A-1001", "amount": "80.00"}).encode()
    with urllib.request.urlopen(f"{live.url}/postback", data=body, timeout=10) as answer:  # noqa: S310
        assert answer.status == 200
    partner_page.goto("/portal/")
    partner_page.get_by_role("link", name="Commissions").click()
    row = partner_page.get_by_role("row", name=re.compile("Trail shoes"))
    assert row.get_by_text("8.00 USD").is_visible()
    merchant_page.goto("/admin/conversions?order_id=A-1001")
    assert merchant_page.get_by_role("cell", name="A-1001").first.is_visible()
    shoot(partner_page, "portal-phone", tmp_path)
