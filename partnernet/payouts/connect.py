"""Stripe Connect: onboarding of partners' connected accounts, and Stripe's webhooks."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from partnernet import clock
from partnernet.accounts.models import Partner
from partnernet.accounts.services import get_program_partner
from partnernet.commissions.ledger import post_entry
from partnernet.commissions.models import LedgerEntry
from partnernet.extensions import db
from partnernet.money import format_amount
from partnernet.payouts import exceptions as exc
from partnernet.payouts.gateway import OutcomeUnknown, StripeGateway, TransferRefused, gateway
from partnernet.payouts.models import Payout, PayoutNotice, StripeEvent

log = logging.getLogger(__name__)

#: Stripe's own default: refuse signatures older than five minutes (replays).
WEBHOOK_TOLERANCE_SECONDS = 300


def _stripe() -> StripeGateway:
    gw = gateway()
    if not isinstance(gw, StripeGateway):
        raise exc.StripeNotConfigured()
    return gw


def start_onboarding(merchant_id: int, partner_id: int) -> dict[str, Any]:
    """Create the partner's connected account once, and return a fresh Account Link. Commits.

    The link's URL is a bearer token for the partner's Stripe onboarding: it is
    returned to the caller and neither logged nor stored.
    """
    partner, _ = get_program_partner(merchant_id, partner_id)
    return _onboard(partner)


def start_partner_onboarding(partner_id: int) -> dict[str, Any]:
    """The portal's "Connect payouts" button: the same, for the signed-in partner. Commits."""
    partner = db.session.get(Partner, partner_id)
    if partner is None:
        raise exc.PayoutNotFound("No such partner.")
    return _onboard(partner)


def _onboard(partner: Partner) -> dict[str, Any]:
    gw = _stripe()
    base = current_app.config["BASE_URL"]
    try:
        if not partner.stripe_account_id:
            account = gw.create_account(email=partner.email, country=None, partner_id=partner.id,
                                        idempotency_key=f"partner-account-{partner.id}")
            # Re-read under a lock: two clicks at once keep one account (same key → same id).
            locked = db.session.scalar(select(Partner).where(Partner.id == partner.id).with_for_update())
            assert locked is not None
            if not locked.stripe_account_id:
                locked.stripe_account_id = account.id
                locked.payouts_enabled = bool(getattr(account, "payouts_enabled", False))
            locked.payout_rail = "stripe"
            db.session.commit()
            partner = locked
        link = gw.create_account_link(
            account_id=partner.stripe_account_id or "",
            refresh_url=f"{base}/portal/payouts/connect?refresh=1",
            return_url=f"{base}/portal/payouts?connected=1")
    except OutcomeUnknown as err:
        raise exc.StripeUnavailable() from err
    except TransferRefused as err:
        raise exc.StripeUnavailable(f"Stripe refused: {err}", status_code=422,
                                    code="stripe_refused") from err
    return {"partner_id": partner.id, "account_id": partner.stripe_account_id, "url": link.url,
            "expires_at": int(link.expires_at), "payouts_enabled": partner.payouts_enabled}


# -- webhooks -----------------------------------------------------------------------------

