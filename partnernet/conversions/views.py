"""``GET|POST /postback``: the server-to-server conversion postback of CONTRACT.md."""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from partnernet import tokens
from partnernet.conversions import fastpath, services
from partnernet.conversions.exceptions import InvalidParameter
from partnernet.extensions import csrf, limiter

bp = Blueprint("conversions", __name__)
csrf.exempt(bp)


def _flat(source: Any) -> dict[str, str]:
    """Parameters as strings; a list or object where a value belongs is a 400."""
    out: dict[str, str] = {}
    for key, value in source.items():
        if value is None:
            continue
        if isinstance(value, dict | list):
            raise InvalidParameter(f"{key} must be a single value.",
                                   details={"fields": {key: ["Must be a single value."]}})
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[str(key)[:64]] = str(value)
    return out


def _body_params() -> dict[str, str]:
    if request.method != "POST":
        return {}
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise InvalidParameter("The JSON body must be an object.")
        return _flat(data)
    return _flat(request.form.to_dict())


def _rate_key() -> str:
    """Rate-limit bucket: the merchant's token (hashed), else its id, else the address."""
    token = request.args.get("token") or request.form.get("token")
    if not token and request.is_json:
        data = request.get_json(silent=True)
        token = data.get("token") if isinstance(data, dict) else None
    if isinstance(token, str) and token:
        return "pb:t:" + tokens.hash_secret(token)[:24]
    merchant_id = request.args.get("merchant_id") or request.form.get("merchant_id")
    if merchant_id:
        return "pb:m:" + merchant_id[:20]
    return "pb:ip:" + (request.remote_addr or "")


def _counted_by_fast_path() -> bool:
    """The fast path counted this request in the same bucket before handing it over."""
    return bool(request.environ.get(fastpath.LIMITED_KEY))


@bp.route("/postback", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["POSTBACK_RATE_LIMIT"], key_func=_rate_key,
               exempt_when=_counted_by_fast_path)
def postback() -> Response:
    """A store reports a sale, lead, custom event or refund."""
    # The limit was checked (a 429 still carries X-RateLimit-* and Retry-After); the
    # headers on other answers would cost two more Redis round trips per postback.
    limiter.context.view_rate_limit = None
    raw_body = request.get_data(cache=True)
    req = services.PostbackRequest(
        method=request.method, query=_flat(request.args.to_dict()), body=_body_params(),
        raw_body=raw_body, raw_query=request.query_string.decode("latin-1"),
        signature=request.headers.get("X-Partnernet-Signature"),
        source_ip=request.remote_addr, postback_id=request.environ.get(fastpath.POSTBACK_ID_KEY))
    answer = services.receive_postback(req)
    return jsonify(answer.body)


@bp.record_once
def _install_fast_path(state: BlueprintSetupState) -> None:
    """``GET /postback`` on PostgreSQL with Redis: answered before Flask when it is the common
    case (``fastpath``); everything else reaches the view above."""
    fastpath.install(cast(Flask, state.app))  # typed as sansio's App; here it is a Flask
