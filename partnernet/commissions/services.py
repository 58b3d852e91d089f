"""Commission engine: plans, fraud holds, review, approval, reversal, CPC accrual.

Status machine (ARCHITECTURE.md): ``pending`` → ``approved`` → ``paid``;
``pending|held`` → ``rejected``; ``held`` → ``approved`` (reviewer);
``pending|held|approved|paid`` → ``reversed``. Ledger: approval posts
+(amount − already reversed) ``commission``; a refund of an approved or paid
commission posts −delta ``reversal`` (a clawback the next payout nets off when paid).
Helpers flush; entry points (``review_commission``, ``approve_matured``,
``cpc.accrue_cpc``, ``fraud_settings.update_fraud_settings``) commit once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Select, String, and_, bindparam, cast, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import make_transient_to_detached

from partnernet import clock, jobs
from partnernet.accounts.models import Merchant, Partner
from partnernet.commissions import calc, fraud
from partnernet.commissions.exceptions import (
    CommissionNotFound,
    InvalidTransition,
)
from partnernet.commissions.ledger import post_entry
from partnernet.commissions.models import Commission
from partnernet.conversions.models import Conversion
from partnernet.extensions import db
from partnernet.links.models import Click
from partnernet.money import format_amount
from partnernet.offers.models import CommissionPlan, Offer, PlanOverride, PlanTier

BATCH_SIZE = 500
#: Events that are never "recurring" (recurring_months applies to custom events).
STANDARD_EVENTS = ("sale", "lead", "click")
OUTLIER_LOOKBACK = timedelta(days=90)
OUTLIER_SAMPLE = 200
NOTIFY_JOB = "partnernet.conversions.outgoing:notify_partner"


# -- what the engine reads, in as few statements as possible -----------------------------
#
# A new conversion is the hot path of every postback: the offer with its plans and tiers
# is one statement, the merchant's settings with the partner and its override another,
# all as plain values through SQLAlchemy Core (no ORM loading), built once per process.

_READER: ContextVar[Connection | None] = ContextVar("partnernet_engine_reader", default=None)


def reader() -> Connection:
    """The connection the engine's reads go to: the session's, or the caller's (``reading_on``)."""
    conn = _READER.get()
    return conn if conn is not None else db.session.connection()


@contextmanager
def reading_on(conn: Connection) -> Iterator[Connection]:
    """Send the hot path's reads to ``conn`` (the postback's autocommit connection)."""
    token = _READER.set(conn)
    try:
        yield conn
    finally:
        _READER.reset(token)


@dataclass
class TierTerms:
    min_conversions: int
    percent: Decimal | None
    amount_minor: int | None


@dataclass
class PlanTerms:
    id: int
    event: str
    type: str
    percent: Decimal | None
    amount_minor: int | None
    tiers: list[TierTerms] = field(default_factory=list)


@dataclass
class OfferTerms:
    """An offer as the engine and attribution read it (plain values, not an ORM object)."""

    id: int
    merchant_id: int
    currency: str
    hold_days: int | None
    attribution_window_days: int
    attribution_model: str
    attribution_priority: str
    daily_cap: int | None
    allow_paid_search: bool
    coupon_requires_click: bool
    recurring_months: int | None
    plans: list[PlanTerms] = field(default_factory=list)


@dataclass
class EngineContext:
    """The merchant's settings, the partner and its override for one conversion."""

    merchant: Any  # .id .fraud_settings .ip_blocklist .default_hold_days
    partner: Any  # .id .email .postback_url
    override: calc.Rate | None


@dataclass
class KnownFacts:
    """What the engine would read for a new conversion, already read by the caller (the
    postback fast path reads them in one statement with the click). ``None``: not read, the
    engine queries it as usual."""

    context: EngineContext
    nth_this_month: int | None = None
    same_ip_conversions_24h: int | None = None
    #: the offer's trailing amounts: how many, and their median (``fraud.sample_of``)
    trailing_sample: tuple[int, Decimal | None] | None = None
    partner_conversions_today: int | None = None


