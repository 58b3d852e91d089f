"""``partnernet demo``: a living demo network, seeded through the same services and endpoints
as real traffic (clicks through ``/r/<code>``, sales through ``/postback``).

Two merchants; offers of each plan type; 20 partners (influencers with coupon codes);
30 days of clicks and conversions; a few suspicious orders; a paid manual payout when the
commission engine has approved something. Passwords are drawn at seed time and printed.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import current_app
from sqlalchemy import select

from partnernet import clock
from partnernet.accounts.models import Merchant
from partnernet.accounts.services import create_merchant, create_partner
from partnernet.extensions import db
from partnernet.links.services import create_coupon, create_link
from partnernet.offers.schemas import OfferIn
from partnernet.offers.services import create_offer

DAYS = 30
FIRST_NAMES = ["Ava", "Ben", "Chloe", "Dev", "Emma", "Femi", "Gia", "Hugo", "Ines", "Jon", "Kai",
               "Lena", "Milo", "Nia", "Omar", "Pia", "Quinn", "Rosa", "Sami", "Tara"]
CHANNELS = ["influencer", "affiliate_site", "coupon_site", "email", "social", "influencer",
            "search", "influencer", "affiliate_site", "social"]
AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36",
]


def password() -> str:
    """A fresh random password for a demo login (never a fixed one in the code)."""
    return secrets.token_urlsafe(12)


def has_merchant() -> bool:
    """Whether any merchant exists (``--if-empty`` seeds only an empty database)."""
    return db.session.scalar(select(Merchant.id).limit(1)) is not None


def _offer(merchant_id: int, body: dict[str, Any]) -> Any:
    return create_offer(merchant_id, OfferIn().load(body))


def seed(say: Callable[[str], None] = print, seed_value: int | None = None) -> dict[str, Any]:
    """Seed the demo network; returns the logins (email → password) and counts."""
    rng = random.Random(seed_value)
    logins: dict[str, str] = {}
    real_now = clock.now()

    def merchant(name: str, email: str, currency: str) -> Any:
        logins[email] = password()
        return create_merchant(name, email, logins[email], currency)

    north = merchant("Northwind Outfitters", "owner@northwind.example", "USD")
    tea = merchant("Kyoto Tea House", "owner@kyototea.example", "EUR")
    say("merchants: Northwind Outfitters (USD), Kyoto Tea House (EUR)")

    n_id, t_id = north.merchant.id, tea.merchant.id
    gear = _offer(n_id, {"name": "Outdoor gear: 10% of every sale", "hold_days": 7,
                         "landing_url": "https://northwind.example/gear?src=partners",
                         "plans": [{"event": "sale", "type": "cps", "percent": "10",
                                    "tiers": [{"min_conversions": 20, "percent": "12"},
                                              {"min_conversions": 50, "percent": "15"}]},
                                   {"event": "lead", "type": "cpl", "amount": "1.50"}]})
    bonus = _offer(n_id, {"name": "First order bonus: $8 per new customer", "hold_days": 7,
                          "landing_url": "https://northwind.example/welcome",
                          "plans": [{"event": "first_order", "type": "cpa", "amount": "8.00"}]})
    _offer(n_id, {"name": "Blog traffic: $0.05 per unique click", "hold_days": 7,
                  "landing_url": "https://northwind.example/blog",
                  "plans": [{"event": "click", "type": "cpc", "amount": "0.05"}]})
    _offer(n_id, {"name": "Winter preview (paused)", "status": "paused",
                  "landing_url": "https://northwind.example/winter",
                  "plans": [{"event": "sale", "type": "cps", "percent": "8"}]})
    matcha = _offer(t_id, {"name": "Matcha subscription: 15% of orders", "hold_days": 7,
                           "landing_url": "https://kyototea.example/matcha",
                           "plans": [{"event": "sale", "type": "cps", "percent": "15"}]})
    say("offers: CPS with tiers, CPL, CPA, CPC, a paused one; one CPS offer in EUR")

    partners: list[tuple[Any, str]] = []
    tea_partners: list[Any] = []
    for i, first in enumerate(FIRST_NAMES):
        channel = CHANNELS[i % len(CHANNELS)]
        status = "pending" if i in (17, 18) else "rejected" if i == 19 else "approved"
        email = f"{first.lower()}@{'creators' if channel == 'influencer' else 'partners'}.example"
        logins[email] = password()
        name = f"{first} {'Styles' if channel == 'influencer' else 'Media'}"
        partner, _ = create_partner(n_id, email=email, name=name, password=logins[email],
                                    status=status, channel_type=channel)
        if i % 3 == 0:
            create_partner(t_id, email=email, name=name, status="approved" if i < 15 else "pending")
            if i < 15 and status == "approved":
                tea_partners.append(partner)
        partners.append((partner, status))
    approved = [p for p, s in partners if s == "approved"]
    influencers = sum(p.channel_type == "influencer" for p in approved)
    say(f"partners: {len(partners)} (3 waiting or rejected; {influencers} influencers)")

    links: list[tuple[Any, Any]] = []  # (link, offer)
    for p in approved:
        links.append((create_link(n_id, {"offer_id": gear.id, "partner_id": p.id,
                                         "utm_source": p.channel_type, "sub1": "main"}), gear))
        if rng.random() < 0.5:
            links.append((create_link(n_id, {"offer_id": bonus.id, "partner_id": p.id}), bonus))
    for p in tea_partners:
        links.append((create_link(t_id, {"offer_id": matcha.id, "partner_id": p.id}), matcha))
    coupons = []
    for p in approved:
        if p.channel_type == "influencer":
            code = p.name.split()[0].upper() + "10"
            coupons.append(create_coupon(n_id, {"offer_id": gear.id, "partner_id": p.id, "code": code}))
    say(f"links: {len(links)}, coupon codes: {', '.join(c.code for c in coupons)}")

    client = current_app.test_client(use_cookies=False)
    tokens = {n_id: north.postback_token, t_id: tea.postback_token}
    currency = {n_id: "USD", t_id: "EUR"}
    weights = [rng.uniform(0.3, 3.0) for _ in links]
    clicks = conversions = refused = 0
    order = 1000
    try:
        for day_back in range(DAYS, 0, -1):
            day = (real_now - timedelta(days=day_back)).replace(hour=0, minute=0, second=0, microsecond=0)
            for (link, offer), weight in zip(links, weights, strict=True):
                for _ in range(int(rng.expovariate(1 / weight))):
                    at = day + timedelta(seconds=rng.randrange(8 * 3600, 23 * 3600))
                    clock.freeze(at)
                    ip = f"203.0.{rng.randrange(0, 255)}.{rng.randrange(1, 255)}"
                    answer = client.get(f"/r/{link.code}?sub2=day{day_back}",
                                        environ_base={"REMOTE_ADDR": ip},
                                        headers={"User-Agent": rng.choice(AGENTS)})
                    clicks += 1
                    if answer.status_code != 302 or rng.random() > 0.09:
                        continue
                    click_id = parse_qs(urlsplit(answer.headers["Location"]).query).get("click_id", [""])[0]
                    order += 1
                    clock.freeze(at + timedelta(minutes=rng.randrange(2, 90)))
                    event = offer.plans[0].event
                    params = {"token": tokens[link.merchant_id], "click_id": click_id,
                              "order_id": f"NW-{order}" if link.merchant_id == n_id else f"KT-{order}",
                              "event": event, "currency": currency[link.merchant_id],
                              "amount": f"{rng.randrange(25, 240)}.{rng.randrange(0, 99):02d}",
                              "customer_email": f"shopper{order}@mail.example"}
                    if rng.random() < 0.06:  # looks like self-referral: the fraud rules' business
                        params["customer_email"] = _partner_email(link.partner_id)
                    answer = client.post("/postback", data=params,
                                         environ_base={"REMOTE_ADDR": "198.51.100.7"})
                    if answer.status_code == 200:
                        conversions += 1
                    else:
                        refused += 1
            if coupons and day_back % 2 == 0:
                coupon = rng.choice(coupons)
                order += 1
                clock.freeze(day + timedelta(hours=rng.randrange(9, 21)))
                answer = client.post("/postback", data={
                    "token": tokens[n_id], "coupon": coupon.code, "order_id": f"NW-{order}",
                    "amount": f"{rng.randrange(40, 180)}.00", "currency": "USD"})
                conversions += answer.status_code == 200
    finally:
        clock.freeze(None)
    say(f"traffic: {clicks} clicks, {conversions} conversions over {DAYS} days"
        + (f" ({refused} postbacks refused)" if refused else ""))

    from partnernet.links.tasks import flush_clicks

    while flush_clicks().get("flushed"):  # with Redis, clicks wait in its buffer: store them now
        pass
    say(_settle(n_id))
    from sqlalchemy.exc import SQLAlchemyError

    from partnernet.reports.rollup import run_rollup

    try:
        run_rollup(settle_seconds=0)
        say("report rollups: up to date")
    except SQLAlchemyError as exc:  # e.g. a database migrated before the rollup tables existed
        db.session.rollback()
        say(f"report rollups: skipped ({exc.__class__.__name__}); pages read the raw tables")
    return {"logins": logins, "clicks": clicks, "conversions": conversions,
            "merchants": [n_id, t_id]}


def _partner_email(partner_id: int) -> str:
    from partnernet.accounts.models import Partner

    partner = db.session.get(Partner, partner_id)
    return partner.email if partner else "self@example.com"


def _settle(merchant_id: int) -> str:
    """Approve matured commissions and pay a manual payout, with the features' own services."""
    from partnernet.commissions import services as commissions

    approve = getattr(commissions, "approve_matured", None)
    if approve is None:
        return "payouts: skipped (the commission engine does not approve matured commissions yet)"
    approve()
    from partnernet.errors import PartnernetError
    from partnernet.payouts import services as payouts
    from partnernet.payouts.manual import mark_manual_paid

    try:
        run = payouts.create_run(merchant_id, trigger="demo")
    except PartnernetError as exc:
        db.session.rollback()
        return f"payouts: none ({exc.message})"
    paid = 0
    for payout in payouts.run_payouts(run.id):
        if payout.rail == "manual" and payout.status == "queued":
            mark_manual_paid(merchant_id, payout.id, f"DEMO-BANK-{payout.id}")
            paid += 1
            break
    return f"payouts: {paid} manual payout marked paid"
