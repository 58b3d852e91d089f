"""Random public ids and secrets, and how secrets are stored (hashed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, date, datetime, timedelta

from partnernet import clock

# Link codes and coupon-free ids avoid look-alike characters (0/O, 1/l/I).
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"


def new_code(length: int = 8) -> str:
    """A short random code (8 chars ≈ 46 bits): unguessable link codes."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_click_id() -> str:
    """A random 128-bit id as 32 hex characters."""
    return secrets.token_hex(16)


#: Day 0 of the day a click id carries.
CLICK_EPOCH = date(2000, 1, 1)


def click_id_for(at: datetime) -> str:
    """A click's id: 4 hex digits of its UTC day (days since 2000-01-01), then 112 random
    bits — 32 hex characters like any click id. The clicks table is partitioned by day: a
    look-up by id tries that day's partition first instead of every partition it could be in.
    """
    days = (at.astimezone(UTC).date() - CLICK_EPOCH).days
    return f"{days & 0xFFFF:04x}{secrets.token_hex(14)}"


def click_id_day(click_id: str) -> tuple[datetime, datetime] | None:
    """[start, end) of the UTC day a click id names, or None when it names no day up to
    tomorrow. An id made before ids carried their day (random throughout) names an arbitrary
    day: a look-up that misses there falls back to its usual range, so nothing goes unfound.
    """
    try:
        day = CLICK_EPOCH + timedelta(days=int(click_id[:4], 16))
    except ValueError:
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if start > clock.now() + timedelta(days=1):
        return None
    return start, start + timedelta(days=1)


def new_secret(prefix: str, nbytes: int = 24) -> str:
    """A random secret with a readable prefix (``pn_live_...``) so leaks are recognisable."""
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (API keys, tokens): lookup by hash, never stored raw.

    A fast hash is right here: these secrets are random and long, so there is
    nothing to brute-force; passwords use a slow hash instead (werkzeug scrypt).
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two strings without leaking where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())