@dataclass
class _Row:
    id: int
    fraud_settings: Any = None
    ip_blocklist: Any = None
    default_hold_days: int = 0
    email: str | None = None
    postback_url: str | None = None


_offers, _plans, _tiers = Offer.__table__, CommissionPlan.__table__, PlanTier.__table__
_OFFER_TERMS = (
    select(_offers.c.id, _offers.c.merchant_id, _offers.c.currency, _offers.c.hold_days,
           _offers.c.attribution_window_days, _offers.c.attribution_model,
           _offers.c.attribution_priority, _offers.c.daily_cap, _offers.c.allow_paid_search,
           _offers.c.coupon_requires_click, _offers.c.recurring_months,
           _plans.c.id.label("plan_id"), _plans.c.event, _plans.c.type,
           _plans.c.percent, _plans.c.amount_minor,
           _tiers.c.min_conversions, _tiers.c.percent.label("tier_percent"),
           _tiers.c.amount_minor.label("tier_amount_minor"))
    .select_from(_offers.outerjoin(_plans, _plans.c.offer_id == _offers.c.id)
                 .outerjoin(_tiers, _tiers.c.plan_id == _plans.c.id))
    .where(_offers.c.id == bindparam("offer_id"))
    .order_by(_plans.c.id, _tiers.c.min_conversions))


def load_offer_terms(offer_id: int) -> OfferTerms | None:
    """The offer with its plans (by id) and their tiers (by threshold): one statement."""
    rows = reader().execute(_OFFER_TERMS, {"offer_id": offer_id}).all()
    if not rows:
        return None
    first = rows[0]
    terms = OfferTerms(
        first.id, first.merchant_id, first.currency, first.hold_days,
        first.attribution_window_days, first.attribution_model, first.attribution_priority,
        first.daily_cap, bool(first.allow_paid_search), bool(first.coupon_requires_click),
        first.recurring_months)
    plans: dict[int, PlanTerms] = {}
    for row in rows:
        if row.plan_id is None:
            continue
        plan = plans.get(row.plan_id)
        if plan is None:
            plan = plans[row.plan_id] = PlanTerms(row.plan_id, row.event, row.type, row.percent,
                                                  row.amount_minor)
            terms.plans.append(plan)
        if row.min_conversions is not None:
            plan.tiers.append(TierTerms(row.min_conversions, row.tier_percent,
                                        row.tier_amount_minor))
    return terms


_merchants, _partners, _overrides = Merchant.__table__, Partner.__table__, PlanOverride.__table__
_CONTEXT = (
    select(_merchants.c.id, _merchants.c.fraud_settings, _merchants.c.ip_blocklist,
           _merchants.c.default_hold_days, _partners.c.id.label("partner_id"), _partners.c.email,
           _partners.c.postback_url, _overrides.c.id.label("override_id"),
           _overrides.c.percent, _overrides.c.amount_minor)
    .select_from(_merchants.join(_partners, _partners.c.id == bindparam("partner_id"))
                 .outerjoin(_overrides, and_(_overrides.c.offer_id == bindparam("offer_id"),
                                             _overrides.c.partner_id == _partners.c.id,
                                             _overrides.c.event == bindparam("event"))))
    .where(_merchants.c.id == bindparam("merchant_id")))


def engine_context(merchant_id: int, partner_id: int, offer_id: int, event: str) -> EngineContext:
    """Merchant settings, partner and the partner's override for the event: one statement."""
    row = reader().execute(_CONTEXT, {
        "merchant_id": merchant_id, "partner_id": partner_id, "offer_id": offer_id,
        "event": event}).one()
    return EngineContext(
        merchant=_Row(row.id, row.fraud_settings, row.ip_blocklist, row.default_hold_days),
        partner=_Row(row.partner_id, email=row.email, postback_url=row.postback_url),
        override=calc.Rate(row.percent, row.amount_minor, "override")
        if row.override_id is not None else None)


_ModelT = TypeVar("_ModelT")


def attach(obj: _ModelT) -> _ModelT:
    """Put a row inserted with Core into the session as a loaded object (no SELECT)."""
    make_transient_to_detached(obj)
    db.session.add(obj)
    return obj


