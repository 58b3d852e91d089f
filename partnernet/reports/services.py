"""The report: metrics grouped by day/week/month, offer, partner, sub1..sub5, country, channel.

Rows come from the rollup tables when the grouping and filters fit their grain
(day × merchant × offer × partner × sub1); ``sub2``..``sub5`` and ``country`` are not
in the rollups, so those reports aggregate the raw tables (slower, same numbers).
Each output row is one group in one currency: money is never added across
currencies. The click counts belong to the group and repeat on each of its
currency rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select

from partnernet import clock
from partnernet.accounts.models import Partner
from partnernet.extensions import db
from partnernet.links.models import Click
from partnernet.reports import rollup
from partnernet.reports.exceptions import InvalidReportRange
from partnernet.reports.metrics import METRIC_COLUMNS, ClickCounts, MoneyTotals, row_metrics
from partnernet.reports.models import ClickRollup, ConversionRollup, RollupWatermark
from partnernet.reports.rollup import Scope

PERIODS = ("day", "week", "month")
GROUPS = PERIODS + ("offer", "partner", "sub1", "sub2", "sub3", "sub4", "sub5", "country",
                    "channel")
#: Groupings and filters the rollups cannot answer: the report reads the raw tables.
RAW_ONLY = ("sub2", "sub3", "sub4", "sub5", "country")
#: Output column of each grouping.
GROUP_COLUMNS = {"offer": "offer_id", "partner": "partner_id"}
MAX_DAYS = 731


@dataclass
class Report:
    """A computed report: its rows and where they came from."""

    group_by: list[str]
    first: date
    last: date
    source: str
    rows: list[dict[str, Any]]
    rollup_until: datetime | None

    @property
    def columns(self) -> list[str]:
        return [GROUP_COLUMNS.get(g, g) for g in self.group_by] + list(METRIC_COLUMNS)


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last 30 days, today included."""
    today = today or clock.now().date()
    return today - timedelta(days=29), today


def _period(name: str, day: date) -> str:
    if name == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if name == "month":
        return day.strftime("%Y-%m")
    return day.isoformat()


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _sql_dims(group_by: list[str]) -> list[str]:
    dims: list[str] = []
    for g in group_by:
        d = "day" if g in PERIODS else g
        if d not in dims:
            dims.append(d)
    return dims


def _rollup_filters(model: Any, filters: dict[str, Any]) -> list[Any]:
    conds = []
    if filters.get("offer_id") is not None:
        conds.append(model.offer_id == filters["offer_id"])
    if filters.get("partner_id") is not None:
        conds.append(model.partner_id == filters["partner_id"])
    if filters.get("sub1") is not None:
        conds.append(model.sub1 == filters["sub1"])
    if filters.get("channel") is not None:
        conds.append(Partner.channel_type == filters["channel"])
    return conds


def _rollup_selects(dims: list[str], scope: Scope, first: date, last: date,
                    filters: dict[str, Any]) -> tuple[Any, Any]:
    """The click and the money aggregate over the rollup tables."""
    def dim_exprs(model: Any) -> list[Any]:
        names = {"day": model.day, "offer": model.offer_id, "partner": model.partner_id,
                 "sub1": model.sub1, "channel": Partner.channel_type}
        return [names[d].label(d) for d in dims]

    needs_partner = "channel" in dims or filters.get("channel") is not None
    c_dims = dim_exprs(ClickRollup)
    clicks = select(*c_dims, *[func.coalesce(func.sum(getattr(ClickRollup, m)), 0).label(m)
                               for m in rollup.CLICK_MEASURES]).select_from(ClickRollup)
    m_dims = dim_exprs(ConversionRollup) + [ConversionRollup.event.label("event"),
                                            ConversionRollup.currency.label("currency")]
    money = select(*m_dims, *[func.coalesce(func.sum(getattr(ConversionRollup, m)), 0).label(m)
                              for m in rollup.MONEY_MEASURES]).select_from(ConversionRollup)
    if needs_partner:
        clicks = clicks.join(Partner, Partner.id == ClickRollup.partner_id)
        money = money.join(Partner, Partner.id == ConversionRollup.partner_id)
    clicks = clicks.where(ClickRollup.day >= first, ClickRollup.day <= last,
                          *scope.where(ClickRollup.merchant_id, ClickRollup.partner_id),
                          *_rollup_filters(ClickRollup, filters)).group_by(*c_dims)
    money = money.where(ConversionRollup.day >= first, ConversionRollup.day <= last,
                        *scope.where(ConversionRollup.merchant_id, ConversionRollup.partner_id),
                        *_rollup_filters(ConversionRollup, filters)).group_by(*m_dims)
    return clicks, money


def report_source(group_by: list[str], filters: dict[str, Any]) -> str:
    """``rollup`` when the rollup grain answers the request, else ``raw``."""
    raw = any(g in RAW_ONLY for g in group_by) or any(
        filters.get(f) is not None for f in RAW_ONLY)
    return "raw" if raw else "rollup"


