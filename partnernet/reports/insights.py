"""Attribution comparison, customer lifetime value, anomaly alerts and budget pacing."""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import and_, func, select

from partnernet import clock
from partnernet.commissions.models import Commission
from partnernet.conversions.models import Conversion
from partnernet.extensions import db
from partnernet.links.models import Click
from partnernet.money import format_amount, normalize_currency, parse_amount, prorate
from partnernet.offers.models import Offer
from partnernet.offers.services import get_offer
from partnernet.reports.exceptions import AlertNotFound, BudgetNotFound, InvalidReportRange
from partnernet.reports.metrics import SALE, money_per_unit, percent, ratio
from partnernet.reports.models import AnomalyAlert, ClickRollup, ConversionRollup, OfferBudget
from partnernet.reports.rollup import day_start

ATTRIBUTION_MODELS = ("last_click", "first_click", "linear", "position_based")
#: At most this many conversions are traced per attribution report (newest first).
MAX_TRACED = 5000


# -- attribution comparison ------------------------------------------------------------

def credit_shares(touches: list[int], model: str, paid_partner: int) -> dict[int, Fraction]:
    """Each partner's share of one conversion under ``model``; ``touches`` are the
    partners of the visitor's clicks in time order. Last click is what was paid."""
    if model == "last_click" or not touches:
        return {paid_partner: Fraction(1)}
    shares: dict[int, Fraction] = defaultdict(Fraction)
    n = len(touches)
    if model == "first_click":
        shares[touches[0]] += 1
    elif model == "linear":
        for p in touches:
            shares[p] += Fraction(1, n)
    elif model == "position_based":
        if n == 1:
            shares[touches[0]] += 1
        elif n == 2:
            shares[touches[0]] += Fraction(1, 2)
            shares[touches[1]] += Fraction(1, 2)
        else:
            shares[touches[0]] += Fraction(2, 5)
            shares[touches[-1]] += Fraction(2, 5)
            for p in touches[1:-1]:
                shares[p] += Fraction(1, 5) / (n - 2)
    else:
        raise ValueError(model)
    return dict(shares)


def _fraction_text(value: Fraction) -> str:
    """A conversion count credit with 4 decimals (counts, not money)."""
    return str(Decimal(prorate(10_000, value.numerator, value.denominator)).scaleb(-4))


def attribution_comparison(merchant_id: int, first: date, last: date,
                           offer_id: int | None = None) -> dict[str, Any]:
    """Credit per partner under last click, first click, linear and position-based (40/20/40)
    for conversions whose visitor clicked several partners' links within the window."""
    if last < first:
        raise InvalidReportRange("`to` is before `from`.")
    stmt = (select(Conversion, Click.visitor_id, Offer.attribution_window_days)
            .join(Click, Click.id == Conversion.click_id)
            .join(Offer, Offer.id == Conversion.offer_id)
            .where(Conversion.merchant_id == merchant_id, Click.visitor_id.is_not(None),
                   Conversion.created_at >= day_start(first),
                   Conversion.created_at < day_start(last + timedelta(days=1)))
            .order_by(Conversion.created_at.desc()).limit(MAX_TRACED + 1))
    if offer_id is not None:
        stmt = stmt.where(Conversion.offer_id == offer_id)
    found = db.session.execute(stmt).all()
    credits: dict[int, dict[str, Fraction]] = defaultdict(lambda: defaultdict(Fraction))
    revenue: dict[int, dict[str, dict[str, Fraction]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(Fraction)))
    opens: dict[int, int] = defaultdict(int)
    closes: dict[int, int] = defaultdict(int)
    journeys = single = 0
    for conv, visitor_id, window_days in found[:MAX_TRACED]:
        touches = list(db.session.scalars(
            select(Click.partner_id).where(
                Click.visitor_id == visitor_id, Click.offer_id == conv.offer_id,
                Click.is_bot.is_(False),
                Click.created_at >= conv.created_at - timedelta(days=window_days),
                Click.created_at <= conv.created_at)
            .order_by(Click.created_at, Click.id)))
        if len(set(touches)) < 2:
            single += 1
            continue
        journeys += 1
        opens[touches[0]] += 1
        closes[conv.partner_id] += 1
        amount = conv.amount_minor or 0
        for model in ATTRIBUTION_MODELS:
            for partner, share in credit_shares(touches, model, conv.partner_id).items():
                credits[partner][model] += share
                if amount:
                    revenue[partner][model][conv.currency] += share * amount
    partners = []
    for partner in sorted(credits):
        entry: dict[str, Any] = {"partner_id": partner, "opened": opens[partner],
                                 "closed": closes[partner]}
        for model in ATTRIBUTION_MODELS:
            entry[model] = {
                "conversions": _fraction_text(credits[partner][model]),
                "revenue": {cur: format_amount(prorate(v.numerator, 1, v.denominator), cur)
                            for cur, v in sorted(revenue[partner][model].items())},
            }
        partners.append(entry)
    return {"from": first, "to": last, "multi_partner_journeys": journeys,
            "single_partner_conversions": single, "truncated": len(found) > MAX_TRACED,
            "partners": partners}