# -- plan selection --------------------------------------------------------------------

def plan_rates(plan: CommissionPlan | PlanTerms) -> tuple[calc.Rate, list[calc.TierRate]]:
    """A plan's base rate and tiers as plain values."""
    return (calc.Rate(plan.percent, plan.amount_minor, "plan"),
            [calc.TierRate(t.min_conversions, t.percent, t.amount_minor) for t in plan.tiers])


def override_rate(offer_id: int, partner_id: int, event: str) -> calc.Rate | None:
    """The partner's own rate for the offer's event, if it has one."""
    row = db.session.scalar(select(PlanOverride).where(
        PlanOverride.offer_id == offer_id, PlanOverride.partner_id == partner_id,
        PlanOverride.event == event))
    return calc.Rate(row.percent, row.amount_minor, "override") if row is not None else None


def _nth_this_month(conversion: Conversion) -> int:
    """This conversion's rank among the partner's live conversions of the event this month."""
    start = calc.month_start(conversion.created_at)
    earlier = db.session.scalar(
        select(func.count()).select_from(Conversion)
        .join(Commission, Commission.conversion_id == Conversion.id)
        .where(Conversion.offer_id == conversion.offer_id,
               Conversion.partner_id == conversion.partner_id,
               Conversion.event == conversion.event, Conversion.created_at >= start,
               Conversion.id != (conversion.id or 0),
               Commission.status.not_in(("rejected", "reversed"))))
    return int(earlier or 0) + 1


# -- fraud facts ------------------------------------------------------------------------

def _email_hash(email: str) -> str:
    return hashlib.sha256(email.lower().encode()).hexdigest()


def _coupon_partner_involved(conversion: Conversion, click: Click | None,
                             offer: Offer | OfferTerms) -> bool:
    if click is not None and click.partner_id == conversion.partner_id:
        return True
    if not conversion.customer_id:
        return False
    since = conversion.created_at - timedelta(days=offer.attribution_window_days)
    earlier = db.session.scalar(
        select(func.count()).select_from(Conversion).join(Click, Click.id == Conversion.click_id)
        .where(Conversion.merchant_id == conversion.merchant_id,
               Conversion.customer_id == conversion.customer_id,
               Conversion.id != (conversion.id or 0), Click.partner_id == conversion.partner_id,
               Click.created_at >= since))
    return bool(earlier)


_conversions = Conversion.__table__
_TRAILING_AMOUNTS = (
    select(_conversions.c.amount_minor)
    .where(_conversions.c.offer_id == bindparam("offer_id"),
           _conversions.c.event == bindparam("event"),
           _conversions.c.id != bindparam("conversion_id"),
           _conversions.c.amount_minor.is_not(None),
           _conversions.c.created_at >= bindparam("since", type_=Conversion.created_at.type))
    .order_by(_conversions.c.id.desc()).limit(OUTLIER_SAMPLE))


