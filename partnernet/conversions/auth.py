"""Who sent a postback: token or HMAC signature (with ``merchant_id``), replay window,
source allowlist. Credentials are cached per app for a few seconds."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from partnernet import tokens
from partnernet.accounts.models import Merchant
from partnernet.conversions.exceptions import InvalidSignature, InvalidToken
from partnernet.extensions import db

#: A signed ``ts`` older (or newer) than this is refused as a replay.
REPLAY_WINDOW_SECONDS = 300
_DUMMY_SECRET = tokens.new_secret("pbs_", 32)


@dataclass
class PostbackRequest:
    """A postback as the view received it (no Flask objects past this point)."""

    method: str
    query: dict[str, str]
    body: dict[str, str]
    raw_body: bytes = b""
    raw_query: str = ""
    signature: str | None = None
    source_ip: str | None = None
    #: The raw log row the fast path already wrote for this request (it handed it over).
    postback_id: int | None = None


def _query_without_signature(raw_query: str) -> bytes:
    """The raw query string minus any ``signature`` parameter: what a GET signs."""
    parts = [p for p in raw_query.split("&") if p and p.split("=", 1)[0] != "signature"]
    return "&".join(parts).encode("latin-1")  # the view decoded the raw bytes as latin-1


def sign(secret: str, message: bytes) -> str:
    """``sha256=<hex>`` HMAC of a message: the X-Partnernet-Signature value."""
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Credentials:
    """What authenticating a merchant's postback needs, cached briefly per process."""

    merchant_id: int
    secret: str
    allowlist: tuple[str, ...]


def _credentials(key: str, load: Callable[[], Merchant | None]) -> Credentials | None:
    """The merchant's postback credentials, from a per-app cache of a few seconds.

    A busy store sends thousands of postbacks a minute with the same token; looking the
    merchant up once per ``POSTBACK_AUTH_CACHE_SECONDS`` (default 30) instead of once per
    request is the price of a rotated token or allowlist taking that long to apply.
    """
    cache: dict[str, tuple[float, Credentials]] = current_app.extensions.setdefault(
        "partnernet.postback_credentials", {})
    ttl = float(current_app.config.get("POSTBACK_AUTH_CACHE_SECONDS", 30))
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    merchant = load()
    if merchant is None:
        return None
    found = Credentials(merchant.id, merchant.postback_secret, tuple(merchant.postback_allowlist or ()))
    if ttl > 0:
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = (now + ttl, found)
    return found


def authenticate(req: PostbackRequest, now: datetime) -> tuple[Credentials, str, dict[str, str]]:
    """The merchant of a postback, how it authenticated, and the parameters to trust.

    A token authenticates every parameter (query, then body). A signature covers the
    raw body (POST) or the query string (GET), so only those parameters count; it
    does not name the merchant, hence ``merchant_id`` beside it.
    """
    signature = req.signature or (req.query.get("signature") if req.method == "GET" else None)
    if signature:
        params = dict(req.query) if req.method == "GET" else dict(req.body)
        raw_id = params.get("merchant_id") or req.query.get("merchant_id") or ""
        creds = _credentials(f"m:{raw_id}", lambda: db.session.get(Merchant, int(raw_id))) \
            if raw_id.isdigit() and len(raw_id) < 19 else None
        message = _query_without_signature(req.raw_query) if req.method == "GET" else req.raw_body
        expected = sign(creds.secret if creds else _DUMMY_SECRET, message)
        if not tokens.constant_time_equal(expected, signature.strip()) or creds is None:
            details = {} if raw_id else {"merchant_id": "A signed postback needs merchant_id."}
            raise InvalidSignature(details=details)
        if "ts" in params:
            try:
                age = now.timestamp() - int(params["ts"])
            except ValueError:
                raise InvalidSignature("ts must be a Unix time in seconds.") from None
            if abs(age) > REPLAY_WINDOW_SECONDS:
                raise InvalidSignature("The signed ts is more than 5 minutes away from now: "
                                       "a replay, or a clock out of sync.",
                                       details={"ts": params["ts"]})
        return creds, "signature", params
    params = {**req.query, **req.body}
    token = params.get("token")
    if not token:
        raise InvalidToken()
    token_hash = tokens.hash_secret(token)
    creds = _credentials(f"t:{token_hash}", lambda: db.session.scalar(select(Merchant).where(
        Merchant.postback_token_hash == token_hash)))
    if creds is None:
        raise InvalidToken()
    return creds, "token", params


def source_allowed(allowlist: list[str] | None, source_ip: str | None) -> bool:
    """Whether the source address is in the merchant's allowlist (empty list: everyone)."""
    if not allowlist:
        return True
    try:
        address = ipaddress.ip_address(source_ip or "")
    except ValueError:
        return False
    for entry in allowlist:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
