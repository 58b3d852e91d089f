"""``GET /r/<code>``: the click redirect (public, no session, no CSRF)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from partnernet.errors import render_error
from partnernet.links import tracking
from partnernet.links.models import SUB_LENGTH

bp = Blueprint("redirect", __name__)

SUB_NAMES = ("sub1", "sub2", "sub3", "sub4", "sub5")


def visit_from_request() -> tracking.Visit:
    """The visit this request describes (a malformed visitor cookie gets a new id)."""
    args = request.args
    visitor_id = tracking.valid_visitor_id(request.cookies.get(tracking.VISITOR_COOKIE))
    headers = request.headers
    return tracking.Visit(
        ip=request.remote_addr,
        user_agent=tracking.clean(headers.get("User-Agent"), 512),
        referer=tracking.clean(headers.get("Referer"), 1024),
        subs=tuple(tracking.clean(args.get(name), SUB_LENGTH) for name in SUB_NAMES),
        visitor_id=visitor_id or tracking.new_visitor_id(),
        is_head=request.method == "HEAD",
        paid_ads_param=tracking.paid_ads_param(args),
    )


@bp.route("/r/<code>", methods=["GET", "HEAD"])
def redirect_click(code: str) -> Response:
    """302 to the offer's landing URL with the click id; 404 for an unknown or disabled code."""
    target = tracking.lookup_link(code)
    if target is None:
        return render_error(404, "link_not_found", "This link does not exist or is no longer active.")
    visit = visit_from_request()
    _, location = tracking.record_click(target, visit)
    response = Response(status=302, headers={"Location": location,
                                             "Cache-Control": "no-store, private"})
    # Refreshed on every click so the year runs from the visitor's last click.
    response.set_cookie(tracking.VISITOR_COOKIE, visit.visitor_id or "",
                        max_age=tracking.VISITOR_COOKIE_MAX_AGE, httponly=True, samesite="Lax",
                        secure=request.is_secure or bool(current_app.config.get("SESSION_COOKIE_SECURE")))
    return response
