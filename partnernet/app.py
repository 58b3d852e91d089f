"""The application factory: ``create_app(config=None)`` in named steps."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import Flask, render_template
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from partnernet.config import load_config
from partnernet.extensions import api, csrf, db, limiter, login_manager, migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class DecimalJSONProvider(DefaultJSONProvider):
    """Parse JSON numbers with a fraction as ``Decimal``: no float ever holds an amount."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_float", Decimal)
        return json.loads(s, **kwargs)


class IdConverter(IntegerConverter):
    """``<int:...>`` ids fit a BIGINT: a larger number is no object (404), not a database overflow."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides the environment (tests)."""
    app = Flask(__name__, instance_relative_config=True)
    app.url_map.converters["int"] = IdConverter
    app.config.update(load_config(Path(app.instance_path), config))
    app.json = DecimalJSONProvider(app)
    if app.config["TRUSTED_PROXY_HOPS"]:
        hops = app.config["TRUSTED_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    register_security_headers(app)
    from partnernet.jobs import register_periodic_jobs

    register_periodic_jobs()
    return app


def register_extensions(app: Flask) -> None:
    """Bind the extension singletons to this app."""
    import partnernet.models  # noqa: F401  (every table in the metadata)
    from partnernet.accounts.services import load_user

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.session_protection = "strong"
    login_manager.user_loader(load_user)
    csrf.init_app(app)
    api.init_app(app)
    limiter.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        _sqlite_pragmas(app)


def _sqlite_pragmas(app: Flask) -> None:
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


#: Feature packages, in the order their blueprints are registered. Each may have
#: ``api.py`` exposing ``blp`` (a flask-smorest Blueprint under /api/v1, CSRF-exempt,
#: bearer-key auth) and/or ``views.py`` exposing ``bp`` (pages or public endpoints), and
#: ``pages.py`` exposing a second ``bp`` (panel pages of a feature whose views.py is public).
FEATURES = ("accounts", "offers", "links", "conversions", "commissions", "payouts",
            "reports", "creatives", "portal", "admin", "privacy")


def register_blueprints(app: Flask) -> None:
    """Mount each feature's API blueprint under /api/v1 and its pages."""
    import importlib

    for feature in FEATURES:
        for room, attr in (("api", "blp"), ("views", "bp"), ("pages", "bp")):
            name = f"partnernet.{feature}.{room}"
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
                continue
            blueprint = getattr(module, attr, None)
            if blueprint is None:
                continue
            if room == "api":
                csrf.exempt(blueprint)
                api.register_blueprint(blueprint)
            else:
                app.register_blueprint(blueprint)

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}


def register_error_handlers(app: Flask) -> None:
    """Every error in the contract's JSON shape (API) or an HTML page (panels)."""
    from partnernet.errors import register_error_handlers as install

    install(app)


def register_commands(app: Flask) -> None:
    """The ``partnernet`` CLI groups (``db`` comes from Flask-Migrate)."""
    from partnernet.cli import register_commands as install

    install(app)


def register_security_headers(app: Flask) -> None:
    """Headers on every response: no sniffing, no framing, a strict CSP for the panels."""

    @app.after_request
    def _headers(response: Any) -> Any:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        )
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
