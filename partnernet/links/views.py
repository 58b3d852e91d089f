"""``GET /r/<code>``: the click redirect (public, no session, no CSRF).

Two doors to the same services: a small WSGI layer answers the common case (an active
link found in the caches) before Flask's request machinery runs — the redirect is the
network's hot path and Flask's per-request work would otherwise cost more than the
redirect itself — and the Flask view below answers everything else (unknown codes,
the 404 page, errors) exactly the same way.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, cast
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.middleware.proxy_fix import ProxyFix

from partnernet.errors import render_error
from partnernet.links import buffer, tracking
from partnernet.links.models import SUB_LENGTH

log = logging.getLogger(__name__)

bp = Blueprint("redirect", __name__)

SUB_NAMES = ("sub1", "sub2", "sub3", "sub4", "sub5")
#: The headers the app adds to every answer (app.register_security_headers) that matter on a 302.
STATIC_HEADERS = [("Cache-Control", "no-store, private"), ("X-Content-Type-Options", "nosniff"),
                  ("Referrer-Policy", "strict-origin-when-cross-origin"), ("Content-Length", "0")]


_COOKIE_RE = re.compile(rf'(?:^|;)\s*{tracking.VISITOR_COOKIE}="?([^";]*)')


def query_args(environ: dict[str, Any]) -> dict[str, str]:
    """The query string's parameters, first value of each (as ``request.args.get`` gives)."""
    raw = environ.get("QUERY_STRING", "")
    if not raw:
        return {}
    # WSGI hands over the raw bytes as latin-1 text; the URL's own encoding is UTF-8.
    text = raw.encode("latin-1", "replace").decode("utf-8", "replace")
    args: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True, max_num_fields=200):
        args.setdefault(key, value)
    return args


#: A creative id on ``cr``: digits, short enough for a BIGINT.
_CREATIVE_RE = re.compile(r"[0-9]{1,18}")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")


@lru_cache(maxsize=8)
def _environ_key(header: str) -> str:
    """The WSGI environ key of an HTTP header name (``CF-IPCountry`` → ``HTTP_CF_IPCOUNTRY``)."""
    return "HTTP_" + header.strip().upper().replace("-", "_")


def country_header(app: Flask) -> str | None:
    """The environ key of the trusted country header, if configured.

    ``COUNTRY_HEADER`` in the app config, else the ``PARTNERNET_COUNTRY_HEADER`` environment
    variable (e.g. ``CF-IPCountry``, set by a CDN in front of us). Only configure a header
    the proxy in front always sets or strips: a client could otherwise send it.
    """
    header = app.config.get("COUNTRY_HEADER", os.environ.get("PARTNERNET_COUNTRY_HEADER"))
    return _environ_key(header) if header else None


def country_from_environ(environ: dict[str, Any], key: str | None) -> str | None:
    """Two upper-case letters from the trusted header, else None. ``XX`` (Cloudflare's
    "unknown") is None too; no GeoIP lookup is made."""
    if key is None:
        return None
    value = environ.get(key)
    if value and _COUNTRY_RE.fullmatch(value) and value != "XX":
        return str(value)
    return None