# -- lifetime value --------------------------------------------------------------------

LTV_WINDOWS = (30, 90, 365)
DEFAULT_TARGET_RATIO = Decimal(3)


def ltv_report(merchant_id: int, group_by: str, first: date, last: date,
               target_ratio: Decimal | None = None) -> dict[str, Any]:
    """Customers acquired in [first, last] per partner or offer (of their first conversion),
    repeat purchase rate and revenue per customer over 30/90/365 days, and the CPA that
    keeps LTV : CAC at ``target_ratio`` beside the actual acquisition cost."""
    if last < first:
        raise InvalidReportRange("`to` is before `from`.")
    target = Fraction(target_ratio or DEFAULT_TARGET_RATIO)
    firsts = (select(Conversion.customer_id, func.min(Conversion.created_at).label("first_at"))
              .where(Conversion.merchant_id == merchant_id, Conversion.customer_id.is_not(None))
              .group_by(Conversion.customer_id).subquery())
    cohort_rows = db.session.execute(
        select(Conversion, Commission)
        .join(firsts, and_(firsts.c.customer_id == Conversion.customer_id))
        .outerjoin(Commission, Commission.conversion_id == Conversion.id)
        .where(Conversion.merchant_id == merchant_id,
               firsts.c.first_at >= day_start(first),
               firsts.c.first_at < day_start(last + timedelta(days=1)))
        .order_by(Conversion.customer_id, Conversion.created_at, Conversion.id)).all()
    by_customer: dict[str, list[tuple[Conversion, Commission | None]]] = defaultdict(list)
    for conv, comm in cohort_rows:
        assert conv.customer_id is not None  # joined to ``firsts``, which has no NULL customer
        by_customer[conv.customer_id].append((conv, comm))
    groups: dict[int, dict[str, Any]] = {}
    for rows in by_customer.values():
        acq, acq_comm = rows[0]
        key = acq.partner_id if group_by == "partner" else acq.offer_id
        g = groups.setdefault(key, {"customers": 0, "cac": defaultdict(int),
                                    "windows": {w: {"repeat": 0, "revenue": defaultdict(int)}
                                                for w in LTV_WINDOWS}})
        g["customers"] += 1
        if acq_comm is not None and acq_comm.status != "rejected":
            g["cac"][acq_comm.currency] += acq_comm.amount_minor - acq_comm.reversed_minor
        for w in LTV_WINDOWS:
            end = acq.created_at + timedelta(days=w)
            inside = [c for c, _ in rows if c.created_at < end]
            if sum(1 for c in inside if c.event == SALE) >= 2:
                g["windows"][w]["repeat"] += 1
            for c in inside:
                g["windows"][w]["revenue"][c.currency] += (c.amount_minor or 0) - c.refunded_minor
    items = []
    name = "partner_id" if group_by == "partner" else "offer_id"
    for key in sorted(groups):
        g = groups[key]
        n = g["customers"]
        windows = {}
        for w in LTV_WINDOWS:
            win = g["windows"][w]
            windows[str(w)] = {
                "repeat_purchase_rate": percent(win["repeat"], n),
                "revenue_per_customer": {cur: money_per_unit(v, n, cur)
                                         for cur, v in sorted(win["revenue"].items())},
                "acceptable_cpa": {cur: format_amount(prorate(v, target.denominator,
                                                              n * target.numerator), cur)
                                   for cur, v in sorted(win["revenue"].items())},
            }
        items.append({name: key, "customers": n,
                      "actual_cpa": {cur: money_per_unit(v, n, cur)
                                     for cur, v in sorted(g["cac"].items())},
                      "windows": windows})
    return {"group_by": group_by, "from": first, "to": last,
            "target_ratio": str(target_ratio or DEFAULT_TARGET_RATIO), "items": items}


