"""Public endpoints: the impression pixel and banner images."""

from __future__ import annotations

import base64

from flask import Blueprint, Response, abort, request

from partnernet.creatives import pixel, services
from partnernet.links import tracking
from partnernet.links.views import _COOKIE_RE, visit_from_environ

bp = Blueprint("creatives", __name__)

#: The smallest transparent 1×1 GIF (43 bytes).
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {"Content-Type": "image/gif", "Cache-Control": "no-store, no-cache, must-revalidate, private",
                 "Pragma": "no-cache", "Expires": "0"}


def _pixel(code: str, creative_id: int | None) -> Response:
    """Record an impression of a link (and creative) and answer the GIF; unknown codes still get
    the GIF (a broken image on a partner's page helps no one) but record nothing."""
    target = tracking.lookup_link(code)
    if target is not None:
        visit = visit_from_environ(request.environ)
        cookie = _COOKIE_RE.search(request.environ.get("HTTP_COOKIE", ""))
        # Only a visitor id the viewer already carries says who it is; a fresh one would make
        # every view unique.
        visit.visitor_id = tracking.valid_visitor_id(cookie.group(1) if cookie else None)
        pixel.record_impression(target, visit, creative_id)
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