def visit_from_environ(environ: dict[str, Any], cookieless: bool = False,
                       app: Flask | None = None) -> tracking.Visit:
    """The visit a request describes, cleaned (a malformed visitor cookie gets a new id).

    Read from the WSGI environ directly: the same code serves the fast path and the view.
    ``cookieless`` (the merchant's mode): the visitor cookie is neither read nor issued.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    args = query_args(environ)
    visitor_id = None
    if not cookieless:
        cookie = _COOKIE_RE.search(environ.get("HTTP_COOKIE", ""))
        visitor_id = (tracking.valid_visitor_id(cookie.group(1) if cookie else None)
                      or tracking.new_visitor_id())
    creative = args.get("cr", "")
    return tracking.Visit(
        ip=environ.get("REMOTE_ADDR"),
        user_agent=tracking.clean(environ.get("HTTP_USER_AGENT"), 512),
        referer=tracking.clean(environ.get("HTTP_REFERER"), 1024),
        subs=tuple(tracking.clean(args.get(name), SUB_LENGTH) for name in SUB_NAMES),
        visitor_id=visitor_id,
        is_head=environ.get("REQUEST_METHOD") == "HEAD",
        paid_ads_param=tracking.paid_ads_param(args),
        creative_id=int(creative) if _CREATIVE_RE.fullmatch(creative) else None,
        country=country_from_environ(environ, country_header(app)),
    )


def redirect_headers(location: str, visitor_id: str | None, secure: bool) -> list[tuple[str, str]]:
    """Location, no caching, and the visitor cookie (refreshed: the year runs from the last
    click); no cookie at all when there is no visitor id (cookieless merchants)."""
    if visitor_id is None:
        return [("Location", location), *STATIC_HEADERS]
    cookie = (f"{tracking.VISITOR_COOKIE}={visitor_id}; Max-Age={tracking.VISITOR_COOKIE_MAX_AGE}; "
              f"Path=/; HttpOnly; SameSite=Lax{'; Secure' if secure else ''}")
    return [("Location", location), ("Set-Cookie", cookie), *STATIC_HEADERS]


def _secure(environ: dict[str, Any], app: Flask | None = None) -> bool:
    return environ.get("wsgi.url_scheme") == "https" or bool(
        (app or current_app).config.get("SESSION_COOKIE_SECURE"))


@bp.route("/r/<code>", methods=["GET", "HEAD"])
def redirect_click(code: str) -> Response:
    """302 to the offer's landing URL with the click id; 404 for an unknown or disabled code."""
    target = tracking.lookup_link(code)
    if target is None:
        return render_error(404, "link_not_found", "This link does not exist or is no longer active.")
    visit = visit_from_environ(request.environ, target.cookieless)
    _, location = tracking.record_click(target, visit)
    return Response(status=302, headers=redirect_headers(location, visit.visitor_id,
                                                         _secure(request.environ)))


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RedirectFastPath:
    """WSGI layer in front of Flask: answers ``GET|HEAD /r/<code>`` for a cached, active link.

    Anything else — other paths, unknown codes, any error — goes to Flask unchanged,
    where the view above answers it. The click is recorded once either way: the
    fast path only hands over before it records.
    """

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/r/") or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self.wsgi_app(environ, start_response)
        code = path[3:]
        if not tracking.CODE_RE.fullmatch(code):
            return self.wsgi_app(environ, start_response)
        app = self.app
        # The common case — the link in this process's LRU, Redis answering — needs no app
        # context (no database): the click goes to Redis or, should Redis fail now, to the
        # database under a context ``record_click`` pushes itself.
        hit, target = tracking.cached_link(app, code)
        if hit and target is not None and buffer.click_redis(app) is not None:
            try:
                visit = visit_from_environ(environ, target.cookieless, app)
                _, location = tracking.record_click(target, visit, app)
            except Exception:
                log.exception("redirect fast path could not record a click on %s", code)
                return self.wsgi_app(environ, start_response)
            start_response("302 FOUND", redirect_headers(location, visit.visitor_id, _secure(environ, app)))
            return [b""]
        with self.app.app_context():
            try:
                target = tracking.lookup_link(code)
            except Exception:  # let Flask answer (and log) it
                log.exception("redirect fast path could not look up %s", code)
                return self.wsgi_app(environ, start_response)
            if target is None:
                return self.wsgi_app(environ, start_response)
            visit = visit_from_environ(environ, target.cookieless)
            try:
                _, location = tracking.record_click(target, visit)
            except Exception:
                log.exception("redirect fast path could not record a click on %s", code)
                return self.wsgi_app(environ, start_response)
            headers = redirect_headers(location, visit.visitor_id, _secure(environ))
        start_response("302 FOUND", headers)
        return [b""]


@bp.record_once
def _install_fast_path(state: BlueprintSetupState) -> None:
    """Wrap the app's WSGI callable (inside ProxyFix, so client addresses are already fixed)."""
    app = cast(Flask, state.app)  # typed as sansio's App; a Flask blueprint's app is a Flask
    outer = app.wsgi_app
    if isinstance(outer, ProxyFix):
        outer.app = RedirectFastPath(app, outer.app)
    else:
        # Flask's documented way to add WSGI middleware, which mypy sees as replacing a method.
        app.wsgi_app = RedirectFastPath(app, outer)  # type: ignore[method-assign]