def _facts(conversion: Conversion, click: Click | None, offer: Offer | OfferTerms,
           merchant: Merchant | _Row, partner: Partner | _Row, postback_ip: str | None,
           settings: dict[str, dict[str, Any]], known: KnownFacts | None = None) -> fraud.Facts:
    """What the rules look at; the queries of disabled rules are skipped, and so are those
    whose answer the caller read already (``known``)."""
    at = conversion.created_at

    def on(rule: str) -> bool:
        return bool(settings[rule].get("enabled", True))

    same_ip = 0
    if known is not None and known.same_ip_conversions_24h is not None:
        same_ip = known.same_ip_conversions_24h
    elif conversion.ip_hash and on("duplicate_ip"):
        same_ip = int(db.session.scalar(select(func.count()).select_from(Conversion).where(
            Conversion.offer_id == offer.id, Conversion.ip_hash == conversion.ip_hash,
            Conversion.id != (conversion.id or 0), Conversion.created_at > at - timedelta(hours=24),
            Conversion.created_at <= at)) or 0)
    sample: tuple[int, Decimal | None] = (0, None)
    if known is not None and known.trailing_sample is not None:
        sample = known.trailing_sample
    elif conversion.amount_minor is not None and on("amount_outlier"):
        sample = fraud.sample_of([int(a) for a in reader().execute(_TRAILING_AMOUNTS, {
            "offer_id": offer.id, "event": conversion.event, "conversion_id": conversion.id or 0,
            "since": at - OUTLIER_LOOKBACK}).scalars().all()])
    today = 0
    if known is not None and known.partner_conversions_today is not None:
        today = known.partner_conversions_today
    elif offer.daily_cap is not None and on("cap_exceeded"):
        day_start = datetime.combine(at.date(), time.min, tzinfo=at.tzinfo)
        today = int(db.session.scalar(select(func.count()).select_from(Conversion).where(
            Conversion.offer_id == offer.id, Conversion.partner_id == conversion.partner_id,
            Conversion.id != (conversion.id or 0), Conversion.created_at >= day_start,
            Conversion.created_at <= at)) or 0)
    ips = [ip for ip in (postback_ip, click.ip_truncated if click is not None else None) if ip]
    partner_email = (partner.email or "").lower()
    return fraud.Facts(
        converted_at=at,
        clicked_at=click.created_at if click is not None else None,
        click_is_bot=bool(click is not None and click.is_bot),
        click_paid_ads=click.paid_ads_param if click is not None else None,
        offer_allows_paid_search=bool(offer.allow_paid_search),
        customer_email_hash=conversion.customer_email_hash,
        customer_email_domain=conversion.customer_email_domain,
        partner_email_hash=_email_hash(partner_email) if partner_email else None,
        partner_email_domain=partner_email.rpartition("@")[2] or None,
        same_ip_conversions_24h=same_ip, ips=ips, blocklist=list(merchant.ip_blocklist or []),
        is_coupon=conversion.coupon_id is not None,
        coupon_partner_involved=(conversion.coupon_id is None or not on("coupon_leak")
                                 or _coupon_partner_involved(conversion, click, offer)),
        coupon_requires_click=bool(offer.coupon_requires_click),
        amount_minor=conversion.amount_minor, trailing_sample=sample,
        daily_cap=offer.daily_cap, partner_conversions_today=today)


def hold_days_for(offer: Offer | OfferTerms, merchant: Merchant | _Row, partner_id: int) -> int:
    """The offer's hold (else the merchant's), shortened for a trusted partner (risk-based)."""
    days = offer.hold_days if offer.hold_days is not None else merchant.default_hold_days
    trusted = fraud.trusted_settings(merchant.fraud_settings)
    if trusted["enabled"] and int(trusted["hold_days"]) < days:
        from partnernet.payouts.models import Payout

        clean = int(db.session.scalar(select(func.count()).select_from(Payout).where(
            Payout.merchant_id == merchant.id, Payout.partner_id == partner_id,
            Payout.status == "paid")) or 0)
        bad = int(db.session.scalar(select(func.count()).select_from(Commission).where(
            Commission.merchant_id == merchant.id, Commission.partner_id == partner_id,
            Commission.status == "rejected",
            Commission.created_at >= clock.now() - timedelta(days=90))) or 0)
        if clean >= int(trusted["min_clean_payouts"]) and bad == 0:
            days = int(trusted["hold_days"])
    return days


def _recurring_flag(conversion: Conversion, offer: Offer | OfferTerms) -> dict[str, Any] | None:
    """A reject flag when a recurring event falls outside the N months after the first sale."""
    if conversion.event in STANDARD_EVENTS or not offer.recurring_months:
        return None
    first = None
    if conversion.customer_id:
        first = db.session.scalar(select(func.min(Conversion.created_at)).where(
            Conversion.offer_id == offer.id, Conversion.event == "sale",
            Conversion.customer_id == conversion.customer_id, Conversion.id != (conversion.id or 0)))
    if calc.within_recurring_window(first, conversion.created_at, offer.recurring_months):
        return None
    reason = ("no earlier sale to this customer" if first is None else
              f"more than {offer.recurring_months} months after the customer's first sale")
    return {"rule": "recurring_window", "reason": reason, "action": "reject"}


