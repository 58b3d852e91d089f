"""Test fixtures: a fresh database per test, on SQLite by default or on PostgreSQL.

- SQLite (no DATABASE_URL): each test gets its own database file, copied from a
  template built once per session.
- PostgreSQL (DATABASE_URL=postgresql://...): the session creates a database of its
  own on that server (so parallel runs never meet), builds the schema once, and
  empties every table after each test.
- Redis (REDIS_URL): tests use it under a key prefix of their own and delete it after.

A service that is configured but not answering makes its tests skip with a reason,
or fail when PARTNERNET_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from partnernet import clock
from partnernet.config import normalize_database_url

#: The payout and Stripe tests' fixtures (fake Stripe server, Stripe-configured app, shop).
pytest_plugins = ["tests.stripe_fixtures"]

REQUIRE_SERVICES = os.environ.get("PARTNERNET_REQUIRE_SERVICES") == "1"
ENV_DATABASE_URL = os.environ.get("DATABASE_URL", "")
ENV_REDIS_URL = os.environ.get("REDIS_URL", "")
ON_POSTGRES = ENV_DATABASE_URL.startswith(("postgres://", "postgresql"))


def service_missing(what: str) -> None:
    """Skip (laptop) or fail (CI) when a service the run asked for is not there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (PARTNERNET_REQUIRE_SERVICES=1) but not reachable")
    pytest.skip(f"{what} not reachable")


# -- PostgreSQL: one database per test session ---------------------------------------

@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    if not ON_POSTGRES:
        yield None
        return
    base = make_url(normalize_database_url(ENV_DATABASE_URL))
    name = f"pn_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        service_missing(f"PostgreSQL at {base.host}:{base.port} ({exc.__class__.__name__})")
    url = base.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def schema_template(tmp_path_factory: pytest.TempPathFactory, pg_url: str | None) -> str:
    """Build the schema once: a template SQLite file, or the session's PostgreSQL database."""
    from partnernet.app import create_app
    from partnernet.extensions import db

    if pg_url:
        app = create_app(base_config(pg_url))
        with app.app_context():
            db.create_all()
            install_database_extras(db)
            db.engine.dispose()
        return pg_url
    path = tmp_path_factory.mktemp("template") / "template.db"
    app = create_app(base_config(f"sqlite:///{path}"))
    with app.app_context():
        db.create_all()
        install_database_extras(db)
        db.engine.dispose()
    return str(path)


def install_database_extras(db: Any) -> None:
    """Objects the models cannot declare (triggers, partitions): each feature may add a hook."""
    from partnernet import dbsetup

    dbsetup.install(db.engine)


def base_config(database_url: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "REDIS_URL": None,
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "BASE_URL": "http://partnernet.test",
        "JOBS_INLINE": True,
    }
    cfg.update(extra)
    return cfg


@pytest.fixture
def database_url(schema_template: str, pg_url: str | None, tmp_path: Path) -> str:
    if pg_url:
        return pg_url
    path = tmp_path / "test.db"
    shutil.copyfile(schema_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def redis_url() -> Iterator[str | None]:
    """The Redis URL of this run, or None on the embedded default."""
    if not ENV_REDIS_URL:
        yield None
        return
    import redis

    try:
        redis.Redis.from_url(ENV_REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001
        service_missing(f"Redis at {ENV_REDIS_URL} ({exc.__class__.__name__})")
    yield ENV_REDIS_URL


def make_app(database_url: str, redis_url: str | None = None, **extra: Any) -> Any:
    """An app on the test database; with Redis under a key prefix of its own."""
    from partnernet.app import create_app

    token = uuid.uuid4().hex[:10]
    return create_app(base_config(
        database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=f"pntest:{token}:",
        RQ_QUEUE_PREFIX=f"pntest-{token}",
        **extra,
    ))


@pytest.fixture
def app(database_url: str, redis_url: str | None, pg_url: str | None) -> Iterator[Any]:
    from partnernet.extensions import db

    app = make_app(database_url, redis_url)
    ctx = app.app_context()
    ctx.push()
    try:
        yield app
    finally:
        db.session.remove()
        if pg_url:
            truncate_all(db)
        if redis_url:
            delete_prefix(app)
        db.engine.dispose()
        ctx.pop()


def truncate_all(db: Any) -> None:
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def delete_prefix(app: Any) -> None:
    from partnernet.jobs import redis_connection

    conn = redis_connection(app)
    for pattern in (f"{app.config['REDIS_KEY_PREFIX']}*", f"rq:*{app.config['RQ_QUEUE_PREFIX']}*"):
        keys = list(conn.scan_iter(pattern, count=1000))
        if keys:
            conn.delete(*keys)


@pytest.fixture
def app_factory(database_url: str, pg_url: str | None) -> Iterator[Any]:
    """Build extra apps with other settings on the test database; all cleaned up after."""
    from partnernet.extensions import db

    made: list[Any] = []

    def factory(redis_url: str | None = None, **extra: Any) -> Any:
        made.append(make_app(database_url, redis_url, **extra))
        return made[-1]

    yield factory
    for extra_app in made:
        with extra_app.app_context():
            db.session.remove()
            if pg_url:
                truncate_all(db)
            if extra_app.config.get("REDIS_URL"):
                delete_prefix(extra_app)
            db.engine.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture(autouse=True)
def _unfreeze_clock() -> Iterator[None]:
    yield
    clock.freeze(None)


@pytest.fixture
def db_session(app: Any) -> Any:
    from partnernet.extensions import db

    return db.session