# -- anomaly alerts --------------------------------------------------------------------

BASELINE_DAYS = 14
MIN_FLOOD_CLICKS = 100
FLOOD_FACTOR = 3
MIN_CR_BASELINE_CONVERSIONS = 20
MIN_CR_UNIQUE_CLICKS = 100
MIN_REFUND_CONVERSIONS = 10
MIN_REFUNDS = 3


def click_flood(observed: int, baseline_total: int, baseline_days: int) -> str | None:
    """A message when the day's clicks are ≥ 3× the trailing daily mean (and ≥ 100)."""
    if observed < MIN_FLOOD_CLICKS or observed * baseline_days < FLOOD_FACTOR * baseline_total:
        return None
    return (f"{observed} clicks, {FLOOD_FACTOR}× or more the daily mean of "
            f"{ratio(baseline_total, baseline_days) or '0'} over "
            f"{baseline_days} days")


def conversion_rate_drop(conv: int, unique: int, base_conv: int, base_unique: int) -> str | None:
    """A message when the day's conversion rate is under half its trailing rate."""
    if base_conv < MIN_CR_BASELINE_CONVERSIONS or unique < MIN_CR_UNIQUE_CLICKS or not base_unique:
        return None
    if conv * base_unique * 2 >= base_conv * unique:
        return None
    return (f"conversion rate {percent(conv, unique)}% against {percent(base_conv, base_unique)}% "
            f"over the previous {BASELINE_DAYS} days")


def refund_spike(refunds: int, conv: int, base_refunds: int, base_conv: int) -> str | None:
    """A message when the refund rate is at least twice its trailing rate (or ≥ 10% from 0)."""
    if conv < MIN_REFUND_CONVERSIONS or refunds < MIN_REFUNDS:
        return None
    if base_conv and base_refunds and refunds * base_conv < 2 * base_refunds * conv:
        return None
    if not base_refunds and refunds * 10 < conv:
        return None
    return (f"refund rate {percent(refunds, conv)}% against "
            f"{percent(base_refunds, base_conv) or '0.00'}% before")


def _series(merchant_id: int, subject: str, first: date, last: date) -> dict[int, dict[date, list[int]]]:
    """Per subject id and day: [clicks, unique clicks, conversions, refunded conversions]."""
    out: dict[int, dict[date, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0]))
    col_c = ClickRollup.partner_id if subject == "partner" else ClickRollup.offer_id
    for sid, day, clicks, unique in db.session.execute(
            select(col_c, ClickRollup.day, func.sum(ClickRollup.clicks),
                   func.sum(ClickRollup.unique_clicks))
            .where(ClickRollup.merchant_id == merchant_id, ClickRollup.day >= first,
                   ClickRollup.day <= last).group_by(col_c, ClickRollup.day)):
        out[int(sid)][day][0] += int(clicks)
        out[int(sid)][day][1] += int(unique)
    col_m = ConversionRollup.partner_id if subject == "partner" else ConversionRollup.offer_id
    for sid, day, conv, refunded in db.session.execute(
            select(col_m, ConversionRollup.day, func.sum(ConversionRollup.conversions),
                   func.sum(ConversionRollup.refunded_conversions))
            .where(ConversionRollup.merchant_id == merchant_id, ConversionRollup.day >= first,
                   ConversionRollup.day <= last).group_by(col_m, ConversionRollup.day)):
        out[int(sid)][day][2] += int(conv)
        out[int(sid)][day][3] += int(refunded)
    return out


