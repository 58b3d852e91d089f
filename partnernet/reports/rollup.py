"""Aggregates over the raw tables, and the rollup tables kept from them incrementally.

The same aggregate queries serve the rollup job (grouped by the rollup grain) and the
reports that the rollups cannot answer (sub2..sub5, country), so a rollup row and
the raw numbers cannot drift apart by definition.

Incremental rules (``run_rollup``):

- Clicks are insert-only: the job adds the counts of clicks with
  ``watermark < created_at <= now - settle`` to their buckets and moves the
  watermark, in one transaction. A click flushed from the Redis buffer later than
  ``settle`` seconds after it happened is picked up by ``reconcile_days`` (the
  daily ``rollup-reconcile`` job recounts the last days from the raw table).
- Conversions and commissions change after creation (refunds, holds, rejections):
  every (merchant, day) touched by a row whose ``updated_at`` passed the watermark
  is recomputed whole from the raw tables (the day of a conversion is the day it
  happened, so a refund a month later corrects that month-old day).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import aliased

from partnernet import clock
from partnernet.accounts.models import Partner
from partnernet.commissions.models import Commission
from partnernet.conversions.models import Conversion
from partnernet.extensions import db
from partnernet.links.models import Click
from partnernet.reports.metrics import CPC_EVENT, LEAD, SALE
from partnernet.reports.models import (
    ClickRollup,
    ConversionRollup,
    PartnerDayClickRollup,
    PartnerDayConversionRollup,
    PartnerDayReportRow,
    RollupWatermark,
)

#: The rollup grain (besides event and currency on the money side).
GRAIN = ("day", "merchant", "offer", "partner", "sub1")
SUBS = ("sub1", "sub2", "sub3", "sub4", "sub5")
EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
CLICK_MEASURES = ("clicks", "unique_clicks", "bot_clicks")
CONVERSION_MEASURES = ("conversions", "revenue_minor", "refunded_minor", "refunded_conversions")
COMMISSION_MEASURES = ("commission_minor", "reversed_minor", "held_commissions",
                       "rejected_commissions")
MONEY_MEASURES = CONVERSION_MEASURES + COMMISSION_MEASURES


def _dialect() -> str:
    return db.engine.dialect.name


def day_of(column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as a SQL date on both databases."""
    if _dialect() == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return type_coerce(func.date(column), Date)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=EPOCH.tzinfo)


