"""Public endpoints: the impression pixel and banner images.

Like the redirect (links/views.py), the pixel has two doors to the same code: a small WSGI
layer answers ``GET|HEAD /i/<code>[/<creative id>].gif`` before Flask's request machinery
runs (a cached link: no SQL, one Redis round trip), and the Flask views below answer the rest
(a failure on the fast path hands over before anything is recorded).
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, cast

from flask import Blueprint, Flask, Response, abort, request
from flask.blueprints import BlueprintSetupState
from werkzeug.middleware.proxy_fix import ProxyFix

from partnernet.creatives import pixel, services
from partnernet.links import tracking
from partnernet.links.views import _COOKIE_RE

log = logging.getLogger(__name__)

bp = Blueprint("creatives", __name__)

#: The smallest transparent 1×1 GIF (43 bytes).
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {"Content-Type": "image/gif", "Cache-Control": "no-store, no-cache, must-revalidate, private",
                 "Pragma": "no-cache", "Expires": "0"}
#: What the fast path sends: the pixel's headers plus those the app adds to every answer.
FAST_HEADERS = [*PIXEL_HEADERS.items(), ("Content-Length", str(len(GIF))),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "strict-origin-when-cross-origin"), ("X-Frame-Options", "DENY")]
_PIXEL_PATH = re.compile(r"/i/([A-Za-z0-9_-]{1,32})(?:/([0-9]{1,18}))?\.gif")


def pixel_visit(environ: dict[str, Any], target: tracking.LinkTarget) -> tracking.Visit:
    """The viewer: address, user agent and only a visitor id it already carries (a fresh one
    would make every view unique); none at all for a cookieless merchant. The query, subs and
    referer the redirect reads do not matter to an impression: not parsed."""
    visitor_id = None
    if not target.cookieless:
        cookie = _COOKIE_RE.search(environ.get("HTTP_COOKIE", ""))
        visitor_id = tracking.valid_visitor_id(cookie.group(1) if cookie else None)
    return tracking.Visit(ip=environ.get("REMOTE_ADDR"),
                          user_agent=tracking.clean(environ.get("HTTP_USER_AGENT"), 512),
                          referer=None, subs=(None,) * 5, visitor_id=visitor_id,
                          is_head=environ.get("REQUEST_METHOD") == "HEAD", paid_ads_param=None)


def _pixel(code: str, creative_id: int | None) -> Response:
    """Record an impression of a link (and creative) and answer the GIF; unknown codes still get
    the GIF (a broken image on a partner's page helps no one) but record nothing."""
    target = tracking.lookup_link(code)
    if target is not None:
        pixel.record_impression(target, pixel_visit(request.environ, target), creative_id)
    return Response(GIF, status=200, headers=PIXEL_HEADERS)


@bp.get("/i/<code>.gif")
def impression(code: str) -> Response:
    """1×1 GIF recording an impression of a tracking link."""
    return _pixel(code, None)


@bp.get("/i/<code>/<int:creative_id>.gif")
def creative_impression(code: str, creative_id: int) -> Response:
    """1×1 GIF recording an impression of a creative on a tracking link."""
    return _pixel(code, creative_id)


@bp.get("/creatives/<int:creative_id>/image")
def creative_image(creative_id: int) -> Response:
    """A banner's image, as stored (checked at upload)."""
    found = services.creative_image(creative_id)
    if found is None:
        abort(404)
    data, mime = found
    return Response(data, headers={"Content-Type": mime, "Cache-Control": "public, max-age=3600",
                                   "Content-Security-Policy": "default-src 'none'",
                                   "X-Content-Type-Options": "nosniff"})


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PixelFastPath:
    """WSGI layer in front of Flask: answers the pixel for a link found in the caches."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/i/") or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self.wsgi_app(environ, start_response)
        match = _PIXEL_PATH.fullmatch(path)
        if match is None:
            return self.wsgi_app(environ, start_response)
        code, creative = match.groups()
        with self.app.app_context():
            try:
                target = tracking.lookup_link(code)
                if target is not None:
                    pixel.record_impression(target, pixel_visit(environ, target),
                                            int(creative) if creative else None)
            except Exception:  # let Flask answer (and log) it; nothing was recorded
                log.exception("pixel fast path failed on %s", code)
                return self.wsgi_app(environ, start_response)
        start_response("200 OK", FAST_HEADERS)
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [GIF]


@bp.record_once
def _install_fast_path(state: BlueprintSetupState) -> None:
    """Wrap the app's WSGI callable (inside ProxyFix, so client addresses are already fixed)."""
    app = cast(Flask, state.app)  # typed as sansio's App; a Flask blueprint's app is a Flask
    outer = app.wsgi_app
    if isinstance(outer, ProxyFix):
        outer.app = PixelFastPath(app, outer.app)
    else:
        # Flask's documented way to add WSGI middleware, which mypy sees as replacing a method.
        app.wsgi_app = PixelFastPath(app, outer)  # type: ignore[method-assign]