def detect_anomalies(day: date | None = None) -> dict[str, Any]:
    """The daily ``anomalies`` job: compare yesterday (or ``day``) with each partner's and
    offer's own trailing baseline in the rollups; store new alerts. Safe to run twice."""
    day = day or clock.now().date() - timedelta(days=1)
    base_first = day - timedelta(days=BASELINE_DAYS)
    refund_first = day - timedelta(days=6)
    merchants = set(db.session.scalars(select(ClickRollup.merchant_id).distinct()
                                       .where(ClickRollup.day >= base_first)))
    merchants |= set(db.session.scalars(select(ConversionRollup.merchant_id).distinct()
                                        .where(ConversionRollup.day >= base_first)))
    created = 0
    for merchant_id in sorted(merchants):
        for subject in ("partner", "offer"):
            for sid, days in _series(merchant_id, subject, day - timedelta(days=34), day).items():
                today = days.get(day, [0, 0, 0, 0])
                base = [sum(v[i] for d, v in days.items() if base_first <= d < day)
                        for i in range(4)]
                recent = [sum(v[i] for d, v in days.items() if refund_first <= d <= day)
                          for i in range(4)]
                older = [sum(v[i] for d, v in days.items() if d < refund_first) for i in range(4)]
                found = [
                    ("click_flood", str(today[0]), str(base[0]),
                     click_flood(today[0], base[0], BASELINE_DAYS)),
                    ("conversion_rate_drop", percent(today[2], today[1]) or "",
                     percent(base[2], base[1]) or "",
                     conversion_rate_drop(today[2], today[1], base[2], base[1])),
                    ("refund_spike", percent(recent[3], recent[2]) or "",
                     percent(older[3], older[2]) or "",
                     refund_spike(recent[3], recent[2], older[3], older[2])),
                ]
                for kind, observed, baseline, message in found:
                    if message is None:
                        continue
                    exists = db.session.scalar(select(AnomalyAlert.id).where(
                        AnomalyAlert.merchant_id == merchant_id, AnomalyAlert.subject == subject,
                        AnomalyAlert.subject_id == sid, AnomalyAlert.kind == kind,
                        AnomalyAlert.day == day))
                    if exists is None:
                        db.session.add(AnomalyAlert(
                            merchant_id=merchant_id, subject=subject, subject_id=sid, kind=kind,
                            day=day, observed=observed, baseline=baseline,
                            message=f"{subject} {sid}: {message}"))
                        created += 1
    db.session.commit()
    return {"day": day.isoformat(), "alerts": created}


def alerts_query(merchant_id: int, status: str = "open") -> Any:
    """The merchant's alerts, newest first."""
    stmt = select(AnomalyAlert).where(AnomalyAlert.merchant_id == merchant_id)
    if status != "all":
        stmt = stmt.where(AnomalyAlert.status == status)
    return stmt.order_by(AnomalyAlert.created_at.desc(), AnomalyAlert.id.desc())


def dismiss_alert(merchant_id: int, alert_id: int) -> AnomalyAlert:
    """Mark one of the merchant's alerts as seen."""
    alert = db.session.get(AnomalyAlert, alert_id)
    if alert is None or alert.merchant_id != merchant_id:
        raise AlertNotFound()
    alert.status = "dismissed"
    db.session.commit()
    return alert


# -- budget pacing ---------------------------------------------------------------------