def _counted(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _summed(expr: Any) -> Any:
    return func.coalesce(func.sum(expr), 0)


# -- the raw aggregates ---------------------------------------------------------------

class Scope:
    """Which rows a query may see: one merchant's, or one partner's (optionally at one merchant)."""

    def __init__(self, merchant_id: int | None = None, partner_id: int | None = None) -> None:
        if merchant_id is None and partner_id is None:
            raise ValueError("a report needs a merchant or a partner scope")
        self.merchant_id = merchant_id
        self.partner_id = partner_id

    def where(self, merchant_col: Any, partner_col: Any) -> list[Any]:
        conds = []
        if self.merchant_id is not None:
            conds.append(merchant_col == self.merchant_id)
        if self.partner_id is not None:
            conds.append(partner_col == self.partner_id)
        return conds


def _dims(dims: Sequence[str], *, day: Any, merchant: Any, offer: Any, partner: Any,
          subs: Any, country: Any, channel: Any) -> list[Any]:
    """The SQL expressions of the requested dimensions, labelled by name."""
    exprs = []
    for name in dims:
        if name == "day":
            expr = day
        elif name == "merchant":
            expr = merchant
        elif name == "offer":
            expr = offer
        elif name == "partner":
            expr = partner
        elif name in SUBS:
            expr = func.coalesce(subs[int(name[3]) - 1], "")
        elif name == "country":
            expr = func.coalesce(country, "")
        elif name == "channel":
            expr = channel
        else:
            raise ValueError(f"unknown dimension {name}")
        exprs.append(expr.label(name))
    return exprs


def _filters(filters: dict[str, Any], *, offer: Any, partner: Any, subs: Any, country: Any,
             channel: Any) -> list[Any]:
    conds = []
    if filters.get("offer_id") is not None:
        conds.append(offer == filters["offer_id"])
    if filters.get("partner_id") is not None:
        conds.append(partner == filters["partner_id"])
    for i, name in enumerate(SUBS):
        if filters.get(name) is not None:
            conds.append(func.coalesce(subs[i], "") == filters[name])
    if filters.get("country") is not None:
        conds.append(func.coalesce(country, "") == filters["country"])
    if filters.get("channel") is not None:
        conds.append(channel == filters["channel"])
    return conds


def _needs_click(dims: Sequence[str], filters: dict[str, Any] | None) -> bool:
    """Whether a money aggregate must join the conversion's click (sub ids, country)."""
    wanted = set(dims) | {k for k, v in (filters or {}).items() if v is not None}
    return bool(wanted & {*SUBS, "country"})


def raw_click_select(dims: Sequence[str], scope: Scope | None, conds: Iterable[Any] = (),
                     filters: dict[str, Any] | None = None) -> Any:
    """Click counts grouped by ``dims`` straight from ``clicks``."""
    subs = [Click.sub1, Click.sub2, Click.sub3, Click.sub4, Click.sub5]
    cols = dict(day=day_of(Click.created_at), merchant=Click.merchant_id, offer=Click.offer_id,
                partner=Click.partner_id, subs=subs, country=Click.country,
                channel=Partner.channel_type)
    group = _dims(dims, **cols)
    stmt = select(*group,
                  func.count().label("clicks"),
                  _counted(and_(Click.is_unique.is_(True), Click.is_bot.is_(False)))
                  .label("unique_clicks"),
                  _counted(Click.is_bot.is_(True)).label("bot_clicks")).select_from(Click)
    if "channel" in dims or (filters or {}).get("channel") is not None:
        stmt = stmt.join(Partner, Partner.id == Click.partner_id)
    where = list(conds)
    if scope is not None:
        where += scope.where(Click.merchant_id, Click.partner_id)
    where += _filters(filters or {}, offer=Click.offer_id, partner=Click.partner_id, subs=subs,
                      country=Click.country, channel=Partner.channel_type)
    return stmt.where(*where).group_by(*[g for g in group])


def _click_of(click_id: Any, lookup: bool) -> Any:
    """The conversion's click (for its sub ids and country), joined on ``click_id``.

    ``lookup=True`` (a few conversions: one merchant's day, the rollup job) fetches each
    click by its key with a LATERAL subquery on PostgreSQL: a plain join would hash every
    partition of ``clicks`` to match a thousand conversions, so the job's cost would grow
    with the history. Reports over many conversions keep the join (one hash of the clicks).
    Returns (the click's columns, how to join it to a statement)."""
    if lookup and _dialect() == "postgresql":
        one = (select(Click.sub1, Click.sub2, Click.sub3, Click.sub4, Click.sub5, Click.country)
               .where(Click.id == click_id).limit(1).lateral("ck"))
        return one.c, lambda stmt: stmt.outerjoin(one, literal(True))
    ck = aliased(Click)
    return ck, lambda stmt: stmt.outerjoin(ck, ck.id == click_id)


def raw_conversion_select(dims: Sequence[str], scope: Scope | None, day_range: tuple[date, date]
                          | None = None, filters: dict[str, Any] | None = None,
                          merchant_id: int | None = None, lookup: bool = False) -> Any:
    """Conversion counts, revenue and refunds by ``dims``, event and conversion currency."""
    ck, join_click = _click_of(Conversion.click_id, lookup)
    subs = [ck.sub1, ck.sub2, ck.sub3, ck.sub4, ck.sub5]
    cols = dict(day=day_of(Conversion.created_at), merchant=Conversion.merchant_id,
                offer=Conversion.offer_id, partner=Conversion.partner_id, subs=subs,
                country=ck.country, channel=Partner.channel_type)
    group = _dims(dims, **cols) + [Conversion.event.label("event"),
                                   Conversion.currency.label("currency")]
    refunded = or_(Conversion.refunded_minor > 0,
                   Conversion.status.in_(("refunded", "partially_refunded")))
    stmt = (select(*group,
                   func.count().label("conversions"),
                   _summed(Conversion.amount_minor).label("revenue_minor"),
                   _summed(Conversion.refunded_minor).label("refunded_minor"),
                   _counted(refunded).label("refunded_conversions"))
            .select_from(Conversion))
    if _needs_click(dims, filters):
        stmt = join_click(stmt)
    if "channel" in dims or (filters or {}).get("channel") is not None:
        stmt = stmt.join(Partner, Partner.id == Conversion.partner_id)
    where = []
    if scope is not None:
        where += scope.where(Conversion.merchant_id, Conversion.partner_id)
    if merchant_id is not None:
        where.append(Conversion.merchant_id == merchant_id)
    if day_range is not None:
        where += [Conversion.created_at >= day_start(day_range[0]),
                  Conversion.created_at < day_start(day_range[1] + timedelta(days=1))]
    where += _filters(filters or {}, offer=Conversion.offer_id, partner=Conversion.partner_id,
                      subs=subs, country=ck.country, channel=Partner.channel_type)
    return stmt.where(*where).group_by(*group)


def _commission_rows(scope: Scope | None, day_range: tuple[date, date] | None,
                     merchant_id: int | None) -> Any:
    """Each commission with the day it counts on (``happened``), its event and its click: the
    conversion's for a conversion's commission, its own (event ``_cpc``) for an accrual.

    Two branches, so that each day filter is one an index serves: the conversions of a
    merchant's day (``ix_conversions_merchant_created``, then each one's commission by
    ``conversion_id``) and the accruals of the day (``ix_commissions_accruals_merchant_created``).
    One filter on ``coalesce(conversion day, commission day)`` across an outer join read every
    commission the merchant ever had to recompute one day."""
    cv = aliased(Conversion)
    own = [Commission.merchant_id, Commission.offer_id, Commission.partner_id,
           Commission.currency, Commission.status, Commission.amount_minor,
           Commission.reversed_minor]
    of_conversions = (select(*own, cv.event.label("event"), cv.click_id.label("click_id"),
                             cv.created_at.label("happened"))
                      .select_from(Commission).join(cv, cv.id == Commission.conversion_id))
    accruals = (select(*own, literal(CPC_EVENT, String(64)).label("event"),
                       cast(null(), String(32)).label("click_id"),
                       Commission.created_at.label("happened"))
                .where(Commission.conversion_id.is_(None)))
    branches = []
    # On the conversion's merchant and partner too (the same ones): what its index is looked
    # up by.
    for stmt, happened, owners in ((of_conversions, cv.created_at, (Commission, cv)),
                                   (accruals, Commission.created_at, (Commission,))):
        where = []
        for owner in owners:
            if scope is not None:
                where += scope.where(owner.merchant_id, owner.partner_id)
            if merchant_id is not None:
                where.append(owner.merchant_id == merchant_id)
        if day_range is not None:
            where += [happened >= day_start(day_range[0]),
                      happened < day_start(day_range[1] + timedelta(days=1))]
        branches.append(stmt.where(*where))
    return union_all(*branches).subquery("cm")


def raw_commission_select(dims: Sequence[str], scope: Scope | None, day_range: tuple[date, date]
                          | None = None, filters: dict[str, Any] | None = None,
                          merchant_id: int | None = None, lookup: bool = False) -> Any:
    """Commission sums by ``dims``, event and commission currency; the day is the
    conversion's (a CPC accrual's own day, under event ``_cpc``)."""
    cm = _commission_rows(scope, day_range, merchant_id)
    ck, join_click = _click_of(cm.c.click_id, lookup)
    subs = [ck.sub1, ck.sub2, ck.sub3, ck.sub4, ck.sub5]
    cols = dict(day=day_of(cm.c.happened), merchant=cm.c.merchant_id, offer=cm.c.offer_id,
                partner=cm.c.partner_id, subs=subs, country=ck.country,
                channel=Partner.channel_type)
    group = _dims(dims, **cols) + [cm.c.event.label("event"), cm.c.currency.label("currency")]
    live = cm.c.status != "rejected"
    stmt = (select(*group,
                   _summed(case((live, cm.c.amount_minor), else_=0)).label("commission_minor"),
                   _summed(case((live, cm.c.reversed_minor), else_=0)).label("reversed_minor"),
                   _counted(cm.c.status == "held").label("held_commissions"),
                   _counted(cm.c.status == "rejected").label("rejected_commissions"))
            .select_from(cm))
    if _needs_click(dims, filters):
        stmt = join_click(stmt)
    if "channel" in dims or (filters or {}).get("channel") is not None:
        stmt = stmt.join(Partner, Partner.id == cm.c.partner_id)
    where = _filters(filters or {}, offer=cm.c.offer_id, partner=cm.c.partner_id,
                     subs=subs, country=ck.country, channel=Partner.channel_type)
    return stmt.where(*where).group_by(*group)


def merge_money_rows(dims: Sequence[str], conversion_rows: Iterable[Any],
                     commission_rows: Iterable[Any]) -> dict[tuple[Any, ...], dict[str, int]]:
    """Join the conversion and commission aggregates on (dims, event, currency)."""
    merged: dict[tuple[Any, ...], dict[str, int]] = {}
    for rows, measures in ((conversion_rows, CONVERSION_MEASURES),
                           (commission_rows, COMMISSION_MEASURES)):
        for row in rows:
            m = row._mapping
            key = tuple(m[d] for d in dims) + (m["event"], m["currency"])
            slot = merged.setdefault(key, dict.fromkeys(MONEY_MEASURES, 0))
            for name in measures:
                slot[name] += int(m[name])
    return merged


def money_sums(c: Any) -> list[Any]:
    """The ``metrics.MONEY_SUMS`` aggregates over per-event money rows ``c`` (the columns of
    the conversion rollups, or of ``raw_money_events``): events pivoted into sales, leads
    and their commissions; grouped by the caller (dims and currency)."""
    def total(expr: Any) -> Any:
        return cast(func.coalesce(func.sum(expr), 0), BigInteger)

    def of(event: str, expr: Any) -> Any:
        return total(case((c.event == event, expr), else_=0))

    net = c.commission_minor - c.reversed_minor
    return [total(case((c.event != CPC_EVENT, c.conversions), else_=0)).label("conversions"),
            of(SALE, c.conversions).label("sales"), of(LEAD, c.conversions).label("leads"),
            total(c.revenue_minor).label("revenue_minor"),
            total(c.refunded_minor).label("refunded_minor"),
            total(c.refunded_conversions).label("refunded_conversions"),
            total(c.commission_minor).label("commission_minor"),
            total(c.reversed_minor).label("reversed_minor"),
            of(SALE, net).label("sale_commission_minor"),
            of(LEAD, net).label("lead_commission_minor"),
            total(c.held_commissions).label("held"),
            total(c.rejected_commissions).label("rejected")]


def raw_money_select(dims: Sequence[str], scope: Scope | None, day_range: tuple[date, date],
                     filters: dict[str, Any] | None = None) -> Any:
    """``money_sums`` by ``dims`` and currency straight from conversions and commissions
    (the conversion and the commission aggregates, stacked per event, then pivoted)."""
    zero = literal(0, BigInteger)
    parts = []
    for stmt, own in ((raw_conversion_select(dims, scope, day_range, filters),
                       CONVERSION_MEASURES),
                      (raw_commission_select(dims, scope, day_range, filters),
                       COMMISSION_MEASURES)):
        sq = stmt.subquery()
        parts.append(select(*[sq.c[d] for d in dims], sq.c.event, sq.c.currency,
                            *[(sq.c[m] if m in own else zero).label(m) for m in MONEY_MEASURES]))
    events = union_all(*parts).subquery()
    keys = [events.c[d] for d in dims] + [events.c.currency]
    return select(*keys, *money_sums(events.c)).group_by(*keys)


# -- keeping the rollups --------------------------------------------------------------

def _upsert(model: Any, rows: list[dict[str, Any]], keys: Sequence[str], measures: Sequence[str],
            additive: bool) -> None:
    """INSERT ... ON CONFLICT DO UPDATE, adding to (or replacing) the measures."""
    if not rows:
        return
    if _dialect() == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    table = model.__table__
    stmt = insert(table)
    new = {name: (table.c[name] + stmt.excluded[name]) if additive else stmt.excluded[name]
           for name in measures}
    # executemany: compiled once, sent in batches ("insertmanyvalues").
    db.session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=new), rows)


