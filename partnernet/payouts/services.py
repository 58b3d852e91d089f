"""Payout runs: claim balances into payouts, send each as one Stripe transfer, exactly once.

Lifecycle of a payout (ARCHITECTURE.md "State machines")::

    awaiting_approval ─(second approver)─► queued ─► processing ─► paid ─► returned
                                               └──────────┴──► failed (definite 4xx)

**When does a commission become ``paid``?** At the claim, in the same transaction that
creates the Payout and its PayoutItems and posts the −amount ``payout`` ledger entry.
From that moment the ledger says the money has left the balance, and the commissions
engine treats a refund of it as a clawback (a negative entry the next payout nets
off) — which is right whether the transfer is still in flight or done. Should Stripe
definitely refuse the transfer, the payout becomes ``failed``: a +amount
``payout_return`` entry puts the money back, its commissions go back to ``approved``,
and its PayoutItems are *deleted* (kept as a JSON snapshot on the payout) so that the
``UNIQUE(commission_id)`` lets a later run claim them in a new payout. Only a definite
refusal releases items; an unknown outcome never does, or a lost answer would pay twice.

**Exactly once.** The payout's amount, currency, destination, transfer_group,
metadata and idempotency key (``payout-<id>``) are frozen in its row when it is
created, so every retry sends byte-identical parameters with the same key. Stripe
keeps keys for 24 hours; a retry of an older payout first looks for the transfer by
``transfer_group`` and ``metadata.payout_id`` and adopts it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypedDict

from sqlalchemy import String, and_, cast, exists, func, insert, or_, select, text, update
from sqlalchemy.orm import aliased

from partnernet import clock
from partnernet.accounts.models import Merchant, Partner, User
from partnernet.audit import audit
from partnernet.commissions.ledger import post_entry
from partnernet.commissions.models import Commission, LedgerEntry
from partnernet.extensions import db
from partnernet.money import format_amount, parse_amount
from partnernet.payouts import exceptions as exc
from partnernet.payouts.gateway import (
    OutcomeUnknown,
    StripeGateway,
    TransferRefused,
    TransferSent,
    gateway,
    stripe_enabled,
)
from partnernet.payouts.models import Payout, PayoutItem, PayoutNotice, PayoutRun

log = logging.getLogger(__name__)

#: A freshly queued payout is left to its job this long before the sweeper re-enqueues it.
QUEUE_GRACE = timedelta(minutes=2)
#: Stripe forgets idempotency keys after 24 hours; look for the transfer well before.
#: https://docs.stripe.com/api/idempotent_requests
KEY_WINDOW = timedelta(hours=23)
SEND_JOB = "partnernet.payouts.tasks:send_payout"


def retry_backoff(attempts: int) -> timedelta:
    """Wait before retry number ``attempts`` + 1: 1, 2, 4 … minutes, at most 1 hour."""
    return timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), 3600))


def _queue_grace(position: int) -> timedelta:
    """How long the sweeper leaves the ``position``-th queued payout of a run to its job:
    the grace plus the time the paced sends before it need (a 10,000-payout run at
    20 requests/s takes over 8 minutes), so that it does not duplicate queued jobs."""
    from flask import current_app

    rate = float(current_app.config.get("STRIPE_MAX_REQUESTS_PER_SECOND", 20)) or 20.0
    return QUEUE_GRACE + timedelta(seconds=position / rate)


def _call_lease() -> timedelta:
    """How long one send may take (the library's tries × timeout, plus margin): the
    sweeper leaves an attempt alone this long, so it does not race a live call."""
    from flask import current_app

    cfg = current_app.config
    tries = int(cfg.get("STRIPE_MAX_NETWORK_RETRIES", 2)) + 1
    return timedelta(seconds=tries * float(cfg.get("STRIPE_TIMEOUT_SECONDS", 30)) + 30)


def min_payout_minor(merchant: Merchant, currency: str) -> int:
    """The merchant's minimum payout in ``currency`` (default 50.00 of that currency)."""
    per_currency = (merchant.payout_settings or {}).get("min_payout_minor") or {}
    if currency in per_currency:
        return int(per_currency[currency])
    if currency == merchant.currency and merchant.min_payout_minor is not None:
        return int(merchant.min_payout_minor)
    return parse_amount("50", currency)


def _rail_for(merchant: Merchant, partner: Partner) -> tuple[str | None, str | None]:
    """(rail, None) when the partner can be paid, else (None, reason)."""
    mode = (merchant.payout_settings or {}).get("rail", "auto")
    if mode == "manual" or not stripe_enabled():
        return "manual", None
    if mode == "auto" and partner.payout_rail != "stripe" and not partner.stripe_account_id:
        return "manual", None
    if not partner.stripe_account_id:
        return None, "stripe_not_onboarded"
    if not partner.payouts_enabled:
        return None, "payouts_disabled"
    return "stripe", None


SKIP_MESSAGES = {
    "below_minimum": "The available balance is below the program's minimum payout.",
    "stripe_not_onboarded": "Connect a Stripe account to receive payouts.",
    "payouts_disabled": "Stripe has not enabled payouts on the connected account yet; "
                        "finish the Stripe onboarding.",
    "payout_in_flight": "A refund waits for your payout in progress to finish; "
                        "the rest is paid in the next run.",
    "balance_mismatch": "The claimable amount exceeds the ledger balance; support is looking into it.",
}


# -- claiming ----------------------------------------------------------------------------

@dataclass
class Claim:
    """What one partner in one currency can be paid now."""

    partner_id: int
    currency: str
    commissions: list[tuple[int, int]] = field(default_factory=list)  # (commission id, net)
    entries: list[tuple[int, int]] = field(default_factory=list)  # (ledger entry id, amount)

    @property
    def amount_minor(self) -> int:
        return sum(a for _, a in self.commissions) + sum(a for _, a in self.entries)


def _lock_merchant(merchant_id: int) -> None:
    """Serialise payout runs of one merchant (PostgreSQL advisory lock, released at commit).

    SQLite has one writer at a time; there the UNIQUE(commission_id) of payout items
    turns a concurrent double claim into an error rather than a double payment.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(7316, :m)"), {"m": int(merchant_id)})


def _claims(merchant_id: int, partner_ids: list[int] | None,
            currency: str | None) -> dict[tuple[int, str], Claim]:
    """Every unclaimed approved commission and loose entry (clawback, adjustment, return)."""
    claims: dict[tuple[int, str], Claim] = {}

    def claim(pid: int, cur: str) -> Claim:
        return claims.setdefault((pid, cur), Claim(pid, cur))

    item_c = aliased(PayoutItem)
    item_e = aliased(PayoutItem)
    # 1. Approved, unclaimed commissions; each item worth its +commission entries. Its
    #    reversals (partial refunds before payment) are claimed as entry items below, so
    #    that every ledger entry is claimed exactly once, by one item.
    stmt = (
        select(Commission.id, Commission.partner_id, Commission.currency,
               func.sum(LedgerEntry.amount_minor))
        .join(LedgerEntry, and_(LedgerEntry.commission_id == Commission.id,
                                LedgerEntry.kind == "commission"))
        .outerjoin(item_c, item_c.commission_id == Commission.id)
        .where(Commission.merchant_id == merchant_id, Commission.status == "approved",
               item_c.id.is_(None))
        .group_by(Commission.id, Commission.partner_id, Commission.currency)
    )
    if partner_ids:
        stmt = stmt.where(Commission.partner_id.in_(partner_ids))
    if currency:
        stmt = stmt.where(Commission.currency == currency)
    for cid, pid, cur, net in db.session.execute(stmt):
        claim(pid, cur).commissions.append((cid, int(net)))

    # 2. Entry items: reversals of the commissions claimed above, clawbacks of
    #    commissions some payout has paid, adjustments, and the returns of reversed
    #    (returned) payouts. A failed payout's return is not among them: its commissions
    #    were released and are claimed again above.
    # A clawback waits until the payout that claimed its commission has paid: were that
    # payout to fail, netting the clawback elsewhere would underpay the partner.
    claimed_commission = exists().where(
        PayoutItem.commission_id == LedgerEntry.commission_id, Payout.id == PayoutItem.payout_id,
        Payout.status.in_(("paid", "returned")))
    claimable_commission = and_(
        exists().where(Commission.id == LedgerEntry.commission_id, Commission.status == "approved"),
        ~exists().where(PayoutItem.commission_id == LedgerEntry.commission_id))
    returned_payout = exists().where(Payout.id == LedgerEntry.payout_id, Payout.status == "returned")
    loose = (
        select(LedgerEntry.id, LedgerEntry.partner_id, LedgerEntry.currency, LedgerEntry.amount_minor)
        .outerjoin(item_e, item_e.ledger_entry_id == LedgerEntry.id)
        .where(LedgerEntry.merchant_id == merchant_id, item_e.id.is_(None),
               LedgerEntry.kind.in_(("adjustment", "reversal", "payout_return")),
               or_(LedgerEntry.kind == "adjustment",
                   and_(LedgerEntry.kind == "reversal",
                        or_(LedgerEntry.commission_id.is_(None), claimed_commission,
                            claimable_commission)),
                   and_(LedgerEntry.kind == "payout_return", returned_payout)))
    )
    if partner_ids:
        loose = loose.where(LedgerEntry.partner_id.in_(partner_ids))
    if currency:
        loose = loose.where(LedgerEntry.currency == currency)
    for eid, pid, cur, amount in db.session.execute(loose):
        claim(pid, cur).entries.append((eid, int(amount)))
    return claims


def _in_flight(merchant_id: int, partner_id: int, currency: str) -> bool:
    return db.session.scalar(select(Payout.id).where(
        Payout.merchant_id == merchant_id, Payout.partner_id == partner_id, Payout.currency == currency,
        Payout.status.in_(("awaiting_approval", "queued", "processing"))).limit(1)) is not None


def _balances(merchant_id: int) -> dict[tuple[int, str], int]:
    rows = db.session.execute(
        select(LedgerEntry.partner_id, LedgerEntry.currency, func.sum(LedgerEntry.amount_minor))
        .where(LedgerEntry.merchant_id == merchant_id)
        .group_by(LedgerEntry.partner_id, LedgerEntry.currency))
    return {(pid, cur): int(total) for pid, cur, total in rows}


def _needs_second_approver(merchant: Merchant, totals: dict[str, int]) -> bool:
    thresholds = (merchant.payout_settings or {}).get("approval_threshold_minor") or {}
    if isinstance(thresholds, int):
        thresholds = {merchant.currency: thresholds}
    return any(cur in thresholds and total > int(thresholds[cur]) for cur, total in totals.items())


def create_run(merchant_id: int, *, partner_ids: list[int] | None = None,
               currency: str | None = None, created_by_id: int | None = None,
               trigger: str = "api") -> PayoutRun:
    """Claim every payable balance of the merchant into payouts, in one transaction. Commits.

    One payout per partner and currency whose claimable amount is at least the
    minimum and whose rail is ready; the others are listed in ``run.skipped`` with a
    reason. Stripe payouts are then sent by one job each (after the commit).
    """
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise exc.RunNotFound()
    _lock_merchant(merchant_id)
    now = clock.now()
    claims = _claims(merchant_id, partner_ids, currency)
    balances = _balances(merchant_id)
    partners = {p.id: p for p in db.session.scalars(
        select(Partner).where(Partner.id.in_({pid for pid, _ in claims})))} if claims else {}

    skipped: list[dict[str, Any]] = []
    payable: list[tuple[Claim, str, Partner]] = []
    for key in sorted(claims):
        c = claims[key]
        amount = c.amount_minor
        reason = None
        rail: str | None = None
        if amount < min_payout_minor(merchant, c.currency):
            reason = "below_minimum"
        elif amount > balances.get(key, 0):
            # Invariant 4: no payout exceeds the balance. The usual cause: a refund of a
            # commission whose payout is still in flight (its clawback waits for it).
            reason = "payout_in_flight" if _in_flight(merchant_id, *key) else "balance_mismatch"
        else:
            rail, reason = _rail_for(merchant, partners[c.partner_id])
        if reason:
            skipped.append({"partner_id": c.partner_id, "currency": c.currency, "reason": reason,
                            "amount": format_amount(amount, c.currency),
                            "message": SKIP_MESSAGES[reason]})
        else:
            assert rail is not None
            payable.append((c, rail, partners[c.partner_id]))

    totals: dict[str, int] = defaultdict(int)
    for c, _, _ in payable:
        totals[c.currency] += c.amount_minor
    needs_approval = _needs_second_approver(merchant, totals)
    run = PayoutRun(merchant_id=merchant_id, status="awaiting_approval" if needs_approval else "approved",
                    trigger=trigger, created_by_id=created_by_id, skipped=skipped,
                    totals=dict(totals), created_at=now,
                    approved_at=None if needs_approval else now)
    db.session.add(run)
    db.session.flush()
    group = f"run-{run.id}"
    payouts = [Payout(run_id=run.id, merchant_id=merchant_id, partner_id=c.partner_id,
                      amount_minor=c.amount_minor, currency=c.currency, rail=rail,
                      status="awaiting_approval" if needs_approval else "queued",
                      destination=partner.stripe_account_id if rail == "stripe" else None,
                      transfer_group=group if rail == "stripe" else None,
                      next_attempt_at=now + _queue_grace(i), created_at=now)
               for i, (c, rail, partner) in enumerate(payable)]
    db.session.add_all(payouts)
    db.session.flush()
    if payouts:
        # The idempotency key is fixed now, before any call: "payout-<payout id>".
        db.session.execute(
            update(Payout).where(Payout.run_id == run.id, Payout.rail == "stripe")
            .values(idempotency_key="payout-" + cast(Payout.id, String)),
            execution_options={"synchronize_session": False})
    items: list[dict[str, Any]] = []
    commission_ids: list[int] = []
    for payout, (c, _, _) in zip(payouts, payable, strict=True):
        items.extend({"payout_id": payout.id, "commission_id": cid, "amount_minor": amt}
                     for cid, amt in c.commissions)
        items.extend({"payout_id": payout.id, "ledger_entry_id": eid, "amount_minor": amt}
                     for eid, amt in c.entries)
        commission_ids.extend(cid for cid, _ in c.commissions)
        post_entry(merchant_id=merchant_id, partner_id=c.partner_id, currency=c.currency,
                   amount_minor=-c.amount_minor, kind="payout", payout_id=payout.id,
                   memo=f"payout {payout.id}")
    for chunk in _chunks(items, 5000):
        db.session.execute(insert(PayoutItem), chunk)
    for ids in _chunks(commission_ids, 5000):
        # Guarded: a commission reversed meanwhile keeps its status; its reversal entry
        # is then a clawback the next payout nets off.
        db.session.execute(update(Commission).where(Commission.id.in_(ids), Commission.status == "approved")
                           .values(status="paid", updated_at=now),
                           execution_options={"synchronize_session": False})
    db.session.commit()
    if not needs_approval:
        enqueue_sends(run.id)
    return run


def _chunks(seq: list[Any], size: int) -> list[list[Any]]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def enqueue_sends(run_id: int) -> int:
    """Enqueue one send job per queued Stripe payout of the run (after its commit)."""
    from partnernet import jobs

    ids = list(db.session.scalars(select(Payout.id).where(
        Payout.run_id == run_id, Payout.rail == "stripe", Payout.status == "queued").order_by(Payout.id)))
    for pid in ids:
        jobs.enqueue(SEND_JOB, pid, queue_name="payouts")
    return len(ids)


# -- four eyes ---------------------------------------------------------------------------

def approve_run(merchant_id: int, run_id: int, approver_id: int) -> PayoutRun:
    """Second approval of a run above the merchant's threshold; releases its payouts. Commits."""
    run = db.session.scalar(select(PayoutRun).where(
        PayoutRun.id == run_id, PayoutRun.merchant_id == merchant_id).with_for_update())
    if run is None:
        raise exc.RunNotFound()
    if run.status != "awaiting_approval":
        raise exc.RunNotAwaitingApproval()
    approver = db.session.get(User, approver_id)
    if approver is None or approver.merchant_id != merchant_id or approver.role != "merchant" \
            or approver_id == run.created_by_id:
        raise exc.SecondApproverRequired()
    now = clock.now()
    run.status, run.approved_by_id, run.approved_at = "approved", approver_id, now
    waiting = int(db.session.scalar(select(func.count()).select_from(Payout).where(
        Payout.run_id == run.id, Payout.status == "awaiting_approval")) or 0)
    db.session.execute(update(Payout).where(Payout.run_id == run.id, Payout.status == "awaiting_approval")
                       .values(status="queued", next_attempt_at=now + _queue_grace(waiting)),
                       execution_options={"synchronize_session": False})
    audit("payout_run_approved", user_id=approver_id, merchant_id=merchant_id, run_id=run.id,
          payouts=waiting)
    db.session.commit()
    enqueue_sends(run.id)
    return run


def reject_run(merchant_id: int, run_id: int, user_id: int | None = None) -> PayoutRun:
    """Refuse a run awaiting approval: its payouts fail and their balances return. Commits."""
    run = db.session.scalar(select(PayoutRun).where(
        PayoutRun.id == run_id, PayoutRun.merchant_id == merchant_id).with_for_update())
    if run is None:
        raise exc.RunNotFound()
    if run.status != "awaiting_approval":
        raise exc.RunNotAwaitingApproval()
    run.status, run.approved_by_id = "rejected", user_id
    for payout in db.session.scalars(select(Payout).where(
            Payout.run_id == run.id, Payout.status == "awaiting_approval")):
        _fail(payout, "run_rejected", "The payout run was rejected by the second approver.")
    audit("payout_run_rejected", user_id=user_id, merchant_id=merchant_id, run_id=run.id)
    db.session.commit()
    return run


# -- sending -----------------------------------------------------------------------------

def transfer_metadata(payout: Payout) -> dict[str, str]:
    """The frozen metadata of the payout's transfer (derived only from immutable columns)."""
    return {"payout_id": str(payout.id), "partner_id": str(payout.partner_id),
            "merchant_id": str(payout.merchant_id), "run_id": str(payout.run_id or "")}


class _TransferParams(TypedDict):
    """A payout's transfer as frozen before the call: ``StripeGateway.create_transfer``'s arguments."""

    amount_minor: int
    currency: str
    destination: str
    transfer_group: str
    metadata: dict[str, str]
    idempotency_key: str


def send_payout(payout_id: int) -> str:
    """Make (or find) the payout's one transfer and record the outcome; safe to run twice.

    Three short transactions: claim the attempt (status ``processing``, a lease in
    ``next_attempt_at``), call Stripe outside any transaction, record the result.
    """
    payout = db.session.scalar(select(Payout).where(Payout.id == payout_id).with_for_update())
    if payout is None or payout.rail != "stripe" or payout.status not in ("queued", "processing"):
        status = payout.status if payout else "missing"
        db.session.commit()
        return status
    now = clock.now()
    gw = gateway()
    if not isinstance(gw, StripeGateway):
        # Stripe's key was removed while this payout was in flight. Only Stripe can say
        # whether an earlier attempt made the transfer, so the payout is neither sent nor
        # failed (failing it would return the money to the balance: paid twice if the
        # transfer exists). It waits, as it is, until the key is back.
        payout.last_error = ("Stripe is not configured (STRIPE_SECRET_KEY): this Stripe payout "
                             "waits, untouched, until it is")
        payout.next_attempt_at = now + timedelta(hours=1)
        status = payout.status
        db.session.commit()
        log.error("payout %s is on the Stripe rail but Stripe is not configured: left %s",
                  payout_id, status)
        return status
    look_first = payout.first_attempt_at is not None and now - payout.first_attempt_at > KEY_WINDOW
    payout.status = "processing"
    payout.attempts += 1
    payout.first_attempt_at = payout.first_attempt_at or now
    payout.next_attempt_at = now + max(retry_backoff(payout.attempts), _call_lease())
    frozen: _TransferParams = {
        "amount_minor": payout.amount_minor, "currency": payout.currency,
        "destination": payout.destination or "", "transfer_group": payout.transfer_group or "",
        "metadata": transfer_metadata(payout), "idempotency_key": payout.idempotency_key or ""}
    db.session.commit()

    try:
        found: TransferSent | None = None
        if look_first:
            # The key may be forgotten by Stripe: adopt the transfer if it exists.
            found = gw.find_transfer(frozen["transfer_group"], payout_id)
        result = found or gw.create_transfer(**frozen)
    except OutcomeUnknown as err:
        return _record_unknown(payout_id, str(err), err.retry_after)
    except TransferRefused as err:
        return _record_refusal(payout_id, str(err), err.code)
    return _record_sent(payout_id, result, adopted=found is not None)


def _locked(payout_id: int) -> Payout:
    payout = db.session.scalar(select(Payout).where(Payout.id == payout_id).with_for_update())
    assert payout is not None
    return payout


def _record_sent(payout_id: int, result: TransferSent, adopted: bool = False) -> str:
    payout = _locked(payout_id)
    if payout.status in ("queued", "processing", "failed"):
        if payout.status == "failed":
            # A transfer exists after all: the truth is Stripe's. Logged loudly.
            log.error("payout %s marked failed but transfer %s exists", payout_id, result.transfer_id)
        payout.status = "paid"
        payout.transfer_id = result.transfer_id
        payout.paid_at = clock.now()
        payout.next_attempt_at = None
        payout.last_error = "adopted existing transfer" if adopted else None
        if result.amount_minor != payout.amount_minor or result.currency != payout.currency:
            payout.last_error = (f"transfer {result.transfer_id} is {result.amount_minor} "
                                 f"{result.currency}, payout says {payout.amount_minor} {payout.currency}")
            log.error("payout %s: %s", payout_id, payout.last_error)
    status = payout.status
    db.session.commit()
    return status


def _record_unknown(payout_id: int, message: str, retry_after: float | None) -> str:
    payout = _locked(payout_id)
    if payout.status == "processing":
        payout.last_error = f"outcome unknown, will retry with the same key: {message}"[:1000]
        wait = retry_backoff(payout.attempts)
        if retry_after:
            wait = max(wait, timedelta(seconds=retry_after))
        payout.next_attempt_at = clock.now() + wait
    status = payout.status
    db.session.commit()
    return status


def _record_refusal(payout_id: int, message: str, code: str | None) -> str:
    payout = _locked(payout_id)
    if payout.status == "processing":
        _fail(payout, code or "refused", f"Stripe refused the transfer: {message}")
    status = payout.status
    db.session.commit()
    return status


def _fail(payout: Payout, code: str, message: str) -> None:
    """Fail a payout that made no transfer: return its amount, release its items (flush only)."""
    now = clock.now()
    payout.status = "failed"
    payout.failed_at = now
    payout.next_attempt_at = None
    payout.last_error = f"{code}: {message}"[:1000]
    post_entry(merchant_id=payout.merchant_id, partner_id=payout.partner_id, currency=payout.currency,
               amount_minor=payout.amount_minor, kind="payout_return", payout_id=payout.id,
               memo=f"payout {payout.id} failed: {code}"[:500])
    items = list(db.session.scalars(select(PayoutItem).where(PayoutItem.payout_id == payout.id)))
    payout.released_items = [{"commission_id": i.commission_id, "ledger_entry_id": i.ledger_entry_id,
                              "amount_minor": i.amount_minor} for i in items]
    commission_ids = [i.commission_id for i in items if i.commission_id is not None]
    if commission_ids:
        db.session.execute(update(Commission).where(Commission.id.in_(commission_ids),
                                                    Commission.status == "paid")
                           .values(status="approved", updated_at=now),
                           execution_options={"synchronize_session": False})
    for item in items:
        db.session.delete(item)
    db.session.add(PayoutNotice(partner_id=payout.partner_id, merchant_id=payout.merchant_id,
                                payout_id=payout.id, kind="transfer_failed",
                                message=f"Payout of {format_amount(payout.amount_minor, payout.currency)} "
                                        f"{payout.currency} failed ({code}); the amount is back in "
                                        "your balance and will be paid in a later run."))
    db.session.flush()


def retry_payouts(limit: int = 1000) -> dict[str, int]:
    """The sweeper: re-send Stripe payouts left ``queued`` or ``processing`` and now due.

    Covers lost answers (retried with the same key, after backoff), workers killed
    mid-call, and jobs that Redis lost (a queued payout past its grace period).
    """
    from partnernet import jobs

    now = clock.now()
    ids = list(db.session.scalars(
        select(Payout.id).where(Payout.rail == "stripe", Payout.status.in_(("queued", "processing")),
                                or_(Payout.next_attempt_at.is_(None), Payout.next_attempt_at <= now))
        .order_by(Payout.id).limit(limit)))
    db.session.commit()
    for pid in ids:
        jobs.enqueue(SEND_JOB, pid, queue_name="payouts")
    return {"enqueued": len(ids)}


# -- reading -----------------------------------------------------------------------------

def payouts_query(merchant_id: int, status: str | None = None, partner_id: int | None = None,
                  run_id: int | None = None) -> Any:
    """The merchant's payouts, newest first."""
    stmt = select(Payout).where(Payout.merchant_id == merchant_id)
    if status:
        stmt = stmt.where(Payout.status == status)
    if partner_id:
        stmt = stmt.where(Payout.partner_id == partner_id)
    if run_id:
        stmt = stmt.where(Payout.run_id == run_id)
    return stmt.order_by(Payout.id.desc())


def get_payout(merchant_id: int, payout_id: int) -> Payout:
    """One of the merchant's payouts, or 404 (another merchant's payout does not exist here)."""
    payout = db.session.scalar(select(Payout).where(Payout.id == payout_id,
                                                    Payout.merchant_id == merchant_id))
    if payout is None:
        raise exc.PayoutNotFound()
    return payout


def payout_items(payout_id: int) -> list[PayoutItem]:
    """The commissions and loose entries a payout claimed."""
    return list(db.session.scalars(select(PayoutItem).where(PayoutItem.payout_id == payout_id)
                                   .order_by(PayoutItem.id)))


def run_payouts(run_id: int) -> list[Payout]:
    """The payouts a run created."""
    return list(db.session.scalars(select(Payout).where(Payout.run_id == run_id).order_by(Payout.id)))


def partner_notices(partner_id: int, limit: int = 20) -> list[PayoutNotice]:
    """What the partner must be told about its payouts (portal), newest first."""
    return list(db.session.scalars(select(PayoutNotice).where(PayoutNotice.partner_id == partner_id)
                                   .order_by(PayoutNotice.id.desc()).limit(limit)))


def partner_payout_readiness(merchant_id: int, partner_id: int) -> dict[str, Any]:
    """Whether the partner can be paid by the merchant now, and if not why (portal)."""
    merchant = db.session.get(Merchant, merchant_id)
    partner = db.session.get(Partner, partner_id)
    if merchant is None or partner is None:
        raise exc.PayoutNotFound()
    rail, reason = _rail_for(merchant, partner)
    return {"rail": rail, "ready": reason is None, "reason": reason,
            "message": SKIP_MESSAGES.get(reason or "", None)}
