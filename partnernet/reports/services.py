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
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from sqlalchemy import BigInteger, cast, delete, func, insert, select

from partnernet import clock
from partnernet.accounts.models import Partner
from partnernet.extensions import db
from partnernet.links.models import Click
from partnernet.reports import rollup
from partnernet.reports.exceptions import InvalidReportRange
from partnernet.reports.metrics import METRIC_COLUMNS, NO_MONEY, metric_values
from partnernet.reports.models import (
    ClickRollup,
    ConversionRollup,
    PartnerDayClickRollup,
    PartnerDayConversionRollup,
    PartnerDayReportRow,
    RollupWatermark,
)
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
    """A computed report: its rows and where they came from.

    ``values`` holds the rows as tuples in ``columns`` order (what the CSV writes);
    ``rows`` the same rows as dicts (what the JSON answer and the pages show), made on
    first use."""

    group_by: list[str]
    first: date
    last: date
    source: str
    values: list[tuple[Any, ...]]
    rollup_until: datetime | None

    @property
    def columns(self) -> list[str]:
        return report_columns(self.group_by)

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        names = self.columns
        return [dict(zip(names, v)) for v in self.values]  # noqa: B905 (same length)


def report_columns(group_by: list[str]) -> list[str]:
    """The column names of a report grouped by ``group_by``."""
    return [GROUP_COLUMNS.get(g, g) for g in group_by] + list(METRIC_COLUMNS)


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
    """The click and the money aggregate over the rollup tables: the partner-day ones when
    the report neither groups nor filters by offer or sub1, else the fine ones."""
    fine = any(d in ("offer", "sub1") for d in dims) or any(
        filters.get(f) is not None for f in ("offer_id", "sub1"))
    click_model, money_model = (ClickRollup, ConversionRollup) if fine else \
        (PartnerDayClickRollup, PartnerDayConversionRollup)

    def dim_exprs(model: Any) -> list[Any]:
        names = {"day": model.day, "partner": model.partner_id, "channel": Partner.channel_type}
        if fine:
            names.update(offer=model.offer_id, sub1=model.sub1)
        return [names[d].label(d) for d in dims]

    needs_partner = "channel" in dims or filters.get("channel") is not None
    c_dims = dim_exprs(click_model)
    clicks = select(*c_dims, *[cast(func.coalesce(func.sum(getattr(click_model, m)), 0),
                                    BigInteger).label(m)
                               for m in rollup.CLICK_MEASURES]).select_from(click_model)
    m_dims = dim_exprs(money_model) + [money_model.currency.label("currency")]
    money = select(*m_dims, *rollup.money_sums(money_model.__table__.c)) \
        .select_from(money_model)
    if needs_partner:
        clicks = clicks.join(Partner, Partner.id == click_model.partner_id)
        money = money.join(Partner, Partner.id == money_model.partner_id)
    clicks = clicks.where(click_model.day >= first, click_model.day <= last,
                          *scope.where(click_model.merchant_id, click_model.partner_id),
                          *_rollup_filters(click_model, filters)).group_by(*c_dims)
    money = money.where(money_model.day >= first, money_model.day <= last,
                        *scope.where(money_model.merchant_id, money_model.partner_id),
                        *_rollup_filters(money_model, filters)).group_by(*m_dims)
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
    marks = dict(db.session.execute(select(RollupWatermark.name, RollupWatermark.value).where(
        RollupWatermark.name.in_(("clicks", rollup.ROWS_MARK)))).all())
    mark = marks.get("clicks")
    if source == "rollup" and rollup.ROWS_MARK in marks and \
            _kept_rows_answer(group_by, scope, filters):
        kept = _kept_rows_select(group_by, scope, first, last, filters)
        return Report(group_by, first, last, source, _tuples(kept), mark)
    if source == "rollup":
        clicks_stmt, money_stmt = _rollup_selects(dims, scope, first, last, filters)
    else:
        lo, hi = rollup.day_start(first), rollup.day_start(last + timedelta(days=1))
        clicks_stmt = rollup.raw_click_select(
            dims, scope, [Click.created_at >= lo, Click.created_at < hi], filters)
        money_stmt = rollup.raw_money_select(dims, scope, (first, last), filters)
    # Both paths hand the same shapes to the same fold: (dims, clicks, unique, bot) and
    # (dims, currency, MONEY_SUMS), so both print the same rows through the same code.
    # Core rows straight from the connection: the ORM's per-row machinery is not needed.
    rows = _fold(group_by, dims, _tuples(clicks_stmt), _tuples(money_stmt))
    return Report(group_by, first, last, source, rows, mark)