def _click_rows(stmt: Any) -> list[dict[str, Any]]:
    return [{"day": r.day, "merchant_id": r.merchant, "offer_id": r.offer,
             "partner_id": r.partner, "sub1": r.sub1, "clicks": int(r.clicks),
             "unique_clicks": int(r.unique_clicks), "bot_clicks": int(r.bot_clicks)}
            for r in db.session.execute(stmt)]


CLICK_KEYS = ("day", "merchant_id", "offer_id", "partner_id", "sub1")
MONEY_KEYS = CLICK_KEYS + ("event", "currency")


def _derive_partner_days(fine: Any, coarse: Any, measures: Sequence[str],
                         conds: list[Any]) -> None:
    """Sum the fine rollup rows matching ``conds`` (written on both tables' day and
    merchant) over offers and sub1 into the partner-day rollup, replacing its rows."""
    keys = ["day", "merchant_id", "partner_id"] + (["event", "currency"]
                                                   if fine is ConversionRollup else [])
    f, c = fine.__table__.c, coarse.__table__.c
    db.session.execute(delete(coarse).where(*[cond(c) for cond in conds]))
    picked = select(*[f[k] for k in keys],
                    *[cast(func.sum(f[m]), BigInteger) for m in measures]) \
        .where(*[cond(f) for cond in conds]).group_by(*[f[k] for k in keys])
    db.session.execute(insert(coarse).from_select(keys + list(measures), picked))


