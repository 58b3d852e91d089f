"""What only the admin panel needs: the dashboard's numbers, the chart, key rotation, page lookups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from partnernet import clock
from partnernet.accounts.models import ApiKey, Merchant, Partner
from partnernet.accounts.services import issue_api_key, issue_postback_credentials
from partnernet.audit import audit
from partnernet.extensions import db
from partnernet.offers.models import CommissionPlan, Membership, Offer
from partnernet.reports.rollup import Scope
from partnernet.reports.services import build_report

DASHBOARD_DAYS = 30


#: Rollups older than this are not kept by a worker (e.g. ``make run`` without Redis): read raw.
ROLLUP_STALE_AFTER = timedelta(minutes=10)


def rollups_fresh(rollup_until: datetime | None) -> bool:
    """Whether the report rollups are being kept up to date (else pages read the raw tables)."""
    return rollup_until is not None and rollup_until >= clock.now() - ROLLUP_STALE_AFTER


def report(scope: Scope, group_by: list[str], first: date | None = None, last: date | None = None,
           filters: dict[str, Any] | None = None) -> Any:
    """A report from the rollups when they are kept, else from the raw tables (same numbers)."""
    built = build_report(scope, group_by, first, last, filters)
    if not rollups_fresh(built.rollup_until):
        built = build_report(scope, group_by, built.first, built.last, filters, force_source="raw")
    return built


def panel_report(scope: Scope, args: Any) -> tuple[Any, dict[str, list[str]]]:
    """The report a panel's filter form asks for (parsed by the API's schema), or its errors."""
    from marshmallow import ValidationError

    from partnernet.errors import PartnernetError
    from partnernet.reports.schemas import ReportArgs

    wanted = {k: v for k, v in args.items() if k in ("group_by", "from", "to", "offer_id", "partner_id",
                                                     "sub1", "format") and v != ""}
    try:
        data = ReportArgs().load(wanted)
    except ValidationError as exc:
        return None, {k: [str(m) for m in (v if isinstance(v, list) else [v])]
                      for k, v in (exc.messages if isinstance(exc.messages, dict) else {}).items()}
    filters = {k: data.get(k) for k in ("offer_id", "partner_id", "sub1")}
    try:
        return report(scope, data["group_by"], data["first"], data["to"], filters), {}
    except PartnernetError as exc:
        return None, {"to": [exc.message]}


@dataclass
class Dashboard:
    """The last 30 days: totals per currency and one row per day for the chart."""

    first: date
    last: date
    totals: list[dict[str, Any]]
    days: list[dict[str, Any]]


def dashboard(scope: Scope, days: int = DASHBOARD_DAYS) -> Dashboard:
    """The dashboard figures from the reports service (raw tables until the rollups have run)."""
    last = clock.now().date()
    first = last - timedelta(days=days - 1)
    totals = build_report(scope, [], first, last)
    source = None if rollups_fresh(totals.rollup_until) else "raw"
    if source:
        totals = build_report(scope, [], first, last, force_source=source)
    daily = build_report(scope, ["day"], first, last, force_source=source)
    by_day: dict[str, dict[str, Any]] = {}
    for row in daily.rows:
        day = by_day.setdefault(str(row["day"]), {"clicks": row["clicks"], "conversions": 0})
        day["conversions"] += row["conversions"]
    series = []
    for i in range(days):
        d = (first + timedelta(days=i)).isoformat()
        row = by_day.get(d, {"clicks": 0, "conversions": 0})
        series.append({"day": d, **row})
    return Dashboard(first, last, totals.rows, series)


def bar_chart(series: list[dict[str, Any]], key: str, width: int = 600, height: int = 160) -> dict[str, Any]:
    """Geometry of a server-rendered SVG bar chart of ``series[*][key]`` (no JavaScript)."""
    peak = max((int(p[key]) for p in series), default=0) or 1
    slot = width / max(len(series), 1)
    bars = []
    for i, point in enumerate(series):
        value = int(point[key])
        h = round(value * (height - 20) / peak, 1)
        bars.append({"x": round(i * slot + 1, 1), "y": round(height - h, 1), "w": round(slot - 2, 1),
                     "h": h, "label": f"{point['day']}: {value} {key}"})
    return {"width": width, "height": height, "bars": bars, "peak": peak, "key": key}


def rotate_postback_credentials(merchant_id: int, user_id: int | None) -> tuple[str, str]:
    """New postback token and secret for the merchant (the old ones stop working). Commits."""
    merchant = db.session.get(Merchant, merchant_id)
    assert merchant is not None
    token, secret = issue_postback_credentials(merchant)
    audit("postback_credentials_rotated", user_id=user_id, merchant_id=merchant_id)
    db.session.commit()
    return token, secret


def create_api_key(merchant_id: int, name: str, user_id: int | None) -> str:
    """A new API key for the merchant; returned once. Commits."""
    key = issue_api_key(merchant_id=merchant_id, name=name)
    audit("api_key_created", user_id=user_id, merchant_id=merchant_id, name=name)
    db.session.commit()
    return key


def api_keys(merchant_id: int) -> list[ApiKey]:
    """The merchant's API keys, newest first (prefixes only: the keys are hashed)."""
    return list(db.session.scalars(select(ApiKey).where(ApiKey.merchant_id == merchant_id)
                                   .order_by(ApiKey.id.desc())))