def set_budget(merchant_id: int, offer_id: int, amount: Decimal,
               currency: str | None = None) -> dict[str, Any]:
    """Set (or replace) an offer's monthly commission budget, in the offer's currency."""
    offer = get_offer(merchant_id, offer_id)
    if currency is not None and normalize_currency(currency) != offer.currency:
        raise InvalidReportRange("The budget is kept in the offer's currency.",
                                 code="currency_mismatch", status_code=422)
    minor = parse_amount(amount, offer.currency)
    if minor <= 0:
        raise InvalidReportRange("The budget must be above zero.", code="invalid_budget")
    budget = db.session.get(OfferBudget, offer.id)
    if budget is None:
        budget = OfferBudget(offer_id=offer.id, merchant_id=merchant_id, currency=offer.currency,
                             monthly_budget_minor=minor)
        db.session.add(budget)
    budget.monthly_budget_minor = minor
    db.session.commit()
    return pacing(merchant_id, offer_id)


def pacing(merchant_id: int, offer_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Spend this month, its straight-line projection to month end, and whether it fits."""
    offer = get_offer(merchant_id, offer_id)
    budget = db.session.get(OfferBudget, offer.id)
    if budget is None:
        raise BudgetNotFound()
    now = now or clock.now()
    month_start = day_start(now.date().replace(day=1))
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    elapsed = now.day
    spend = int(db.session.scalar(
        select(func.coalesce(func.sum(Commission.amount_minor - Commission.reversed_minor), 0))
        .where(Commission.offer_id == offer.id, Commission.currency == budget.currency,
               Commission.status != "rejected", Commission.created_at >= month_start,
               Commission.created_at <= now)) or 0)
    projected = prorate(spend, days_in_month, elapsed)
    cur = budget.currency
    return {"offer_id": offer.id, "month": now.strftime("%Y-%m"), "currency": cur,
            "budget": format_amount(budget.monthly_budget_minor, cur),
            "spend_to_date": format_amount(spend, cur),
            "projected_spend": format_amount(projected, cur),
            "remaining": format_amount(budget.monthly_budget_minor - spend, cur),
            "on_track": projected <= budget.monthly_budget_minor,
            "days_elapsed": elapsed, "days_in_month": days_in_month}


def pacing_overview(merchant_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every offer of the merchant with its pacing (``budget`` None when it has none)."""
    offers = db.session.scalars(select(Offer).where(Offer.merchant_id == merchant_id)
                                .order_by(Offer.name, Offer.id)).all()
    budgeted = set(db.session.scalars(select(OfferBudget.offer_id)
                                      .where(OfferBudget.merchant_id == merchant_id)))
    rows = []
    for offer in offers:
        row = pacing(merchant_id, offer.id, now) if offer.id in budgeted else \
            {"offer_id": offer.id, "currency": offer.currency, "budget": None}
        row["offer_name"] = offer.name
        rows.append(row)
    return rows


#: What each alert kind measures, and whether its values are percents.
ALERT_METRICS = {"click_flood": ("Clicks", False),
                 "conversion_rate_drop": ("Conversion rate", True),
                 "refund_spike": ("Refund rate (7 days)", True)}


def alert_figures(alert: AnomalyAlert) -> dict[str, str]:
    """The metric, the actual value and the baseline of an alert as a person reads them
    (a click flood's baseline is stored as the trailing total: shown as its daily mean)."""
    label, is_percent = ALERT_METRICS.get(alert.kind, (alert.kind, False))
    actual, baseline = alert.observed or "—", alert.baseline or "—"
    if alert.kind == "click_flood" and alert.baseline.isdigit():
        baseline = f"{ratio(int(alert.baseline), BASELINE_DAYS)} a day"
    elif is_percent:
        actual = f"{actual}%" if alert.observed else actual
        baseline = f"{baseline}%" if alert.baseline else baseline
    return {"metric": label, "actual": actual, "baseline": baseline}