def verify_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    """Parse a webhook after checking its signature and that it is not older or newer
    than five minutes (the library only refuses old ones)."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret or not signature:
        raise exc.InvalidWebhook()
    try:
        text = payload.decode("utf-8")
        stripe.Webhook.construct_event(text, signature, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
        event = json.loads(text)
        timestamp = int(next(p.split("=", 1)[1] for p in signature.split(",") if p.startswith("t=")))
    except (ValueError, UnicodeDecodeError, StopIteration, stripe.SignatureVerificationError) as err:
        raise exc.InvalidWebhook() from err
    if timestamp > time.time() + WEBHOOK_TOLERANCE_SECONDS:
        raise exc.InvalidWebhook("The Stripe-Signature timestamp is in the future.")
    if not isinstance(event, dict) or not event.get("id"):
        raise exc.InvalidWebhook("Not a Stripe event.")
    return event


def handle_event(raw: dict[str, Any]) -> dict[str, Any]:
    """Apply one verified event exactly once (the event id is stored with its effects). Commits."""
    data = (raw.get("data") or {}).get("object") or {}
    event_id, event_type = str(raw["id"]), str(raw.get("type", ""))
    if db.session.get(StripeEvent, event_id) is not None:
        db.session.commit()
        return {"received": True, "duplicate": True}
    row = StripeEvent(id=event_id, type=event_type, object_id=data.get("id"),
                      created=int(raw.get("created") or 0))
    db.session.add(row)
    try:
        # The id goes in first: a concurrent delivery of the same event waits here on the
        # primary key and then fails, rolling its whole transaction back.
        db.session.flush()
        handler = HANDLERS.get(event_type)
        outcome = handler(raw, data) if handler else "ignored"
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return {"received": True, "duplicate": True}
    return {"received": True, "duplicate": False, "outcome": outcome}


def _newer_event_seen(event: dict[str, Any], object_id: str) -> bool:
    """Whether an event of the same type about the same object, created later, was applied."""
    return db.session.scalar(select(StripeEvent.id).where(
        StripeEvent.object_id == object_id, StripeEvent.type == event["type"],
        StripeEvent.id != event["id"], StripeEvent.created > int(event.get("created") or 0))
        .limit(1)) is not None


def _account_updated(event: dict[str, Any], account: dict[str, Any]) -> str:
    partner = db.session.scalar(select(Partner).where(Partner.stripe_account_id == account.get("id"))
                                .with_for_update())
    if partner is None:
        return "unknown_account"
    if _newer_event_seen(event, str(account.get("id"))):
        return "stale"  # delivered out of order: a newer state is already applied
    enabled = bool(account.get("payouts_enabled"))
    if partner.payouts_enabled and not enabled:
        db.session.add(PayoutNotice(partner_id=partner.id, kind="payouts_disabled",
                                    stripe_object_id=account.get("id"),
                                    message="Stripe has paused payouts to your account; "
                                            "open the Stripe dashboard to provide what it asks for."))
    partner.payouts_enabled = enabled
    return "payouts_enabled" if enabled else "payouts_disabled"


def _payout_for_transfer(transfer: dict[str, Any]) -> Payout | None:
    payout = db.session.scalar(select(Payout).where(Payout.transfer_id == transfer.get("id"))
                               .with_for_update())
    if payout is None:
        pid = (transfer.get("metadata") or {}).get("payout_id")
        if pid and str(pid).isdigit():
            payout = db.session.scalar(select(Payout).where(Payout.id == int(pid)).with_for_update())
    return payout


def _transfer_reversed(event: dict[str, Any], transfer: dict[str, Any]) -> str:
    payout = _payout_for_transfer(transfer)
    if payout is None or payout.rail != "stripe":
        return "unknown_transfer"
    if payout.status in ("queued", "processing"):
        # The reversal came before we learnt the transfer succeeded (a lost answer).
        payout.status, payout.transfer_id, payout.paid_at = "paid", transfer.get("id"), clock.now()
    if payout.status not in ("paid", "returned"):
        return "ignored"
    reversed_total = min(int(transfer.get("amount_reversed") or 0), payout.amount_minor)
    already = sum(e.amount_minor for e in db.session.scalars(select(LedgerEntry).where(
        LedgerEntry.payout_id == payout.id, LedgerEntry.kind == "payout_return")))
    delta = reversed_total - already
    if delta <= 0:
        return "already_returned"
    post_entry(merchant_id=payout.merchant_id, partner_id=payout.partner_id, currency=payout.currency,
               amount_minor=delta, kind="payout_return", payout_id=payout.id,
               memo=f"transfer {transfer.get('id')} reversed")
    payout.status = "returned"
    payout.returned_at = clock.now()
    payout.next_attempt_at = None
    db.session.add(PayoutNotice(partner_id=payout.partner_id, merchant_id=payout.merchant_id,
                                payout_id=payout.id, kind="transfer_reversed",
                                stripe_object_id=transfer.get("id"),
                                message=f"{format_amount(delta, payout.currency)} {payout.currency} of "
                                        f"payout {payout.id} was reversed and is back in your balance."))
    return "returned"


def _payout_failed(event: dict[str, Any], stripe_payout: dict[str, Any]) -> str:
    """``payout.failed`` on a connected account: its bank refused Stripe's payout."""
    account = event.get("account")
    partner = db.session.scalar(select(Partner).where(Partner.stripe_account_id == account))
    if partner is None:
        return "unknown_account"
    amount = int(stripe_payout.get("amount") or 0)
    currency = str(stripe_payout.get("currency") or "usd").upper()
    reason = stripe_payout.get("failure_message") or stripe_payout.get("failure_code") or "unknown reason"
    db.session.add(PayoutNotice(
        partner_id=partner.id, kind="payout_failed", stripe_object_id=stripe_payout.get("id"),
        message=f"Stripe could not pay {format_amount(amount, currency)} {currency} out to your bank: "
                f"{reason}. Update your bank details in the Stripe dashboard."[:1000]))
    return "recorded"


HANDLERS = {
    "account.updated": _account_updated,
    "transfer.reversed": _transfer_reversed,
    "payout.failed": _payout_failed,
}