def _tuples(stmt: Any) -> list[tuple[Any, ...]]:
    """The statement's rows as the driver's plain tuples (no ``Row`` objects, no result
    type processing: the selects return what the report prints, or what ``_fold`` reads)."""
    result = db.session.connection().execute(stmt)
    try:
        # The DBAPI's rows are tuples (typed as a Sequence of Any by SQLAlchemy).
        return typing.cast(list[tuple[Any, ...]], result.cursor.fetchall())
    finally:
        result.close()


#: The filters the kept partner-day rows can apply (besides the date range and scope).
KEPT_ROW_FILTERS = frozenset(("partner_id", "channel"))


def _kept_rows_answer(group_by: list[str], scope: Scope, filters: dict[str, Any]) -> bool:
    """Whether the report is one merchant's partner × day report, which the rollup job
    keeps whole (``PartnerDayReportRow``)."""
    return (sorted(group_by) == ["day", "partner"] and scope.merchant_id is not None
            and filters.keys() <= KEPT_ROW_FILTERS)


def _kept_rows_select(group_by: list[str], scope: Scope, first: date, last: date,
                      filters: dict[str, Any]) -> Any:
    """The kept partner × day rows of the range, in ``report_columns`` order and the
    report's order (the group columns, then currency)."""
    t = PartnerDayReportRow
    keys = {"partner": t.partner_id, "day": t.day}
    metrics = [getattr(t, c) for c in METRIC_COLUMNS[1:]]
    stmt = select(*[keys[g] for g in group_by], func.nullif(t.currency, ""), *metrics).where(
        t.day >= first.isoformat(), t.day <= last.isoformat(),
        *scope.where(t.merchant_id, t.partner_id))
    if filters.get("partner_id") is not None:
        stmt = stmt.where(t.partner_id == filters["partner_id"])
    if filters.get("channel") is not None:
        stmt = stmt.join(Partner, Partner.id == t.partner_id).where(
            Partner.channel_type == filters["channel"])
    # The key's text columns compare bytewise (see the model), as the fold orders keys.
    return stmt.order_by(*[keys[g] for g in group_by], t.currency)


def refresh_partner_day_rows(first: date, last: date, merchant_id: int | None = None) -> int:
    """Compute again the kept partner × day report rows of ``first``..``last`` (one
    merchant's, or every merchant's) from the partner-day rollups; rows written.

    The rows come out of the same fold and metrics code as any report read from the
    partner-day rollups (so the kept rows cannot print a number another way)."""
    t = PartnerDayReportRow
    span = [t.day >= first.isoformat(), t.day <= last.isoformat()]
    if merchant_id is None:
        merchants: set[int] = set()
        for model in (PartnerDayClickRollup, PartnerDayConversionRollup):
            merchants.update(db.session.scalars(select(model.merchant_id).distinct().where(
                model.day >= first, model.day <= last)))
        merchants.update(db.session.scalars(select(t.merchant_id).distinct().where(*span)))
    else:
        merchants = {merchant_id}
    written = 0
    # Day × partner: the rows go in in primary-key order, so the table's heap follows
    # the key the reports scan.
    group_by = dims = ["day", "partner"]
    names = ["day", "partner_id", *METRIC_COLUMNS]
    for merchant in sorted(merchants):
        db.session.execute(delete(t).where(t.merchant_id == merchant, *span))
        clicks_stmt, money_stmt = _rollup_selects(dims, Scope(merchant_id=merchant), first,
                                                  last, {})
        rows = []
        for v in _fold(group_by, dims, _tuples(clicks_stmt), _tuples(money_stmt)):
            row = dict(zip(names, v, strict=True))
            row["merchant_id"] = merchant
            row["currency"] = row["currency"] or ""
            rows.append(row)
        if rows:
            db.session.execute(insert(t), rows)
        written += len(rows)
    return written


class _Memo(dict):
    """A dict that computes (once) the group value of a raw SQL value it has not seen."""

    def __init__(self, convert: Any) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, raw: Any) -> Any:
        value = self[raw] = self.convert(raw)
        return value