def memberships_query(merchant_id: int, status: str | None = None, q: str | None = None) -> Any:
    """The program's partners (membership + partner in one query), newest first."""
    stmt = (select(Membership).join(Partner, Partner.id == Membership.partner_id)
            .where(Membership.merchant_id == merchant_id, Membership.offer_id.is_(None))
            .options(selectinload(Membership.partner)))
    if status:
        stmt = stmt.where(Membership.status == status)
    if q:
        like = f"%{q.strip().lower()}%"
        stmt = stmt.where((Partner.email.ilike(like)) | (Partner.name.ilike(like)))
    return stmt.order_by(Membership.id.desc())


def offers_with_plans(merchant_id: int) -> Any:
    """The merchant's offers with their plans loaded in one more query (no N+1 on a list)."""
    return (select(Offer).where(Offer.merchant_id == merchant_id)
            .options(selectinload(Offer.plans).selectinload(CommissionPlan.tiers)).order_by(Offer.id.desc()))


def names(model: Any, ids: set[int]) -> dict[int, str]:
    """``{id: name}`` of offers or partners shown on a page, in one query."""
    if not ids:
        return {}
    return dict(db.session.execute(select(model.id, model.name).where(model.id.in_(ids))).all())


def commissions_query(merchant_id: int, status: str | None = None, partner_id: int | None = None) -> Any:
    """The merchant's commissions (the commissions service's query), newest first."""
    from partnernet.commissions.services import commissions_query as query

    return query(merchant_id, status=status, partner_id=partner_id)


def review_evidence(commissions: list[Any]) -> dict[int, dict[str, Any]]:
    """The conversion and click behind each commission on a page (two queries for the page)."""
    from partnernet.conversions.models import Conversion
    from partnernet.links.models import Click

    conv_ids = {c.conversion_id for c in commissions if c.conversion_id}
    convs = {c.id: c for c in db.session.scalars(select(Conversion).where(Conversion.id.in_(conv_ids)))} \
        if conv_ids else {}
    click_ids = {c.click_id for c in convs.values() if c.click_id}
    clicks = {c.id: c for c in db.session.scalars(select(Click).where(Click.id.in_(click_ids)))} \
        if click_ids else {}
    out = {}
    for commission in commissions:
        conv = convs.get(commission.conversion_id or 0)
        out[commission.id] = {"conversion": conv,
                              "click": clicks.get(conv.click_id) if conv and conv.click_id else None}
    return out


def review_service() -> Any:
    """The commissions service's review entry points, once that feature has them (else None)."""
    from partnernet.commissions import services as commissions

    return commissions if hasattr(commissions, "review_commission") else None


def payouts_service() -> Any:
    """The payouts service, once that feature has landed (else None)."""
    try:
        from partnernet.payouts import services as payouts
    except ImportError:
        return None
    return payouts if hasattr(payouts, "payouts_query") else None


def recent_runs(merchant_id: int, limit: int = 5) -> list[Any]:
    """The merchant's latest payout runs."""
    from partnernet.payouts.models import PayoutRun

    return list(db.session.scalars(select(PayoutRun).where(PayoutRun.merchant_id == merchant_id)
                                   .order_by(PayoutRun.id.desc()).limit(limit)))


def fraud_patch(form: Any, rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fraud settings change a rules form asks for (validated by the commissions service)."""
    patch: dict[str, Any] = {"rules": {}}
    for name, conf in rules.items():
        rule: dict[str, Any] = {"enabled": form.get(f"{name}-enabled") == "on"}
        if form.get(f"{name}-mode"):
            rule["mode"] = form.get(f"{name}-mode")
        if form.get(f"{name}-action") and conf.get("action") != "auto":
            rule["action"] = form.get(f"{name}-action")
        if conf.get("threshold") is not None and form.get(f"{name}-threshold") is not None:
            rule["threshold"] = form.get(f"{name}-threshold", "").strip() or "0"
        patch["rules"][name] = rule
    patch["ip_blocklist"] = [line.strip() for line in (form.get("ip_blocklist") or "").splitlines()
                             if line.strip()]
    return patch


def payout_settings_input(form: Any) -> dict[str, Any]:
    """The payouts settings body from the form (blank threshold or weekday: none)."""
    data: dict[str, Any] = {"min_payout": (form.get("min_payout") or "").strip(),
                            "approval_threshold": (form.get("approval_threshold") or "").strip() or None,
                            "rail": form.get("rail") or "auto"}
    weekday = (form.get("weekday") or "").strip()
    data["schedule"] = {"weekday": weekday, "hour": (form.get("hour") or "9").strip()} if weekday else None
    return data