def build_report(scope: Scope, group_by: list[str], first: date | None = None,
                 last: date | None = None, filters: dict[str, Any] | None = None,
                 force_source: str | None = None) -> Report:
    """Compute the report rows for ``scope`` (a merchant's or a partner's traffic).

    ``force_source="raw"`` reads the raw tables even when the rollups could answer
    (used to check one against the other)."""
    filters = {k: v for k, v in (filters or {}).items() if v is not None}
    if first is None or last is None:
        d_first, d_last = default_range()
        first, last = first or d_first, last or d_last
    if last < first:
        raise InvalidReportRange("`to` is before `from`.")
    if (last - first).days >= MAX_DAYS:
        raise InvalidReportRange(f"A report covers at most {MAX_DAYS} days.")
    for g in group_by:
        if g not in GROUPS:
            raise InvalidReportRange(f"Unknown group_by {g!r}.", code="invalid_group_by")
    dims = _sql_dims(group_by)
    source = force_source or report_source(group_by, filters)
    if source == "rollup":
        clicks_stmt, money_stmt = _rollup_selects(dims, scope, first, last, filters)
        click_rows = db.session.execute(clicks_stmt).all()
        money_rows = [(tuple(r._mapping[d] for d in dims) + (r.event, r.currency),
                       {m: int(r._mapping[m]) for m in rollup.MONEY_MEASURES})
                      for r in db.session.execute(money_stmt)]
    else:
        lo, hi = rollup.day_start(first), rollup.day_start(last + timedelta(days=1))
        clicks_stmt = rollup.raw_click_select(
            dims, scope, [Click.created_at >= lo, Click.created_at < hi], filters)
        click_rows = db.session.execute(clicks_stmt).all()
        merged = rollup.merge_money_rows(
            dims,
            db.session.execute(rollup.raw_conversion_select(dims, scope, (first, last), filters)),
            db.session.execute(rollup.raw_commission_select(dims, scope, (first, last), filters)))
        money_rows = list(merged.items())
    rows = _fold(group_by, dims, click_rows, money_rows)
    mark = db.session.scalar(select(RollupWatermark.value).where(RollupWatermark.name == "clicks"))
    return Report(group_by, first, last, source, rows, mark)


def _group_key(group_by: list[str], dims: list[str], values: tuple[Any, ...]) -> tuple[Any, ...]:
    by_dim = dict(zip(dims, values, strict=True))
    key = []
    for g in group_by:
        if g in PERIODS:
            key.append(_period(g, _as_date(by_dim["day"])))
        else:
            v = by_dim[g]
            key.append(None if v == "" else (int(v) if g in ("offer", "partner") else v))
    return tuple(key)


def _fold(group_by: list[str], dims: list[str], click_rows: list[Any],
          money_rows: list[tuple[tuple[Any, ...], dict[str, int]]]) -> list[dict[str, Any]]:
    """Sum the SQL rows into report groups (days into weeks/months) and compute metrics."""
    clicks: dict[tuple[Any, ...], ClickCounts] = {}
    money: dict[tuple[Any, ...], dict[str, MoneyTotals]] = {}
    for r in click_rows:
        key = _group_key(group_by, dims, tuple(r._mapping[d] for d in dims))
        clicks.setdefault(key, ClickCounts()).add(r.clicks, r.unique_clicks, r.bot_clicks)
    for full_key, m in money_rows:
        key = _group_key(group_by, dims, full_key[:len(dims)])
        event, currency = full_key[len(dims)], full_key[len(dims) + 1]
        totals = money.setdefault(key, {}).setdefault(currency, MoneyTotals())
        totals.add_event(event, conversions=m["conversions"], revenue_minor=m["revenue_minor"],
                         refunded_minor=m["refunded_minor"],
                         refunded_conversions=m["refunded_conversions"],
                         commission_minor=m["commission_minor"],
                         reversed_minor=m["reversed_minor"], held=m["held_commissions"],
                         rejected=m["rejected_commissions"])
    names = [GROUP_COLUMNS.get(g, g) for g in group_by]
    out = []
    for key in sorted(set(clicks) | set(money), key=lambda k: [(v is None, v) for v in k]):
        c = clicks.get(key, ClickCounts())
        by_currency = money.get(key) or {None: None}
        for currency in sorted(by_currency, key=lambda x: x or ""):
            row = dict(zip(names, key, strict=True))
            row.update(row_metrics(c, by_currency[currency], currency))
            out.append(row)
    return out


def report_csv(report: Report) -> Iterator[str]:
    """The report as CSV text, a header line then one line per row (empty cell for null)."""
    columns = report.columns
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    yield buf.getvalue()
    for row in report.rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow([_cell(row.get(c)) for c in columns])
        yield buf.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            Decimal(value)
        except InvalidOperation:
            return "'" + value
    return value
