"""The partner portal (/portal): sign-up, dashboard, offers, link builder, earnings, payouts."""

from __future__ import annotations

from functools import wraps
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user

from partnernet.accounts import services as accounts
from partnernet.accounts.exceptions import EmailTaken
from partnernet.accounts.fresh import fresh_login_required, mark_authenticated
from partnernet.accounts.models import Merchant, Partner
from partnernet.admin.forms import choices
from partnernet.admin.services import bar_chart, names
from partnernet.admin.services import dashboard as build_dashboard
from partnernet.commissions.ledger import balance_view
from partnernet.errors import PartnernetError
from partnernet.extensions import db
from partnernet.links import services as links
from partnernet.money import format_amount
from partnernet.offers.models import Offer
from partnernet.portal import services
from partnernet.portal.forms import ApplyForm, LinkForm, PostbackUrlForm, SignupForm
from partnernet.reports.rollup import Scope

bp = Blueprint("portal", __name__, url_prefix="/portal")
PER_PAGE = 25


def partner_required(view: Any) -> Any:
    """Only partners: each page shows the logged-in partner's own rows and nobody else's."""

    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user.role in ("merchant", "admin"):
            return redirect(url_for("admin.dashboard"))
        if current_user.role != "partner" or current_user.partner_id is None:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def pid() -> int:
    return int(current_user.partner_id)


def paginate(stmt: Any) -> Any:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    return db.paginate(stmt, page=page, per_page=PER_PAGE, error_out=False)


# -- joining a program ---------------------------------------------------------------------

@bp.route("/join/<int:merchant_id>", methods=["GET", "POST"])
def join(merchant_id: int) -> Any:
    """Sign up to a merchant's program: pending until the merchant approves (invited: approved)."""
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        abort(404)
    token = request.values.get("invite")
    invite = services.read_invite(token, merchant_id)
    if current_user.is_authenticated and current_user.role == "partner":
        form = ApplyForm()
        if form.validate_on_submit():
            partner = db.session.get(Partner, pid())
            assert partner is not None
            try:
                accounts.create_partner(merchant_id, email=partner.email, name=partner.name,
                                        status="approved" if invite and invite["email"] == partner.email
                                        else "pending")
                flash(f"Application to {merchant.name} sent.", "ok")
            except PartnernetError as exc:
                db.session.rollback()
                flash(exc.message, "error")
            return redirect(url_for("portal.dashboard"))
        return render_template("portal/apply.html", merchant=merchant, form=form, invite=token)
    if current_user.is_authenticated:
        abort(403)
    form = SignupForm()
    if request.method == "GET" and invite:
        form.email.data, form.name.data = invite["email"], invite["name"]
    status = 200
    if form.validate_on_submit():
        email = accounts.normalize_email(form.email.data or "")
        approved = invite is not None and invite["email"] == email
        try:
            if services.email_registered(email):
                # create_partner would join the existing account to this program: only its owner,
                # logged in, may do that, never a sign-up form that knows the email.
                raise EmailTaken()
            partner, _ = accounts.create_partner(
                merchant_id, email=email, name=form.name.data or "", password=form.password.data,
                status="approved" if approved else "pending", channel_type=form.channel_type.data or "other")
        except PartnernetError as exc:
            db.session.rollback()
            form.email.errors = list(form.email.errors) + [
                "An account with this email exists: log in, then apply from your portal."
                if exc.code in ("email_taken", "partner_exists") else exc.message]
            status = 409
        else:
            user = db.session.scalar(db.select(accounts.User).where(accounts.User.partner_id == partner.id))
            session.clear()
            login_user(user)
            mark_authenticated()  # the password was just chosen
            flash("Welcome! Your application is pending the merchant's approval." if not approved
                  else f"Welcome to {merchant.name}'s program.", "ok")
            return redirect(url_for("portal.dashboard"))
    elif request.method == "POST":
        status = 400
    return render_template("portal/join.html", merchant=merchant, form=form, invite=token), status


# -- dashboard -------------------------------------------------------------------------------

@bp.get("/")
@partner_required
def dashboard() -> Any:
    programs = services.memberships(pid())
    board = build_dashboard(Scope(partner_id=pid()))
    balances = {merchant.id: balance_view(merchant.id, pid()) for m, merchant in programs
                if m.status == "approved"}
    return render_template("portal/dashboard.html", programs=programs, board=board, balances=balances,
                           open_programs=services.programs_open(pid()), fmt=format_amount,
                           apply=ApplyForm(), clicks_chart=bar_chart(board.days, "clicks"))


@bp.get("/offers")
@partner_required
def offers() -> Any:
    return render_template("portal/offers.html", rows=services.promotable_offers(pid()))


# -- links and coupons -----------------------------------------------------------------------

@bp.route("/links", methods=["GET", "POST"])
@partner_required
def links_page() -> Any:
    """The link builder (offer, sub ids, UTM) and the partner's links and coupon codes."""
    form = LinkForm()
    promotable = [(o, m) for o, m, ok in services.promotable_offers(pid()) if ok]
    form.offer.choices = choices((str(o.id), f"{m.name} · {o.name}") for o, m in promotable)
    if request.method == "GET" and request.args.get("offer"):
        form.offer.data = request.args["offer"]
    status = 200
    if form.validate_on_submit():
        offer = next((o for o, _ in promotable if str(o.id) == form.offer.data), None)
        if offer is None:
            form.offer.errors = list(form.offer.errors) + ["Choose an offer you may promote."]
            status = 400
        else:
            data = {f: getattr(form, f).data for f in
                    ("sub1", "sub2", "sub3", "utm_source", "utm_medium", "utm_campaign")}
            try:
                link = links.create_link(offer.merchant_id,
                                         {"offer_id": offer.id, "partner_id": pid(), **data})
            except PartnernetError as exc:
                db.session.rollback()
                form.offer.errors = list(form.offer.errors) + [exc.message]
                status = 422
            else:
                flash(f"Your tracking link: {links.link_url(link)}", "ok")
                return redirect(url_for("portal.links_page", new=link.id))
    elif request.method == "POST":
        status = 400
    page = paginate(services.links_query(pid()))
    coupons = list(db.session.scalars(services.coupons_query(pid()).limit(100)))
    offer_names = names(Offer, {r.offer_id for r in page.items} | {c.offer_id for c in coupons})
    return render_template("portal/links.html", form=form, page=page, coupons=coupons,
                           offer_names=offer_names, link_url=links.link_url,
                           new_id=request.args.get("new", type=int)), status