# -- the engine --------------------------------------------------------------------------

def commission_for_conversion(conversion: Conversion, click: Click | None = None, *,
                              postback_ip: str | None = None,
                              offer: OfferTerms | None = None) -> Commission | None:
    """Compute the commission of a new conversion and add it (flush, no commit).

    Plan selection: override > tier > plan. Then the cap, every fraud rule and the
    hold. Returns None when the offer has no plan for the conversion's event.
    ``offer``: the offer's terms when the caller has them already (the postback).
    """
    return conversion_commission(conversion, click, postback_ip=postback_ip, offer=offer)[0]


def conversion_commission(conversion: Conversion, click: Click | None = None, *,
                          postback_ip: str | None = None,
                          offer: OfferTerms | None = None) -> tuple[Commission | None, bool]:
    """``commission_for_conversion``, and whether the partner wants outgoing postbacks."""
    values, wants_postbacks = compute_commission(conversion, click, postback_ip=postback_ip,
                                                 offer=offer)
    if values is None:
        return None, False
    if db.session.new or db.session.dirty:
        db.session.flush()  # e.g. the conversion itself, added by the caller
    values["conversion_id"] = conversion.id
    commission_id = db.session.connection().execute(_INSERT_COMMISSION, values).scalar_one()
    return attach(Commission(id=commission_id, **values)), wants_postbacks


def compute_commission(conversion: Conversion, click: Click | None = None, *,
                       postback_ip: str | None = None, offer: OfferTerms | None = None,
                       known: KnownFacts | None = None) -> tuple[dict[str, Any] | None, bool]:
    """The column values of a conversion's commission (no ``conversion_id``), not inserted,
    and whether the partner wants outgoing postbacks; None without a plan for the event.

    Reads only. ``conversion`` may not be inserted yet (no id): every count it takes
    leaves the conversion itself out, so the result is the same before or after.
    ``known``: facts the caller read already (the same queries' answers); the rest is read here.
    """
    terms = offer if offer is not None else load_offer_terms(conversion.offer_id)
    assert terms is not None
    plan = next((p for p in terms.plans if p.event == conversion.event), None)
    if plan is None:
        return None, False
    ctx = known.context if known is not None else engine_context(
        conversion.merchant_id, conversion.partner_id, terms.id, conversion.event)
    merchant, partner = ctx.merchant, ctx.partner
    if click is None and conversion.click_id:
        click = db.session.scalar(select(Click).where(Click.id == conversion.click_id))
    if conversion.ip_hash is None and click is not None and click.ip_hash:
        # The shopper's address (the click's), not the store server's that sent the postback.
        conversion.ip_hash = click.ip_hash

    base, tiers = plan_rates(plan)
    override = ctx.override
    # The month's count only matters when a tier could apply.
    nth = 1
    if tiers and override is None:
        nth = known.nth_this_month if known is not None and known.nth_this_month is not None \
            else _nth_this_month(conversion)
    rate = calc.choose_rate(base, tiers, override, nth)
    amount = calc.commission_amount(plan.type, rate, conversion.amount_minor)

    settings = fraud.rule_settings(merchant.fraud_settings)
    flags = fraud.evaluate(_facts(conversion, click, terms, merchant, partner, postback_ip, settings,
                                  known), settings)
    recurring = _recurring_flag(conversion, terms)
    if recurring is not None:
        flags.append(recurring)
    status = fraud.status_for(flags)
    hold_days = hold_days_for(terms, merchant, partner.id)
    now = clock.now()
    values = dict(
        merchant_id=conversion.merchant_id, partner_id=conversion.partner_id,
        offer_id=conversion.offer_id, kind="conversion",
        amount_minor=amount, currency=terms.currency, reversed_minor=0, status=status,
        hold_until=conversion.created_at + timedelta(days=hold_days), flags=flags,
        accrual_date=None, click_count=None, reviewer_id=None,
        reviewed_via="rules" if status == "rejected" else None, review_reason=None,
        reviewed_at=None, approved_at=None, created_at=now, updated_at=now)
    return values, bool(partner.postback_url)


