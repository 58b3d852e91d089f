"""Every main page of both panels, on the demo network, in Chromium: desktop and phone.

With PARTNERNET_SCREENSHOTS=1 the pictures refresh docs/screenshots/ (shown in the README).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import shoot
from tests.browser.test_browser_panels import log_in

ADMIN_PAGES = [("admin-dashboard", "/admin/"), ("admin-offers", "/admin/offers"),
               ("admin-offer-edit", "/admin/offers/1"), ("admin-partners", "/admin/partners"),
               ("admin-links", "/admin/links"), ("admin-conversions", "/admin/conversions"),
               ("admin-review", "/admin/review"), ("admin-payouts", "/admin/payouts"),
               ("admin-reports", "/admin/reports?group_by=partner"), ("admin-settings", "/admin/settings"),
               ("admin-rules", "/admin/settings/rules")]
PORTAL_PAGES = [("portal-dashboard", "/portal/"), ("portal-offers", "/portal/offers"),
                ("portal-links", "/portal/links"), ("portal-commissions", "/portal/commissions"),
                ("portal-payouts", "/portal/payouts"), ("portal-reports", "/portal/reports"),
                ("portal-settings", "/portal/settings")]

#: Elements sticking out past the right edge of the screen, outside a scrolling table box.
WIDE_ELEMENTS = """() => [...document.querySelectorAll('body *')]
  .filter(e => !e.closest('.table-wrap') && e.getBoundingClientRect().right > window.innerWidth + 1)
  .map(e => e.tagName + '.' + e.className + '#' + e.id).slice(0, 5)"""


def test_main_pages_on_the_demo_network(live: Any, new_page: Any, tmp_path: Path) -> None:
    from partnernet.demo import seed

    logins = seed(lambda _msg: None, seed_value=3)["logins"]
    merchant = new_page()
    log_in(merchant, "owner@northwind.example", logins["owner@northwind.example"])
    for name, path in ADMIN_PAGES:
        answer = merchant.goto(path)
        assert answer.status == 200, path
        assert merchant.get_by_role("navigation", name="Admin sections").is_visible()
        shoot(merchant, name, tmp_path)
    assert int(merchant.goto("/admin/").status) == 200
    assert merchant.locator("svg rect.bar-clicks").count() == 30

    partner = new_page()
    log_in(partner, "ava@creators.example", logins["ava@creators.example"])
    for name, path in PORTAL_PAGES:
        assert partner.goto(path).status == 200, path
        assert partner.get_by_role("navigation", name="Portal sections").is_visible()
        shoot(partner, name, tmp_path)

    phone = new_page(390, 844)
    log_in(phone, "owner@northwind.example", logins["owner@northwind.example"])
    for path in ("/admin/", "/admin/partners", "/admin/offers/new", "/admin/settings"):
        phone.goto(path)
        # usable on a phone: the page itself never scrolls sideways (wide tables scroll in their box)
        fits = phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert fits, (path, phone.evaluate(WIDE_ELEMENTS))
    phone.goto("/admin/")
    shoot(phone, "admin-dashboard-phone", tmp_path)
