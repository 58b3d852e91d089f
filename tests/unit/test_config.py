"""Configuration: defaults, URL normalisation, and refusal to start unsafely in production."""

import pytest

from partnernet.config import ConfigError, load_config, normalize_database_url

STRONG = "k" * 20 + "Q7x9Lm2Vb8Nc4Zr6Ty1Wp"


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "STRIPE_SECRET_KEY",
                 "STRIPE_WEBHOOK_SECRET", "TRUSTED_HOSTS", "PARTNERNET_ENV"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_postgres_urls_use_psycopg3():
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_embedded_defaults(clean_env, tmp_path):
    cfg = load_config(tmp_path)
    assert cfg["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'partnernet.db'}"
    assert cfg["REDIS_URL"] is None and cfg["JOBS_INLINE"] is True
    # a random key is generated once and kept, never a constant
    assert len(cfg["SECRET_KEY"]) >= 32
    assert load_config(tmp_path)["SECRET_KEY"] == cfg["SECRET_KEY"]
    assert load_config(tmp_path / "other")["SECRET_KEY"] != cfg["SECRET_KEY"]


def _production(env, **values):
    env.setenv("PARTNERNET_ENV", "production")
    env.setenv("DATABASE_URL", "postgresql://u@db/pn")
    env.setenv("TRUSTED_HOSTS", "partners.example.com")
    for name, value in values.items():
        if value is None:
            env.delenv(name, raising=False)
        else:
            env.setenv(name, value)


@pytest.mark.parametrize(("values", "message"), [
    ({"SECRET_KEY": None}, "SECRET_KEY must be set"),
    ({"SECRET_KEY": "changeme"}, "SECRET_KEY is a default"),
    ({"SECRET_KEY": "short-key"}, "SECRET_KEY is a default"),
    ({"SECRET_KEY": STRONG, "STRIPE_SECRET_KEY": "sk_live_x"}, "STRIPE_WEBHOOK_SECRET"),
    ({"SECRET_KEY": STRONG, "TRUSTED_HOSTS": None}, "TRUSTED_HOSTS"),
    ({"SECRET_KEY": STRONG, "DATABASE_URL": "sqlite:///x.db"}, "PostgreSQL"),
])
def test_production_refuses_unsafe_settings(clean_env, tmp_path, values, message):
    _production(clean_env, **values)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


def test_production_with_safe_settings(clean_env, tmp_path):
    _production(clean_env, SECRET_KEY=STRONG, STRIPE_SECRET_KEY="sk_live_x",
                STRIPE_WEBHOOK_SECRET="whsec_x")
    cfg = load_config(tmp_path)
    assert cfg["SESSION_COOKIE_SECURE"] is True
    assert cfg["TRUSTED_HOSTS"] == ["partners.example.com"]