@bp.get("/links/<int:link_id>/qr.svg")
@partner_required
def link_qr(link_id: int) -> Any:
    """The QR code of one of the partner's links, as SVG (downloadable)."""
    from flask import current_app

    link = services.partner_link(pid(), link_id)
    if link is None:
        abort(404)
    return current_app.response_class(
        services.qr_svg(links.link_url(link)), mimetype="image/svg+xml",
        headers={"Content-Disposition": f"inline; filename=link-{link.code}.svg"})


# -- earnings and payouts --------------------------------------------------------------------

@bp.get("/commissions")
@partner_required
def commissions() -> Any:
    page = paginate(services.commissions_query(pid(), request.args.get("status") or None))
    return render_template("portal/commissions.html", page=page, fmt=format_amount,
                           offer_names=names(Offer, {c.offer_id for c in page.items}))


@bp.get("/payouts")
@partner_required
def payouts() -> Any:
    """Payout history, and "Connect payouts" (Stripe onboarding) when Stripe is configured."""
    from partnernet.payouts.gateway import stripe_enabled

    stmt = services.payouts_query(pid())
    page = paginate(stmt) if stmt is not None else None
    merchants = names(Merchant, {p.merchant_id for p in page.items}) if page else {}
    partner = db.session.get(Partner, pid())
    return render_template("portal/payouts.html", page=page, fmt=format_amount, merchants=merchants,
                           partner=partner, stripe=stripe_enabled(), connect=ApplyForm(),
                           connected=request.args.get("connected"))


@bp.route("/payouts/connect", methods=["GET", "POST"])
@partner_required
@fresh_login_required
def payouts_connect() -> Any:
    """Start (or resume) Stripe onboarding: a fresh Account Link, never stored nor logged.

    It sets where the partner's money goes, so it needs a fresh login (password entered
    in the last minutes) like an email change."""
    from partnernet.payouts.connect import start_partner_onboarding

    if request.method == "GET":  # Stripe's refresh_url: back to the button (a GET changes nothing)
        return redirect(url_for("portal.payouts"))
    if not ApplyForm().validate_on_submit():
        abort(400)
    try:
        link = start_partner_onboarding(pid())
    except PartnernetError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("portal.payouts"))
    return redirect(link["url"])


@bp.route("/settings", methods=["GET", "POST"])
@partner_required
def settings() -> Any:
    """Outgoing postback URL with "send test" and the delivery log; API keys for own reporting."""
    from marshmallow import ValidationError

    from partnernet.accounts.schemas import PartnerPatch
    from partnernet.conversions import outgoing

    form, confirm = PostbackUrlForm(), ApplyForm()
    partner = db.session.get(Partner, pid())
    assert partner is not None
    shown_key = None
    status = 200
    action = request.form.get("action")
    if request.method == "POST":
        if action == "postback" and form.validate_on_submit():
            try:
                data = PartnerPatch(only=("postback_url",)).load(
                    {"postback_url": (form.postback_url.data or "").strip() or None})
            except ValidationError as exc:
                msgs = exc.messages if isinstance(exc.messages, dict) else {}
                form.postback_url.errors = list(form.postback_url.errors) + [
                    str(m) for m in msgs.get("postback_url", ["Not a valid URL."])]
                status = 400
            else:
                services.set_postback_url(pid(), data["postback_url"])
                flash("Postback URL saved.", "ok")
                return redirect(url_for("portal.settings"))
        elif action == "test" and confirm.validate_on_submit():
            try:
                delivery = outgoing.send_test(pid())
                flash(f"Test postback: {delivery.status}"
                      + (f" (HTTP {delivery.last_http_status})" if delivery.last_http_status else "")
                      + (f" — {delivery.last_error}" if delivery.last_error else ""),
                      "ok" if delivery.status == "delivered" else "error")
            except PartnernetError as exc:
                db.session.rollback()
                flash(exc.message, "error")
            return redirect(url_for("portal.settings"))
        elif action == "new_key" and confirm.validate_on_submit():
            shown_key = services.create_partner_api_key(pid(), "portal")
            flash("New API key: copy it now, it is shown once.", "ok")
        elif action == "revoke" and confirm.validate_on_submit():
            if not services.revoke_partner_api_key(pid(), request.form.get("key_id", 0, type=int)):
                abort(404)
            flash("API key revoked.", "ok")
            return redirect(url_for("portal.settings"))
        else:
            status = 400
    elif partner.postback_url:
        form.postback_url.data = partner.postback_url
    deliveries = paginate(outgoing.deliveries_query(partner_id=pid()))
    return render_template("portal/settings.html", form=form, confirm=confirm, partner=partner,
                           deliveries=deliveries, keys=services.partner_api_keys(pid()),
                           shown_key=shown_key), status


@bp.get("/reports")
@partner_required
def reports() -> Any:
    """The partner's own metrics (all programs), with date range, sub1 filter and CSV."""
    from partnernet.admin.views import render_report

    return render_report(Scope(partner_id=pid()), "portal/reports.html", "portal.reports")
