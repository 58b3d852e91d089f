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
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, String, cast, func, select

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
from partnernet.offers.models import CommissionPlan, Offer, PlanOverride

BATCH_SIZE = 500
#: Events that are never "recurring" (recurring_months applies to custom events).
STANDARD_EVENTS = ("sale", "lead", "click")
OUTLIER_LOOKBACK = timedelta(days=90)
OUTLIER_SAMPLE = 200
NOTIFY_JOB = "partnernet.conversions.outgoing:notify_partner"


# -- plan selection --------------------------------------------------------------------

def plan_rates(plan: CommissionPlan) -> tuple[calc.Rate, list[calc.TierRate]]:
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
               Conversion.id != conversion.id,
               Commission.status.not_in(("rejected", "reversed"))))
    return int(earlier or 0) + 1


# -- fraud facts ------------------------------------------------------------------------

def _email_hash(email: str) -> str:
    return hashlib.sha256(email.lower().encode()).hexdigest()


def _coupon_partner_involved(conversion: Conversion, click: Click | None, offer: Offer) -> bool:
    if click is not None and click.partner_id == conversion.partner_id:
        return True
    if not conversion.customer_id:
        return False
    since = conversion.created_at - timedelta(days=offer.attribution_window_days)
    earlier = db.session.scalar(
        select(func.count()).select_from(Conversion).join(Click, Click.id == Conversion.click_id)
        .where(Conversion.merchant_id == conversion.merchant_id,
               Conversion.customer_id == conversion.customer_id,
               Conversion.id != conversion.id, Click.partner_id == conversion.partner_id,
               Click.created_at >= since))
    return bool(earlier)


def _facts(conversion: Conversion, click: Click | None, offer: Offer, merchant: Merchant,
           partner: Partner, postback_ip: str | None,
           settings: dict[str, dict[str, Any]]) -> fraud.Facts:
    """What the rules look at; the queries of disabled rules are skipped."""
    at = conversion.created_at

    def on(rule: str) -> bool:
        return bool(settings[rule].get("enabled", True))

    same_ip = 0
    if conversion.ip_hash and on("duplicate_ip"):
        same_ip = int(db.session.scalar(select(func.count()).select_from(Conversion).where(
            Conversion.offer_id == offer.id, Conversion.ip_hash == conversion.ip_hash,
            Conversion.id != conversion.id, Conversion.created_at > at - timedelta(hours=24),
            Conversion.created_at <= at)) or 0)
    trailing: list[int] = []
    if conversion.amount_minor is not None and on("amount_outlier"):
        trailing = [int(a) for a in db.session.scalars(
            select(Conversion.amount_minor).where(
                Conversion.offer_id == offer.id, Conversion.event == conversion.event,
                Conversion.id != conversion.id, Conversion.amount_minor.is_not(None),
                Conversion.created_at >= at - OUTLIER_LOOKBACK)
            .order_by(Conversion.id.desc()).limit(OUTLIER_SAMPLE))]
    today = 0
    if offer.daily_cap is not None and on("cap_exceeded"):
        day_start = datetime.combine(at.date(), time.min, tzinfo=at.tzinfo)
        today = int(db.session.scalar(select(func.count()).select_from(Conversion).where(
            Conversion.offer_id == offer.id, Conversion.partner_id == conversion.partner_id,
            Conversion.id != conversion.id, Conversion.created_at >= day_start,
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
        amount_minor=conversion.amount_minor, trailing_amounts=trailing,
        daily_cap=offer.daily_cap, partner_conversions_today=today)


def hold_days_for(offer: Offer, merchant: Merchant, partner_id: int) -> int:
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


def _recurring_flag(conversion: Conversion, offer: Offer) -> dict[str, Any] | None:
    """A reject flag when a recurring event falls outside the N months after the first sale."""
    if conversion.event in STANDARD_EVENTS or not offer.recurring_months:
        return None
    first = None
    if conversion.customer_id:
        first = db.session.scalar(select(func.min(Conversion.created_at)).where(
            Conversion.offer_id == offer.id, Conversion.event == "sale",
            Conversion.customer_id == conversion.customer_id, Conversion.id != conversion.id))
    if calc.within_recurring_window(first, conversion.created_at, offer.recurring_months):
        return None
    reason = ("no earlier sale to this customer" if first is None else
              f"more than {offer.recurring_months} months after the customer's first sale")
    return {"rule": "recurring_window", "reason": reason, "action": "reject"}


# -- the engine --------------------------------------------------------------------------

def commission_for_conversion(conversion: Conversion, click: Click | None = None, *,
                              postback_ip: str | None = None) -> Commission | None:
    """Compute the commission of a new conversion and add it (flush, no commit).

    Plan selection: override > tier > plan. Then the cap, every fraud rule and the
    hold. Returns None when the offer has no plan for the conversion's event.
    """
    offer = db.session.get(Offer, conversion.offer_id)
    assert offer is not None
    plan = next((p for p in offer.plans if p.event == conversion.event), None)
    if plan is None:
        return None
    merchant = db.session.get(Merchant, conversion.merchant_id)
    partner = db.session.get(Partner, conversion.partner_id)
    assert merchant is not None and partner is not None
    if click is None and conversion.click_id:
        click = db.session.scalar(select(Click).where(Click.id == conversion.click_id))
    if conversion.ip_hash is None and click is not None and click.ip_hash:
        # The shopper's address (the click's), not the store server's that sent the postback.
        conversion.ip_hash = click.ip_hash

    base, tiers = plan_rates(plan)
    override = override_rate(offer.id, partner.id, conversion.event)
    # The month's count only matters when a tier could apply.
    nth = _nth_this_month(conversion) if tiers and override is None else 1
    rate = calc.choose_rate(base, tiers, override, nth)
    amount = calc.commission_amount(plan.type, rate, conversion.amount_minor)

    settings = fraud.rule_settings(merchant.fraud_settings)
    flags = fraud.evaluate(_facts(conversion, click, offer, merchant, partner, postback_ip, settings),
                           settings)
    recurring = _recurring_flag(conversion, offer)
    if recurring is not None:
        flags.append(recurring)
    status = fraud.status_for(flags)
    hold_days = hold_days_for(offer, merchant, partner.id)
    commission = Commission(
        merchant_id=conversion.merchant_id, partner_id=conversion.partner_id,
        offer_id=conversion.offer_id, conversion_id=conversion.id, kind="conversion",
        amount_minor=amount, currency=offer.currency, reversed_minor=0, status=status,
        hold_until=conversion.created_at + timedelta(days=hold_days), flags=flags,
        reviewed_via="rules" if status == "rejected" else None)
    db.session.add(commission)
    db.session.flush()
    return commission


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
