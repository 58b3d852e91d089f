"""Random public ids and secrets, and how secrets are stored (hashed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Link codes and coupon-free ids avoid look-alike characters (0/O, 1/l/I).
_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"


def new_code(length: int = 8) -> str:
    """A short random code (8 chars ≈ 46 bits): unguessable link codes."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_click_id() -> str:
    """A random 128-bit id as 32 hex characters."""
    return secrets.token_hex(16)


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
