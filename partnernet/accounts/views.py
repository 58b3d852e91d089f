"""Login, logout, re-authentication (fresh login) and login email pages for the panels
(Flask-Login sessions, CSRF, rate limit), and the audit of refused postbacks and webhooks."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email, Length

from partnernet.accounts import services
from partnernet.accounts.fresh import fresh_login_required, mark_authenticated
from partnernet.audit import audit
from partnernet.errors import PartnernetError
from partnernet.extensions import db, limiter

bp = Blueprint("accounts", __name__)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class ReauthForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class EmailForm(FlaskForm):
    email = EmailField("New email", validators=[DataRequired(), Email(), Length(max=254)])


def safe_next(target: str | None, default: str) -> str:
    """Only a local path may be a redirect target: no scheme, no host, no ``//``."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return default
    return target


#: Machine endpoints whose refusals are audited here (the API audits its own in api/auth.py).
AUDITED_ENDPOINTS = {"conversions.postback": "postback", "stripe_webhooks.stripe_webhook": "stripe_webhook"}


@bp.after_app_request
def _audit_refusals(response: Any) -> Any:
    """A postback or Stripe webhook refused for its token or signature, or rate limited, goes
    to the audit log; logged only, so a flood of bad requests cannot fill the database."""
    source = AUDITED_ENDPOINTS.get(request.endpoint or "")
    if source is None or response.status_code < 400:
        return response
    body = response.get_json(silent=True) if response.is_json else None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    # Stripe's convention answers a bad signature with a 400: its code says what it was.
    if response.status_code in (401, 403) or code in ("invalid_signature", "invalid_token"):
        audit("signature_failed", persist=False, source=source, status=response.status_code, code=code)
    elif response.status_code == 429:
        audit("rate_limited", persist=False, source=source, status=429, code=code)
    return response


def home_for(user: Any) -> str:
    return {"partner": "/portal", "merchant": "/admin", "admin": "/admin"}.get(user.role, "/")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login() -> Any:
    """Log in with email and password; locked for 15 minutes after 5 failures."""
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        user = services.verify_login(form.email.data or "", form.password.data or "")
        if user is not None:
            session.clear()  # no fixation: a fresh session at login
            login_user(user)
            mark_authenticated()
            return redirect(safe_next(request.args.get("next"), home_for(user)))
        flash("Wrong email or password, or the account is locked for a while.", "error")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("accounts/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout() -> Any:
    """Log out here and everywhere: the old session cookie is useless afterwards."""
    services.end_sessions(current_user._get_current_object())
    logout_user()
    session.clear()
    return redirect(url_for("accounts.login"))


@bp.route("/reauth", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def reauth() -> Any:
    """Enter the password again before a sensitive change, then back to the page (local only)."""
    form = ReauthForm()
    target = safe_next(request.args.get("next"), home_for(current_user))
    status = 200
    if form.validate_on_submit():
        if services.reauthenticate(current_user._get_current_object(), form.password.data or ""):
            mark_authenticated()
            return redirect(target)
        flash("Wrong password, or the account is locked for a while.", "error")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("accounts/reauth.html", form=form, target=target), status


@bp.route("/account/email", methods=["GET", "POST"])
@login_required
@fresh_login_required
def change_email() -> Any:
    """Change the email this account logs in with (needs a fresh login)."""
    form = EmailForm()
    status = 200
    if form.validate_on_submit():
        try:
            services.change_email(current_user._get_current_object(), form.email.data or "")
        except PartnernetError as exc:
            db.session.rollback()
            form.email.errors = list(form.email.errors) + [exc.message]
            status = 409
        else:
            flash("Your login email is changed.", "ok")
            return redirect({"partner": url_for("portal.settings"),
                             "merchant": url_for("admin.settings")}.get(current_user.role, "/"))
    elif request.method == "POST":
        status = 400
    return render_template("accounts/email.html", form=form), status