PARTNER_DAY_KEYS = ("day", "merchant_id", "partner_id")


def add_clicks(after: datetime, until: datetime) -> int:
    """Add clicks with ``after < created_at <= until`` to the click rollups; rows written."""
    stmt = raw_click_select(GRAIN, None, [Click.created_at > after, Click.created_at <= until])
    rows = _click_rows(stmt)
    _upsert(ClickRollup, rows, CLICK_KEYS, CLICK_MEASURES, additive=True)
    # The same counts added to the partner-day rollup: cost of the new rows only.
    coarse: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = (r["day"], r["merchant_id"], r["partner_id"])
        slot = coarse.setdefault(key, {"day": key[0], "merchant_id": key[1],
                                       "partner_id": key[2], **dict.fromkeys(CLICK_MEASURES, 0)})
        for m in CLICK_MEASURES:
            slot[m] += r[m]
    _upsert(PartnerDayClickRollup, list(coarse.values()), PARTNER_DAY_KEYS, CLICK_MEASURES,
            additive=True)
    days: dict[int, list[date]] = {}
    for day, merchant, _ in coarse:
        days.setdefault(merchant, []).append(day)
    for merchant, touched in days.items():
        _refresh_rows(min(touched), max(touched), merchant)
    return len(rows)


def _refresh_rows(first: date, last: date, merchant_id: int | None = None) -> None:
    """Recompute the kept partner × day report rows of the days the job touched."""
    from partnernet.reports.services import refresh_partner_day_rows

    refresh_partner_day_rows(first, last, merchant_id)