_INSERT_COMMISSION = insert(Commission.__table__).returning(Commission.__table__.c.id)


def _lock(commission_id: int) -> Commission | None:
    """Load a commission with its row locked (PostgreSQL) and fresh attributes."""
    return db.session.scalar(select(Commission).where(Commission.id == commission_id)
                             .with_for_update().execution_options(populate_existing=True))


def _approve(commission: Commission, now: datetime) -> None:
    """pending|held → approved, with its +commission ledger entry (flush only)."""
    net = commission.amount_minor - commission.reversed_minor
    commission.status = "approved"
    commission.approved_at = now
    commission.updated_at = now
    post_entry(merchant_id=commission.merchant_id, partner_id=commission.partner_id,
               currency=commission.currency, amount_minor=net, kind="commission",
               commission_id=commission.id, memo=f"commission {commission.id} approved")


def reverse_for_refund(conversion: Conversion, refunded_minor_total: int) -> Commission | None:
    """Reverse the conversion's commission for a refund, pro rata when partial (flush only).

    Approved or paid money goes back out with a −delta ``reversal`` entry; for a paid
    commission that is the clawback the next payout nets off.
    """
    commission_id = db.session.scalar(select(Commission.id).where(
        Commission.conversion_id == conversion.id))
    if commission_id is None:
        return None
    commission = _lock(commission_id)
    assert commission is not None
    if commission.status in ("rejected", "reversed"):
        return commission
    target = calc.reversal_target(commission.amount_minor, refunded_minor_total,
                                  conversion.amount_minor or 0)
    delta = target - commission.reversed_minor
    if delta <= 0:
        return commission
    now = clock.now()
    if commission.status in ("approved", "paid"):
        post_entry(merchant_id=commission.merchant_id, partner_id=commission.partner_id,
                   currency=commission.currency, amount_minor=-delta, kind="reversal",
                   commission_id=commission.id,
                   memo=("clawback" if commission.status == "paid" else "reversal")
                   + f" of commission {commission.id} (refund)")
    commission.reversed_minor = target
    if target >= commission.amount_minor:
        commission.status = "reversed"
    commission.updated_at = now
    db.session.flush()
    return commission


def on_commission_status_change(commission: Commission) -> None:
    """Tell the partner (outgoing postback job) that a commission changed status; after commit."""
    partner_url = db.session.scalar(select(Partner.postback_url).where(
        Partner.id == commission.partner_id))
    if partner_url:
        jobs.enqueue(NOTIFY_JOB, commission.id)


# -- review --------------------------------------------------------------------------------

def get_commission(merchant_id: int, commission_id: int) -> Commission:
    """One of the merchant's commissions, or 404 (other merchants' do not exist here)."""
    commission = db.session.get(Commission, commission_id)
    if commission is None or commission.merchant_id != merchant_id:
        raise CommissionNotFound(details={"commission_id": commission_id})
    return commission


def review_commission(merchant_id: int, commission_id: int, action: str, reason: str | None,
                      reviewer_id: int | None = None, via: str = "api") -> Commission:
    """Approve (pending|held → approved) or reject (pending|held → rejected) by a reviewer. Commits."""
    get_commission(merchant_id, commission_id)
    commission = _lock(commission_id)
    assert commission is not None
    if commission.status not in ("pending", "held"):
        db.session.rollback()
        raise InvalidTransition(
            f"A {commission.status} commission cannot be {action}d.",
            details={"status": commission.status, "action": action})
    now = clock.now()
    if action == "approve":
        _approve(commission, now)
    elif action == "reject":
        commission.status = "rejected"
        commission.updated_at = now
    else:
        raise ValueError(action)
    commission.reviewer_id = reviewer_id
    commission.reviewed_via = via
    commission.review_reason = (reason or "")[:1000] or None
    commission.reviewed_at = now
    db.session.commit()
    on_commission_status_change(commission)
    return commission


