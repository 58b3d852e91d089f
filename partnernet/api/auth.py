"""Bearer-key authentication for ``/api/v1``: every handler runs as one merchant (or partner)."""

from __future__ import annotations

from flask import g, request

from partnernet import clock
from partnernet.accounts.exceptions import InvalidApiKey
from partnernet.accounts.services import authenticate_api_key
from partnernet.audit import audit
from partnernet.errors import Forbidden
from partnernet.extensions import db


def authenticate_request() -> None:
    """``before_request`` of the API blueprints: resolve the bearer key or answer 401."""
    if request.method == "OPTIONS":
        return
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    try:
        key_row = authenticate_api_key(key.strip() if scheme.lower() == "bearer" else None)
    except InvalidApiKey:
        audit("api_auth_denied", persist=False, path=request.path,
              key_prefix=key.strip()[:10] if key else None)
        raise
    g.api_key = key_row
    g.merchant_id = key_row.merchant_id
    g.partner_id = key_row.partner_id
    now = clock.now()
    # Record use at most once a minute so a busy key does not write on every call.
    if key_row.last_used_at is None or (now - key_row.last_used_at).total_seconds() > 60:
        key_row.last_used_at = now
        db.session.commit()


def merchant_id() -> int:
    """The calling merchant's id; partner keys may not use merchant endpoints."""
    mid = getattr(g, "merchant_id", None)
    if mid is None:
        raise Forbidden("This endpoint needs a merchant API key.")
    return int(mid)
