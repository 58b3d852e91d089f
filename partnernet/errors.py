"""Domain errors and the one JSON error shape of CONTRACT.md.

``{"error": {"code": "<snake_case>", "message": "<for a person>", "details": {...}}}``
for every API, postback and webhook error; an HTML page for the panels.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template_string, request
from marshmallow import ValidationError
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException

from partnernet.extensions import db
from partnernet.money import MoneyError

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/postback", "/webhooks/")


class PartnernetError(Exception):
    """Base of every domain exception: carries an HTTP status and a stable code."""

    status_code = 400
    code = "bad_request"
    message = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details or {}


class BadRequest(PartnernetError):
    status_code = 400
    code = "bad_request"


class ValidationFailed(PartnernetError):
    status_code = 400
    code = "validation_error"
    message = "Some fields are missing or invalid."


class Unauthenticated(PartnernetError):
    status_code = 401
    code = "unauthenticated"
    message = "Authentication is required."


class Forbidden(PartnernetError):
    status_code = 403
    code = "forbidden"
    message = "You may not do this."


class NotFound(PartnernetError):
    status_code = 404
    code = "not_found"
    message = "Not found."


class Conflict(PartnernetError):
    status_code = 409
    code = "conflict"
    message = "This conflicts with an existing record."


class RuleRefused(PartnernetError):
    status_code = 422
    code = "refused"
    message = "The request is valid but a rule refuses it."


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON error shape of CONTRACT.md."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def wants_json() -> bool:
    """Whether this request gets JSON errors (API, postback, webhooks) rather than HTML."""
    if request.path.startswith(JSON_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes.accept_html


_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ status }} · partnernet</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}</style></head>
<body><h1>{{ status }} — {{ title }}</h1><p>{{ message }}</p><p><a href="/">Home</a></p></body></html>"""


def render_error(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> Response:
    """Render an error as JSON or as a small HTML page, by who is asking."""
    if wants_json():
        response = jsonify(error_body(code, message, details))
    else:
        title = code.replace("_", " ")
        response = Response(
            render_template_string(_HTML, status=status, title=title, message=message),
            mimetype="text/html",
        )
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _snake(name: str) -> str:
    return name.lower().replace(" ", "_").replace("-", "_").replace("'", "")


def handle_partnernet_error(error: PartnernetError) -> Response:
    return render_error(error.status_code, error.code, error.message, error.details)


def handle_money_error(error: MoneyError) -> Response:
    return render_error(400, error.code, error.message)


def handle_validation_error(error: ValidationError) -> Response:
    return render_error(400, "validation_error", "Some fields are missing or invalid.",
                        {"fields": error.normalized_messages()})


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if status == 422 and messages is not None:
        # webargs/flask-smorest schema errors: a malformed request is a 400 here.
        fields: dict[str, Any] = {}
        for location, errs in messages.items():
            if isinstance(errs, dict):
                fields.update(errs)
            else:
                fields[location] = errs
        return render_error(400, "validation_error", "Some fields are missing or invalid.",
                            {"fields": fields})
    code = {
        400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
        405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
        415: "unsupported_media_type", 429: "rate_limited",
    }.get(status, _snake(error.name or "error"))
    message = error.description or error.name or "Error"
    if status == 429:
        message = "Too many requests; slow down and retry later."
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    if status == 429:
        retry = getattr(error, "retry_after", None)
        if retry:
            headers["Retry-After"] = str(retry)
    return render_error(status, code, message, headers=headers)


def handle_out_of_range(error: Exception) -> Response:
    """A number or text the database cannot hold came from the request: bad input, not a crash."""
    db.session.rollback()
    log.warning("value out of range on %s %s: %s", request.method, request.path, error.__class__.__name__)
    return render_error(400, "out_of_range", "A value in the request is out of range.")


def handle_too_deep(error: RecursionError) -> Response:
    """JSON nested deeper than the parser can follow (webargs parses it itself): bad input."""
    db.session.rollback()
    return render_error(400, "bad_request", "The request body is nested too deeply.")


def handle_database_unavailable(error: Exception) -> Response:
    """The database is unreachable or restarting: nothing was saved, the caller should retry."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection is gone; the session is reset on remove()
        # The scoped session proxies rollback() but not invalidate(): call it on the Session itself.
        db.session().invalidate()
    log.warning("database unavailable on %s %s: %s", request.method, request.path,
                error.__class__.__name__)
    return render_error(503, "service_unavailable",
                        "The service is briefly unavailable; nothing was saved. Retry shortly.",
                        headers={"Retry-After": "5"})


def handle_unexpected(error: Exception) -> Response:
    db.session.rollback()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return render_error(500, "internal_error", "Something went wrong on our side; nothing was saved.")


def register_error_handlers(app: Flask) -> None:
    """Install the handlers that render every error in the contract's shape."""
    app.register_error_handler(PartnernetError, handle_partnernet_error)
    app.register_error_handler(MoneyError, handle_money_error)
    app.register_error_handler(ValidationError, handle_validation_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(OverflowError, handle_out_of_range)
    app.register_error_handler(DataError, handle_out_of_range)
    app.register_error_handler(RecursionError, handle_too_deep)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
