"""What the creatives pages of the admin panel and the partner portal show (no request here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from partnernet import clock
from partnernet.creatives.exceptions import InvalidVariants
from partnernet.creatives.models import Creative
from partnernet.creatives.services import partner_creatives, snippets
from partnernet.creatives.services_fatigue import daily_series
from partnernet.extensions import db

CURVE_DAYS = 28


# -- admin: split test form --------------------------------------------------------------------

def parse_variant_lines(text: str) -> list[dict[str, Any]]:
    """``name | url | weight`` per line into variants; a weight that is not a whole number stays
    text so that the rule refuses it with its own message."""
    variants: list[dict[str, Any]] = []
    problems: dict[str, str] = {}
    for i, line in enumerate(x for x in text.splitlines() if x.strip()):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3 or not parts[0]:
            problems[f"line {i + 1}"] = "write name | URL | weight"
            continue
        name, url, weight = parts
        variants.append({"name": name[:64], "url": url[:2000],
                         "weight": int(weight) if weight.lstrip("-").isdigit() else weight})
    if problems:
        raise InvalidVariants(details=problems)
    return variants


# -- admin: fatigue list with the CTR curve ---------------------------------------------------

@dataclass
class Curve:
    """Daily CTR of a creative as SVG polyline points (an inline sparkline) and as rows."""

    points: str
    rows: list[tuple[str, int, int, str]] = field(default_factory=list)
    width: int = 140
    height: int = 32


def ctr_curve(creative_id: int, days: int = CURVE_DAYS) -> Curve:
    """The last ``days`` days of unique impressions, clicks and CTR of one creative."""
    today = clock.now().date()
    start = today - timedelta(days=days)
    series = {d.day: d for d in daily_series(creative_id, start)}
    rows = []
    ctrs: list[Decimal | None] = []
    for n in range(days):
        day = start + timedelta(days=n)
        d = series.get(day)
        imps, clicks = (d.impressions, d.clicks) if d is not None else (0, 0)
        ctr = Decimal(clicks) / Decimal(imps) if imps else None
        ctrs.append(ctr)
        rows.append((day.isoformat(), imps, clicks, f"{ctr * 100:.2f}%" if ctr is not None else "—"))
    curve = Curve("", rows)
    peak = max((c for c in ctrs if c is not None), default=Decimal(0))
    pts = []
    for i, c in enumerate(ctrs):
        if c is None:
            continue
        x = Decimal(i) * Decimal(curve.width) / Decimal(max(days - 1, 1))
        y = Decimal(curve.height) - (c / peak * Decimal(curve.height - 2) if peak else Decimal(0)) - 1
        pts.append(f"{x:.1f},{y:.1f}")
    curve.points = " ".join(pts)
    return curve


def fatigued_creatives(merchant_id: int) -> list[tuple[Creative, Curve]]:
    """The merchant's flagged creatives, most recently flagged first, each with its CTR curve."""
    rows = db.session.scalars(select(Creative).where(
        Creative.merchant_id == merchant_id, Creative.fatigued_at.is_not(None),
        Creative.status != "archived").order_by(Creative.fatigued_at.desc(), Creative.id.desc()).limit(100))
    return [(c, ctr_curve(c.id)) for c in rows]


# -- portal: creatives with the partner's own snippets ---------------------------------------

@dataclass
class OfferCreatives:
    """One offer the partner promotes: its running creatives and snippets for the chosen link."""

    offer: Any
    merchant: Any
    links: list[Any]
    link: Any | None
    items: list[tuple[Creative, dict[str, str] | None]]


def portal_creatives(partner_id: int, only_link: Any | None = None) -> list[OfferCreatives]:
    """Each offer the partner may promote that has running creatives; snippets use the partner's
    newest active link of the offer (or ``only_link``, one of the partner's links)."""
    from partnernet.links.models import Link
    from partnernet.portal.services import promotable_offers

    out = []
    for offer, merchant, ok in promotable_offers(partner_id):
        if not ok or (only_link is not None and only_link.offer_id != offer.id):
            continue
        creatives = partner_creatives(partner_id, offer.id)
        if not creatives:
            continue
        links = list(db.session.scalars(select(Link).where(
            Link.partner_id == partner_id, Link.offer_id == offer.id, Link.status == "active")
            .order_by(Link.id.desc()).limit(20)))
        link = only_link if only_link is not None else (links[0] if links else None)
        out.append(OfferCreatives(offer, merchant, links, link,
                                  [(c, snippets(c, link.code) if link is not None else None)
                                   for c in creatives]))
    return out