def approve_commission(merchant_id: int, commission_id: int, reason: str | None = None,
                       reviewer_id: int | None = None, via: str = "api") -> Commission:
    """A reviewer approves a pending or held commission. Commits."""
    return review_commission(merchant_id, commission_id, "approve", reason, reviewer_id, via)


def reject_commission(merchant_id: int, commission_id: int, reason: str | None = None,
                      reviewer_id: int | None = None, via: str = "api") -> Commission:
    """A reviewer rejects a pending or held commission. Commits."""
    return review_commission(merchant_id, commission_id, "reject", reason, reviewer_id, via)


def approve_matured(batch_size: int = BATCH_SIZE, merchant_id: int | None = None) -> int:
    """Job: approve pending commissions whose hold has passed and that have no open flags.

    In batches, one commit each; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so two
    workers running at once split the work and approve each commission once.
    """
    now = clock.now()
    approved = 0
    last_id = 0
    while True:
        stmt = (select(Commission)
                .where(Commission.status == "pending", Commission.hold_until <= now,
                       Commission.id > last_id)
                .order_by(Commission.id).limit(batch_size)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True))
        if merchant_id is not None:
            stmt = stmt.where(Commission.merchant_id == merchant_id)
        batch = list(db.session.scalars(stmt))
        if not batch:
            db.session.commit()
            break
        done: list[Commission] = []
        for commission in batch:
            last_id = commission.id
            if commission.status != "pending" or fraud.has_open_flags(commission.flags):
                continue
            _approve(commission, now)
            commission.reviewed_via = "job"
            done.append(commission)
        db.session.commit()
        approved += len(done)
        for commission in done:
            on_commission_status_change(commission)
    return approved


# -- queries for the API ---------------------------------------------------------------------

def commissions_query(merchant_id: int, *, status: str | None = None, partner_id: int | None = None,
                      offer_id: int | None = None, rule: str | None = None,
                      since: datetime | None = None, until: datetime | None = None) -> Select[Any]:
    """The merchant's commissions with filters, newest first."""
    stmt = select(Commission).where(Commission.merchant_id == merchant_id)
    if status:
        stmt = stmt.where(Commission.status == status)
    if partner_id is not None:
        stmt = stmt.where(Commission.partner_id == partner_id)
    if offer_id is not None:
        stmt = stmt.where(Commission.offer_id == offer_id)
    if since is not None:
        stmt = stmt.where(Commission.created_at >= since)
    if until is not None:
        stmt = stmt.where(Commission.created_at < until)
    if rule:
        # flags are stored as JSON text by SQLAlchemy's serializer on both databases.
        stmt = stmt.where(cast(Commission.flags, String).like(f'%"rule": "{rule}"%'))
    return stmt.order_by(Commission.id.desc())


def commission_view(commission: Commission) -> dict[str, Any]:
    """The JSON object of a commission (GET /api/v1/commissions and postback answers)."""
    return {
        "id": commission.id,
        "conversion_id": commission.conversion_id,
        "partner_id": commission.partner_id,
        "offer_id": commission.offer_id,
        "kind": commission.kind,
        "amount": format_amount(commission.amount_minor, commission.currency),
        "reversed_amount": format_amount(commission.reversed_minor or 0, commission.currency),
        "currency": commission.currency,
        "status": commission.status,
        "hold_until": commission.hold_until.isoformat(),
        "flags": [{"rule": f["rule"], "reason": f["reason"], "action": f.get("action"),
                   **({"would": f["would"]} if "would" in f else {})}
                  for f in commission.flags or []],
        "review": None if commission.reviewed_at is None else {
            "via": commission.reviewed_via, "reviewer_id": commission.reviewer_id,
            "reason": commission.review_reason, "at": commission.reviewed_at.isoformat()},
        "approved_at": commission.approved_at.isoformat() if commission.approved_at else None,
        "accrual_date": commission.accrual_date.isoformat() if commission.accrual_date else None,
        "click_count": commission.click_count,
        "created_at": commission.created_at.isoformat() if commission.created_at else None,
    }
