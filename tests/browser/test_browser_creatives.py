"""Creatives pages in Chromium on the demo network: a merchant uploads and approves a banner
through the form (real CSRF), a partner copies a snippet carrying its own link; both fit a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import select

from tests.browser.conftest import shoot
from tests.browser.test_browser_panels import log_in
from tests.browser.test_browser_screenshots import WIDE_ELEMENTS


def test_creatives_pages_in_a_browser_on_desktop_and_phone(live: Any, new_page: Any, tmp_path: Path) -> None:
    from partnernet.accounts.models import User
    from partnernet.creatives import services
    from partnernet.demo import seed
    from partnernet.extensions import db
    from partnernet.links.models import Link

    live.app.config["CREATIVES_DIR"] = str(tmp_path / "creatives")
    logins = seed(lambda _msg: None, seed_value=3)["logins"]
    owner = db.session.scalar(select(User).where(User.email == "owner@northwind.example"))
    ava = db.session.scalar(select(User).where(User.email == "ava@creators.example"))
    link = db.session.scalar(select(Link).where(Link.partner_id == ava.partner_id,
                                                Link.merchant_id == owner.merchant_id,
                                                Link.status == "active").order_by(Link.id.desc()))
    assert link is not None
    text = services.create_creative(owner.merchant_id, link.offer_id, {
        "kind": "text_link", "name": "Spring text link", "body": "Spring sale: 20% off everything"})
    banner = tmp_path / "banner.png"
    Image.new("RGB", (728, 90), (30, 90, 200)).save(banner, "PNG")

    merchant = new_page()
    log_in(merchant, "owner@northwind.example", logins["owner@northwind.example"])
    assert merchant.goto("/admin/creatives").status == 200
    merchant.get_by_role("link", name="Creatives").first.click()
    assert merchant.goto(f"/admin/creatives/offers/{link.offer_id}").status == 200
    merchant.get_by_label("Kind").select_option("banner")
    merchant.get_by_label("Name").fill("Leaderboard 728x90")
    merchant.get_by_label("Banner image").set_input_files(str(banner))
    merchant.get_by_role("button", name="Save creative").click()
    merchant.wait_for_load_state()
    assert "approve it to show it to partners" in merchant.content()
    merchant.get_by_role("button", name="Approve").first.click()
    merchant.wait_for_load_state()
    assert "is now active" in merchant.content()
    assert merchant.locator("img[alt='Leaderboard 728x90']").count() == 1
    shoot(merchant, "admin-creatives", tmp_path)
    for path in (f"/admin/creatives/offers/{link.offer_id}/split", "/admin/creatives/fatigue",
                 "/admin/creatives/settings"):
        assert merchant.goto(path).status == 200, path

    partner = new_page()
    log_in(partner, "ava@creators.example", logins["ava@creators.example"])
    assert partner.goto("/portal/creatives").status == 200
    page = partner.content()
    assert "Leaderboard 728x90" in page and "Spring text link" in page
    # Her newest link of the offer, in the text she copies (HTML and markdown snippets).
    codes = [c.text_content() for c in partner.locator("pre.snippet code").all()]
    mine = [c for c in codes if f"{live.url}/r/{link.code}?cr={text.id}" in c]
    assert len(mine) == 2 and f'href="{live.url}/r/{link.code}?cr={text.id}"' in mine[0]
    assert f"{live.url}/i/{link.code}/{text.id}.gif" in mine[0]
    shoot(partner, "portal-creatives", tmp_path)

    phone = new_page(390, 844)
    log_in(phone, "ava@creators.example", logins["ava@creators.example"])
    phone.goto("/portal/creatives")
    fits = phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert fits, phone.evaluate(WIDE_ELEMENTS)
    phone_admin = new_page(390, 844)
    log_in(phone_admin, "owner@northwind.example", logins["owner@northwind.example"])
    for path in ("/admin/creatives", f"/admin/creatives/offers/{link.offer_id}",
                 f"/admin/creatives/offers/{link.offer_id}/split", "/admin/creatives/settings"):
        phone_admin.goto(path)
        fits = phone_admin.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert fits, (path, phone_admin.evaluate(WIDE_ELEMENTS))
    shoot(phone_admin, "admin-creatives-phone", tmp_path)