def recount_click_days(first: date, last: date, merchant_id: int | None = None) -> int:
    """Recount the click rollups of whole days from the raw clicks (late-flushed clicks)."""
    lo, hi = day_start(first), day_start(last + timedelta(days=1))
    conds = [Click.created_at >= lo, Click.created_at < hi]
    wipe = delete(ClickRollup).where(ClickRollup.day >= first, ClickRollup.day <= last)
    if merchant_id is not None:
        conds.append(Click.merchant_id == merchant_id)
        wipe = wipe.where(ClickRollup.merchant_id == merchant_id)
    db.session.execute(wipe)
    rows = _click_rows(raw_click_select(GRAIN, None, conds))
    _upsert(ClickRollup, rows, CLICK_KEYS, CLICK_MEASURES, additive=False)
    span = [lambda t: t.day >= first, lambda t: t.day <= last]
    if merchant_id is not None:
        span.append(lambda t: t.merchant_id == merchant_id)
    _derive_partner_days(ClickRollup, PartnerDayClickRollup, CLICK_MEASURES, span)
    _refresh_rows(first, last, merchant_id)
    return len(rows)


def recompute_money_day(merchant_id: int, day: date) -> int:
    """Recompute one merchant's conversion rollups of one day from the raw tables."""
    db.session.execute(delete(ConversionRollup).where(
        ConversionRollup.merchant_id == merchant_id, ConversionRollup.day == day))
    span = (day, day)
    merged = merge_money_rows(
        GRAIN,
        db.session.execute(raw_conversion_select(GRAIN, None, span, merchant_id=merchant_id,
                                                 lookup=True)),
        db.session.execute(raw_commission_select(GRAIN, None, span, merchant_id=merchant_id,
                                                 lookup=True)))
    rows = [dict(zip(MONEY_KEYS, (k[0], k[1], k[2], k[3], k[4], k[5], k[6]), strict=True),
                 **measures) for k, measures in merged.items()]
    _upsert(ConversionRollup, rows, MONEY_KEYS, MONEY_MEASURES, additive=False)
    _derive_partner_days(ConversionRollup, PartnerDayConversionRollup, MONEY_MEASURES, [
        lambda t: t.merchant_id == merchant_id, lambda t: t.day == day])
    _refresh_rows(day, day, merchant_id)
    return len(rows)


