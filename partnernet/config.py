"""Configuration from the environment (the variables in CONTRACT.md) with embedded defaults."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the common ``postgresql://`` form."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _instance_secret(instance_path: Path) -> str:
    """A random SECRET_KEY kept in ``instance/`` for the embedded default; never committed."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class ConfigError(RuntimeError):
    """The configuration is not safe or not complete enough to start."""


#: Values seen in tutorials and tests; refused as a production SECRET_KEY.
WEAK_SECRETS = {"dev", "secret", "changeme", "change-me", "development", "test",
                "test-secret-key-not-for-production", "please-change-me"}


def check_production(cfg: dict[str, Any]) -> None:
    """Refuse to start in production with a weak secret, no webhook secret or no host list."""
    key = str(cfg.get("SECRET_KEY") or "")
    if key.lower() in WEAK_SECRETS or len(key) < 32:
        raise ConfigError("SECRET_KEY is a default or too short (32+ random characters needed)")
    if cfg.get("STRIPE_SECRET_KEY") and not cfg.get("STRIPE_WEBHOOK_SECRET"):
        raise ConfigError("STRIPE_WEBHOOK_SECRET must be set when Stripe payouts are on")
    if not cfg.get("TRUSTED_HOSTS"):
        raise ConfigError("TRUSTED_HOSTS must list the host names partnernet answers to")
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") and not cfg.get("ALLOW_SQLITE_IN_PRODUCTION"):
        raise ConfigError("production needs DATABASE_URL pointing at PostgreSQL")


def load_config(instance_path: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the config mapping from the environment, then apply ``overrides`` (tests)."""
    env = os.environ
    overrides = dict(overrides or {})
    default_db = f"sqlite:///{instance_path / 'partnernet.db'}"
    database_url = overrides.pop("DATABASE_URL", None) or env.get("DATABASE_URL") or default_db
    redis_url = overrides.pop("REDIS_URL", env.get("REDIS_URL") or None)
    env_name = env.get("PARTNERNET_ENV", "development")
    cfg: dict[str, Any] = {
        "ENV_NAME": env_name,
        "SECRET_KEY": env.get("SECRET_KEY") or None,
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": env.get("PARTNERNET_REDIS_PREFIX", "pn:"),
        "RQ_QUEUE_PREFIX": env.get("PARTNERNET_QUEUE_PREFIX", "partnernet"),
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY") or None,
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET") or None,
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE") or "https://api.stripe.com",
        # Payouts: the stripe library's own retries (its default is none), its timeout,
        # and our pacing under Stripe's rate limit.
        "STRIPE_MAX_NETWORK_RETRIES": int(env.get("STRIPE_MAX_NETWORK_RETRIES", "2") or 2),
        "STRIPE_TIMEOUT_SECONDS": float(env.get("STRIPE_TIMEOUT_SECONDS", "30") or 30),
        "STRIPE_MAX_REQUESTS_PER_SECOND": float(env.get("STRIPE_MAX_REQUESTS_PER_SECOND", "20") or 20),
        "BASE_URL": (env.get("PARTNERNET_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
        "TRUSTED_PROXY_HOPS": int(env.get("PARTNERNET_TRUSTED_PROXY_HOPS", "0") or 0),
        # Flask refuses other Host headers (no host-header poisoning of printed URLs).
        "TRUSTED_HOSTS": [h.strip() for h in env.get("TRUSTED_HOSTS", "").split(",") if h.strip()]
        or None,
        "JOBS_INLINE": not redis_url,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env.get("PARTNERNET_SECURE_COOKIES"), env_name == "production"),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "WTF_CSRF_TIME_LIMIT": None,
        "RATELIMIT_ENABLED": _bool(env.get("PARTNERNET_RATELIMIT"), True),
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": env.get("PARTNERNET_LOGIN_RATE_LIMIT", "10 per minute"),
        "POSTBACK_RATE_LIMIT": env.get("PARTNERNET_POSTBACK_RATE_LIMIT", "6000 per minute"),
        # PostgreSQL connections the click flush COPYs batches on at once (1: one at a time).
        "FLUSH_WORKERS": max(1, int(env.get("PARTNERNET_FLUSH_WORKERS", "2") or 2)),
        "API_TITLE": "partnernet",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "JSON_SORT_KEYS": False,
        "TESTING": False,
    }
    cfg.update(overrides)
    if cfg["SECRET_KEY"] is None:
        if env_name == "production":
            raise ConfigError("SECRET_KEY must be set in production")
        cfg["SECRET_KEY"] = _instance_secret(instance_path)
    if env_name == "production":
        check_production(cfg)
    if cfg["REDIS_URL"]:
        cfg["RATELIMIT_STORAGE_URI"] = cfg["REDIS_URL"]
        cfg["JOBS_INLINE"] = overrides.get("JOBS_INLINE", False)
    else:
        cfg["RATELIMIT_STORAGE_URI"] = "memory://"
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # SQLite serialises writers; wait for the lock instead of failing at once.
        cfg["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    return cfg