def _group_value(group: str) -> Any:
    """How a SQL value becomes the report's value of ``group``."""
    if group in PERIODS:
        return lambda day: _period(group, _as_date(day))
    if group in ("offer", "partner"):
        return int
    return lambda v: None if v == "" else v


def _key_maker(group_by: list[str], dims: list[str]) -> Any:
    """``make(sql_row) -> group key``; each distinct SQL value is converted once."""
    at = [dims.index("day" if g in PERIODS else g) for g in group_by]
    memos = [_Memo(_group_value(g)) for g in group_by]
    if len(at) == 1:
        (i0,), (m0,) = at, memos
        return lambda r: (m0[r[i0]],)
    if len(at) == 2:
        (i0, i1), (m0, m1) = at, memos
        return lambda r: (m0[r[i0]], m1[r[i1]])
    pairs = list(zip(at, memos, strict=True))
    return lambda r: tuple([m[r[i]] for i, m in pairs])


def _sort_key(key: tuple[Any, ...]) -> list[tuple[bool, Any]]:
    return [(v is None, v) for v in key]


def _fold(group_by: list[str], dims: list[str], click_rows: list[Any],
          money_rows: list[Any]) -> list[tuple[Any, ...]]:
    """Sum the SQL rows into report groups (days into weeks/months) and compute the metrics.

    ``click_rows`` are (dims..., clicks, unique, bot); ``money_rows`` are (dims...,
    currency, MONEY_SUMS...); rows of one group (days of a week) are added up."""
    nd = len(dims)
    key_of = _key_maker(group_by, dims) if group_by else (lambda r: ())
    clicks: dict[tuple[Any, ...], Any] = {}
    money: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in click_rows:
        key = key_of(r)
        counts = r[nd:nd + 3]
        if key in clicks:
            counts = [a + b for a, b in zip(clicks[key], counts, strict=True)]
        clicks[key] = counts
    for r in money_rows:
        key = key_of(r)
        by_currency = money.get(key)
        if by_currency is None:
            by_currency = money[key] = {}
        currency, sums = r[nd], r[nd + 1:]
        if currency in by_currency:
            sums = [a + b for a, b in zip(by_currency[currency], sums, strict=True)]
        by_currency[currency] = sums
    no_clicks = (0, 0, 0)
    out = []
    keys = clicks.keys() | money.keys()
    # Only sub ids and country can be null (sorted last); other keys sort as they are.
    nullable = any(g in RAW_ONLY or g == "sub1" for g in group_by)
    for key in (sorted(keys, key=_sort_key) if nullable else sorted(keys)):
        c, u, b = clicks.get(key, no_clicks)
        by_currency = money.get(key)
        if not by_currency:
            out.append(key + metric_values(c, u, b, NO_MONEY, None))
            continue
        for currency in sorted(by_currency):
            out.append(key + metric_values(c, u, b, by_currency[currency], currency))
    return out


#: Group columns that never hold text a spreadsheet could run (ids, dates, months).
_SAFE_GROUPS = frozenset(("offer", "partner") + PERIODS)
CSV_CHUNK_ROWS = 1000


def report_csv(report: Report) -> Iterator[str]:
    """The report as CSV text, a header line then one line per row (empty cell for null),
    yielded in chunks of ``CSV_CHUNK_ROWS`` lines.

    Only group columns can hold text from outside (sub ids, channel, country): they go
    through ``_cell``; metric cells are numbers, decimal strings or null, which the
    writer prints as they are (null as an empty cell)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(report.columns)
    yield buf.getvalue()
    defuse = [i for i, g in enumerate(report.group_by) if g not in _SAFE_GROUPS]
    values = report.values
    for start in range(0, len(values), CSV_CHUNK_ROWS):
        chunk: Sequence[Sequence[Any]] = values[start:start + CSV_CHUNK_ROWS]
        if defuse:
            chunk = [_defused(v, defuse) for v in chunk]
        buf.seek(0)
        buf.truncate()
        writer.writerows(chunk)
        yield buf.getvalue()


def _defused(values: Sequence[Any], at: list[int]) -> list[Any]:
    out = list(values)
    for i in at:
        out[i] = _cell(out[i])
    return out


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
