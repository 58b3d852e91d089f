"""``POST /webhooks/stripe``: Stripe's events, signature-checked, applied once each."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from partnernet.extensions import csrf
from partnernet.payouts import connect

bp = Blueprint("stripe_webhooks", __name__)
csrf.exempt(bp)


@bp.post("/webhooks/stripe")
def stripe_webhook() -> Any:
    """Verify ``Stripe-Signature`` and apply the event; a redelivery answers 200 and does nothing."""
    event = connect.verify_event(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    return connect.handle_event(event)