def changed_money_days(after: datetime, until: datetime) -> set[tuple[int, date]]:
    """(merchant, day) pairs touched by conversions or commissions changed in the window."""
    conv = select(Conversion.merchant_id, day_of(Conversion.created_at)).where(
        Conversion.updated_at > after, Conversion.updated_at <= until).distinct()
    cv = aliased(Conversion)
    comm = (select(Commission.merchant_id,
                   day_of(func.coalesce(cv.created_at, Commission.created_at)))
            .outerjoin(cv, cv.id == Commission.conversion_id)
            .where(Commission.updated_at > after, Commission.updated_at <= until).distinct())
    pairs = {(int(m), d) for m, d in db.session.execute(conv)}
    pairs |= {(int(m), d) for m, d in db.session.execute(comm)}
    return pairs


def _watermark(name: str) -> RollupWatermark:
    row = db.session.scalar(select(RollupWatermark).where(RollupWatermark.name == name)
                            .with_for_update())
    if row is None:
        db.session.add(RollupWatermark(name=name, value=EPOCH))
        db.session.flush()
        row = db.session.scalar(select(RollupWatermark).where(RollupWatermark.name == name)
                                .with_for_update())
    assert row is not None
    return row


#: The watermark row whose presence says the kept partner × day report rows are complete.
ROWS_MARK = "partner_day_rows"


def _fill_kept_rows_once() -> None:
    """A database rolled up before the kept partner × day report rows existed gets them
    all on the job's first run; reports read them only once this mark exists."""
    if db.session.scalar(select(RollupWatermark.name)
                         .where(RollupWatermark.name == ROWS_MARK)) is not None:
        return
    spans = [db.session.execute(select(func.min(m.day), func.max(m.day))).one()
             for m in (PartnerDayClickRollup, PartnerDayConversionRollup)]
    firsts = [lo for lo, _ in spans if lo is not None]
    lasts = [hi for _, hi in spans if hi is not None]
    if firsts:
        _refresh_rows(min(firsts), max(lasts))
    db.session.add(RollupWatermark(name=ROWS_MARK, value=clock.now()))
    db.session.flush()


def run_rollup(settle_seconds: int | None = None) -> dict[str, Any]:
    """The ``rollup`` job: bring the rollups up to ``now - settle``; one transaction.

    Two runs at once are serialized by the watermark row lock (PostgreSQL), so a
    click is never counted twice.
    """
    from flask import current_app

    if settle_seconds is None:
        settle_seconds = int(current_app.config.get("REPORTS_ROLLUP_SETTLE_SECONDS", 60))
    until = clock.now() - timedelta(seconds=settle_seconds)
    clicks_mark = _watermark("clicks")
    changes_mark = _watermark("changes")
    _fill_kept_rows_once()
    result: dict[str, Any] = {"click_rows": 0, "money_days": 0}
    if until > clicks_mark.value:
        result["click_rows"] = add_clicks(clicks_mark.value, until)
        clicks_mark.value = until
    if until > changes_mark.value:
        days = changed_money_days(changes_mark.value, until)
        for merchant_id, day in sorted(days):
            recompute_money_day(merchant_id, day)
        result["money_days"] = len(days)
        changes_mark.value = until
    result["until"] = until.isoformat()
    db.session.commit()
    return result


def reconcile_days(days: int = 2) -> dict[str, Any]:
    """The ``rollup-reconcile`` job: recount the click rollups of the last ``days`` full
    days up to the clicks watermark (catches clicks flushed late from the buffer)."""
    mark = _watermark("clicks")
    last = mark.value.date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    if mark.value == EPOCH:
        db.session.commit()
        return {"days": 0}
    recount_click_days(first, last)
    db.session.commit()
    return {"days": days, "first": first.isoformat(), "last": last.isoformat()}


def rebuild() -> dict[str, Any]:
    """Throw the rollups away and build them again from the raw tables (a repair tool)."""
    for model in (ClickRollup, ConversionRollup, PartnerDayClickRollup,
                  PartnerDayConversionRollup, PartnerDayReportRow):
        db.session.execute(delete(model))
    db.session.execute(delete(RollupWatermark))
    db.session.flush()
    return run_rollup()
