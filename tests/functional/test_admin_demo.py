"""``partnernet demo`` seeds a living network through the real endpoints, and its logins work."""

from __future__ import annotations

import re
from typing import Any

from flask import g
from sqlalchemy import func, select

from partnernet.accounts.models import Merchant, Partner
from partnernet.admin.cli import demo
from partnernet.commissions.models import Commission
from partnernet.conversions.models import Conversion
from partnernet.extensions import db
from partnernet.links.models import Click, Coupon
from partnernet.offers.models import CommissionPlan, Membership
from partnernet.payouts.models import Payout


def test_demo_seeds_once_and_prints_logins_that_work(app: Any) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(demo, ["--seed", "7"])
    assert result.exit_code == 0, result.output
    count = lambda model: db.session.scalar(select(func.count()).select_from(model))  # noqa: E731
    assert count(Merchant) == 2 and count(Partner) == 20
    assert set(db.session.scalars(select(CommissionPlan.type))) == {"cps", "cpa", "cpl", "cpc"}
    assert count(Coupon) >= 3
    assert db.session.scalar(select(func.count()).where(Partner.channel_type == "influencer")) >= 3
    assert count(Click) > 300 and count(Conversion) > 20
    days = {c.date() for c in db.session.scalars(select(Click.created_at))}
    assert len(days) >= 25
    assert db.session.scalar(select(func.count()).where(Membership.status == "pending")) >= 2
    assert db.session.scalar(select(func.count()).where(Commission.status == "held")) >= 1
    assert db.session.scalar(select(func.count()).where(Payout.status == "paid")) == 1

    logins = re.findall(r"^\s+(merchant|partner)\s+(\S+@\S+)\s+(\S+)$", result.output, re.M)
    assert len(logins) == 22
    role, email, password = logins[0]
    g.pop("_login_user", None)
    client = app.test_client()
    assert client.post("/login", data={"email": email, "password": password}).status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    assert "Northwind Outfitters" in page and "<svg" in page
    assert '<span>Clicks</span><strong>0</strong>' not in page

    again = runner.invoke(demo, ["--if-empty"])
    assert again.exit_code == 0 and "nothing seeded" in again.output
    assert count(Merchant) == 2
    assert runner.invoke(demo, []).exit_code != 0
