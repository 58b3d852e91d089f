"""The merchant admin panel (/admin): thin pages over the features' services."""

from __future__ import annotations

from functools import wraps
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from marshmallow import ValidationError

from partnernet.accounts import services as accounts
from partnernet.accounts.models import Merchant, Partner
from partnernet.admin import services
from partnernet.admin.forms import (
    ApiKeyForm,
    ChannelForm,
    ConfirmForm,
    CouponForm,
    InviteForm,
    OfferForm,
    OverrideForm,
    PlanRow,
    PrivacyForm,
    ReviewForm,
    choices,
)
from partnernet.conversions.models import Conversion
from partnernet.errors import PartnernetError
from partnernet.extensions import db
from partnernet.links import services as links
from partnernet.money import MoneyError, format_amount, format_percent
from partnernet.offers import services as offers
from partnernet.offers.models import Membership, Offer, PlanOverride
from partnernet.offers.schemas import OfferIn, OverrideIn
from partnernet.payouts import manual as manual_payouts
from partnernet.payouts import settings as payout_settings
from partnernet.reports.rollup import Scope

bp = Blueprint("admin", __name__, url_prefix="/admin")
PER_PAGE = 25


def merchant_required(view: Any) -> Any:
    """Only the merchant's own staff: partners are sent to their portal, others refused."""

    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user.role == "partner":
            return redirect(url_for("portal.dashboard"))
        if current_user.role != "merchant" or current_user.merchant_id is None:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def mid() -> int:
    """The logged-in merchant's id: every query below is scoped by it (tenant isolation)."""
    return int(current_user.merchant_id)


def page_arg() -> int:
    return max(request.args.get("page", 1, type=int) or 1, 1)


def paginate(stmt: Any) -> Any:
    return db.paginate(stmt, page=page_arg(), per_page=PER_PAGE, error_out=False)


@bp.context_processor
def _merchant() -> dict[str, Any]:
    if current_user.is_authenticated and current_user.merchant_id:
        return {"merchant": db.session.get(Merchant, current_user.merchant_id)}
    return {}


def show_errors(form: Any, messages: dict[str, Any]) -> None:
    """Put marshmallow's messages next to the form fields they belong to."""
    for name, errs in messages.items():
        if name == "plans" and isinstance(errs, dict):
            for idx, row_errs in errs.items():
                if not isinstance(idx, int) or idx >= len(form.plans.entries):
                    continue
                row = form.plans.entries[idx].form
                for field, msgs in row_errs.items():
                    target = {"percent": "rate", "amount": "rate"}.get(field, field)
                    target = target if hasattr(row, target) else "event"
                    getattr(row, target).errors = list(getattr(row, target).errors) + _flat(msgs)
            continue
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors") and name != "plans":
            field.errors = list(field.errors) + _flat(errs)
        else:
            form.form_errors.extend(_flat(errs))


def _flat(msgs: Any) -> list[str]:
    if isinstance(msgs, dict):
        return [m for v in msgs.values() for m in _flat(v)]
    if isinstance(msgs, list):
        return [m for v in msgs for m in _flat(v)]
    return [str(msgs)]


# -- dashboard ---------------------------------------------------------------------------

@bp.get("/")
@merchant_required
def dashboard() -> Any:
    """Last 30 days: clicks, conversions, revenue, commission, EPC and a daily chart."""
    board = services.dashboard(Scope(merchant_id=mid()))
    pending = db.session.scalar(
        db.select(db.func.count()).select_from(
            services.memberships_query(mid(), "pending").order_by(None).subquery()))
    return render_template("admin/dashboard.html", board=board, pending=pending,
                           clicks_chart=services.bar_chart(board.days, "clicks"),
                           conv_chart=services.bar_chart(board.days, "conversions", height=100))


# -- offers ------------------------------------------------------------------------------

@bp.get("/offers")
@merchant_required
def offers_list() -> Any:
    page = paginate(services.offers_with_plans(mid()))
    return render_template("admin/offers.html", page=page, rate=plan_rate)


def plan_rate(plan: Any, currency: str) -> str:
    if plan.percent is not None:
        return f"{format_percent(plan.percent)}%"
    return f"{format_amount(plan.amount_minor or 0, currency)} {currency}"


def _save_offer(form: OfferForm, offer: Offer | None) -> Any:
    payload = form.to_payload()
    try:
        data = OfferIn().load(payload)
        if offer is None:
            saved = offers.create_offer(mid(), data)
        else:
            saved = offers.update_offer(mid(), offer.id, data)
    except ValidationError as exc:
        show_errors(form, exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages})
        return None
    except MoneyError as exc:
        form.form_errors.append(exc.message)
        return None
    except PartnernetError as exc:
        db.session.rollback()
        show_errors(form, exc.details.get("fields") or {"_": [exc.message]})
        return None
    return saved


@bp.route("/offers/new", methods=["GET", "POST"])
@merchant_required
def offer_new() -> Any:
    form = OfferForm()
    if form.validate_on_submit():
        saved = _save_offer(form, None)
        if saved is not None:
            flash(f"Offer “{saved.name}” created.", "ok")
            return redirect(url_for("admin.offer_edit", offer_id=saved.id))
    elif request.method == "GET":
        form.plans.entries[0].form.event.data = "sale"
    status = 400 if request.method == "POST" else 200
    return render_template("admin/offer_form.html", form=form, offer=None), status


@bp.route("/offers/<int:offer_id>", methods=["GET", "POST"])
@merchant_required
def offer_edit(offer_id: int) -> Any:
    offer = offers.get_offer(mid(), offer_id)
    form = OfferForm(obj=None if request.method == "POST" else offer)
    if request.method == "GET":
        _fill_plans(form, offer)
    if form.validate_on_submit():
        saved = _save_offer(form, offer)
        if saved is not None:
            flash("Offer saved.", "ok")
            return redirect(url_for("admin.offer_edit", offer_id=offer.id))
    status = 400 if request.method == "POST" else 200
    overrides = list(db.session.scalars(db.select(PlanOverride).where(PlanOverride.offer_id == offer.id)))
    partner_names = services.names(Partner, {o.partner_id for o in overrides})
    return render_template("admin/offer_form.html", form=form, offer=offer, overrides=overrides,
                           partner_names=partner_names, rate=plan_rate, confirm=ConfirmForm()), status


def _fill_plans(form: OfferForm, offer: Offer) -> None:
    form.hold_days.data = "" if offer.hold_days is None else str(offer.hold_days)
    form.daily_cap.data = "" if offer.daily_cap is None else str(offer.daily_cap)
    form.attribution_window_days.data = str(offer.attribution_window_days)
    while len(form.plans.entries) < len(offer.plans) + 1:
        form.plans.append_entry()
    for entry, plan in zip(form.plans.entries, offer.plans, strict=False):
        row: PlanRow = entry.form
        row.event.data, row.type.data = plan.event, plan.type
        row.rate.data = _rate_text(plan.percent, plan.amount_minor, offer.currency)
        cur = offer.currency
        row.tiers.data = "\n".join(f"{t.min_conversions}={_rate_text(t.percent, t.amount_minor, cur)}"
                                   for t in plan.tiers)
    for entry in form.plans.entries[len(offer.plans):]:
        entry.form.event.data = ""


def _rate_text(percent: Any, amount_minor: int | None, currency: str) -> str:
    return format_percent(percent) if percent is not None else format_amount(amount_minor or 0, currency)


@bp.post("/offers/<int:offer_id>/status")
@merchant_required
def offer_status(offer_id: int) -> Any:
    """Pause, resume or archive an offer."""
    form = ConfirmForm()
    status = request.form.get("status", "")
    if form.validate_on_submit() and status in ("active", "paused", "archived"):
        offers.update_offer(mid(), offer_id, {"status": status})
        flash(f"Offer {status}.", "ok")
    else:
        offers.get_offer(mid(), offer_id)
        abort(400)
    return redirect(request.referrer if _local(request.referrer) else url_for("admin.offers_list"))


def _local(url: str | None) -> bool:
    from partnernet.accounts.views import safe_next

    if not url:
        return False
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.netloc == request.host and safe_next(parts.path, "") != ""


# -- partners ----------------------------------------------------------------------------

@bp.get("/partners")
@merchant_required
def partners_list() -> Any:
    status = request.args.get("status") or None
    q = request.args.get("q") or None
    page = paginate(services.memberships_query(mid(), status, q))
    return render_template("admin/partners.html", page=page, status=status, q=q or "",
                           confirm=ConfirmForm(), invite=InviteForm())


@bp.post("/partners/<int:partner_id>/status")
@merchant_required
def partner_status(partner_id: int) -> Any:
    """Approve, reject or ban a partner in this program (or re-approve)."""
    form = ConfirmForm()
    status = request.form.get("status", "")
    accounts.get_program_partner(mid(), partner_id)
    if not form.validate_on_submit() or status not in ("approved", "rejected", "banned"):
        abort(400)
    partner, _ = accounts.update_partner(mid(), partner_id, {"status": status})
    flash(f"{partner.name}: {status}.", "ok")
    return redirect(request.referrer if _local(request.referrer) else url_for("admin.partners_list"))


@bp.post("/partners/invite")
@merchant_required
def partner_invite() -> Any:
    """Invite a partner by email: a link that lets them set a password and join, approved."""
    from partnernet.portal.services import invite_token

    form = InviteForm()
    if form.validate_on_submit():
        token = invite_token(mid(), form.email.data or "", form.name.data or "")
        link = current_app.config["BASE_URL"] + url_for("portal.join", merchant_id=mid(), invite=token)
        flash(f"Send this invitation link to {form.email.data}: {link}", "ok")
        return redirect(url_for("admin.partners_list"))
    page = paginate(services.memberships_query(mid()))
    return render_template("admin/partners.html", page=page, status=None, q="",
                           confirm=ConfirmForm(), invite=form), 400


@bp.route("/partners/<int:partner_id>", methods=["GET", "POST"])
@merchant_required
def partner_detail(partner_id: int) -> Any:
    partner, membership = accounts.get_program_partner(mid(), partner_id)
    channel = ChannelForm(obj=partner if request.method == "GET" else None)
    override = OverrideForm(prefix="ov")
    offer_rows = list(db.session.scalars(offers.offers_query(mid())))
    override.offer_id.choices = choices((o.id, o.name) for o in offer_rows)
    status = 200
    if request.method == "POST" and request.form.get("action") == "channel":
        if channel.validate_on_submit():
            accounts.update_partner(mid(), partner_id, {"channel_type": channel.channel_type.data})
            flash("Channel type saved.", "ok")
            return redirect(url_for("admin.partner_detail", partner_id=partner_id))
        status = 400
    elif request.method == "POST" and request.form.get("action") == "override":
        if override.validate_on_submit():
            offer = next(o for o in offer_rows if o.id == override.offer_id.data)
            plan = next((p for p in offer.plans if p.event == override.event.data), None)
            key = "percent" if plan is not None and plan.type == "cps" else "amount"
            try:
                data = OverrideIn().load({"partner_id": partner_id, "event": override.event.data,
                                          key: override.rate.data})
                offers.set_override(mid(), offer.id, data)
                flash("Override saved.", "ok")
                return redirect(url_for("admin.partner_detail", partner_id=partner_id))
            except ValidationError as exc:
                msgs = exc.messages if isinstance(exc.messages, dict) else {}
                override.rate.errors = list(override.rate.errors) + _flat(
                    {k: v for k, v in msgs.items() if k in ("percent", "amount")})
                override.event.errors = list(override.event.errors) + _flat(msgs.get("event", []))
            except (PartnernetError, MoneyError) as exc:
                db.session.rollback()
                override.rate.errors = list(override.rate.errors) + [exc.message]
        status = 400
    overrides = list(db.session.scalars(db.select(PlanOverride).where(
        PlanOverride.partner_id == partner_id, PlanOverride.offer_id.in_([o.id for o in offer_rows]))))
    offer_names = {o.id: o.name for o in offer_rows}
    offer_currency = {o.id: o.currency for o in offer_rows}
    from partnernet.commissions.ledger import balance_view

    return render_template("admin/partner.html", partner=partner, membership=membership, channel=channel,
                           balance=balance_view(mid(), partner_id),
                           override=override, overrides=overrides, offer_names=offer_names,
                           offer_currency=offer_currency, confirm=ConfirmForm(),
                           rate_text=_rate_text), status


# -- links and coupons -------------------------------------------------------------------

@bp.route("/links", methods=["GET", "POST"])
@merchant_required
def links_list() -> Any:
    """The program's tracking links and coupon codes; give a partner a coupon code."""
    coupon = CouponForm(prefix="coupon")
    offer_rows = list(db.session.scalars(offers.offers_query(mid())))
    partner_rows = db.session.execute(db.select(Partner.id, Partner.name).join(
        Membership, Membership.partner_id == Partner.id).where(
        Membership.merchant_id == mid(), Membership.offer_id.is_(None),
        Membership.status == "approved").order_by(Partner.name)).all()
    coupon.offer_id.choices = choices((o.id, o.name) for o in offer_rows)
    coupon.partner_id.choices = choices((p.id, p.name) for p in partner_rows)
    status = 200
    if request.method == "POST":
        if coupon.validate_on_submit():
            try:
                made = links.create_coupon(mid(), {"offer_id": coupon.offer_id.data,
                                                   "partner_id": coupon.partner_id.data,
                                                   "code": coupon.code.data or ""})
                flash(f"Coupon {made.code} created.", "ok")
                return redirect(url_for("admin.links_list"))
            except PartnernetError as exc:
                db.session.rollback()
                target = coupon.code if exc.status_code == 409 else coupon.partner_id
                target.errors = list(target.errors) + [exc.message]
        status = 400
    page = paginate(links.links_query(mid()))
    coupons = paginate(links.coupons_query(mid()))
    ids = {r.partner_id for r in page.items} | {c.partner_id for c in coupons.items}
    offer_ids = {r.offer_id for r in page.items} | {c.offer_id for c in coupons.items}
    return render_template("admin/links.html", page=page, coupons=coupons, link_url=links.link_url,
                           coupon=coupon, partner_names=services.names(Partner, ids),
                           offer_names=services.names(Offer, offer_ids)), status


@bp.post("/links/<int:link_id>/status")
@merchant_required
def link_status(link_id: int) -> Any:
    """Disable a link (its redirect stops within seconds) or enable it again."""
    status = request.form.get("status", "")
    links.get_link(mid(), link_id)
    if not ConfirmForm().validate_on_submit() or status not in ("active", "disabled"):
        abort(400)
    try:
        links.set_link_status(mid(), link_id, status)
        flash(f"Link {status}.", "ok")
    except PartnernetError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("admin.links_list"))


# -- conversions and the raw postback log -------------------------------------------------

@bp.get("/conversions")
@merchant_required
def conversions_list() -> Any:
    from partnernet.conversions import services as conversions

    order_id = (request.args.get("order_id") or "").strip() or None
    stmt = conversions.conversions_query(mid(), status=request.args.get("status") or None)
    if order_id:
        stmt = stmt.where(Conversion.order_id == order_id)
    page = paginate(stmt)
    postbacks = paginate(conversions.postbacks_query(mid(), order_id=order_id))
    commissions = conversions.commissions_by_conversion([c.id for c in page.items])
    return render_template("admin/conversions.html", page=page, postbacks=postbacks,
                           commissions=commissions, order_id=order_id or "", fmt=format_amount,
                           partner_names=services.names(Partner, {c.partner_id for c in page.items}))


# -- fraud review, payouts, reports: the features' services --------------------------------

@bp.route("/review", methods=["GET", "POST"])
@merchant_required
def review_queue() -> Any:
    """Held (or other) commissions with their flags and evidence; approve/reject, one or in bulk."""
    review = services.review_service()
    form = ReviewForm()
    if request.method == "POST":
        if review is None or not form.validate_on_submit():
            abort(400)
        ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()]
        if not ids:
            flash("Tick at least one commission.", "error")
            return redirect(url_for("admin.review_queue"))
        done, refused = 0, []
        for commission_id in ids:
            try:
                review.review_commission(mid(), commission_id, form.action.data, form.reason.data,
                                         reviewer_id=current_user.id, via="panel")
                done += 1
            except PartnernetError as exc:
                if exc.status_code == 404:
                    raise
                db.session.rollback()
                refused.append(f"#{commission_id}: {exc.message}")
        flash(f"{done} commission{'s' if done != 1 else ''} {form.action.data}d."
              + (f" Not changed: {'; '.join(refused)}" if refused else ""), "ok" if not refused else "error")
        return redirect(url_for("admin.review_queue", status=request.args.get("status") or "held"))
    status = request.args.get("status") or "held"
    held = paginate(services.commissions_query(mid(), status=status if status != "all" else None))
    evidence = services.review_evidence(held.items)
    return render_template("admin/review.html", held=held, review=review, fmt=format_amount, form=form,
                           status=status, evidence=evidence,
                           partner_names=services.names(Partner, {c.partner_id for c in held.items}))


@bp.get("/payouts")
@merchant_required
def payouts_list() -> Any:
    """Payouts and their transfer status, recent runs, the payout button and the manual CSV."""
    payouts = services.payouts_service()
    page = paginate(payouts.payouts_query(mid(), status=request.args.get("status") or None)) \
        if payouts else None
    ids = {p.partner_id for p in page.items} if page else set()
    runs = services.recent_runs(mid()) if payouts else []
    return render_template("admin/payouts.html", page=page, fmt=format_amount, runs=runs,
                           confirm=ConfirmForm(), partner_names=services.names(Partner, ids))


@bp.post("/payouts/run")
@merchant_required
def payouts_run() -> Any:
    """Pay every partner whose available balance reaches the minimum (one payout each)."""
    payouts = services.payouts_service()
    if payouts is None or not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        run = payouts.create_run(mid(), created_by_id=current_user.id, trigger="panel")
    except PartnernetError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("admin.payouts_list"))
    made = len(payouts.run_payouts(run.id))
    flash(f"Payout run #{run.id}: {made} payout{'s' if made != 1 else ''} created, "
          f"{len(run.skipped or [])} partner{'s' if len(run.skipped or []) != 1 else ''} skipped"
          + (" — it needs a second approver." if run.status != "approved" else "."), "ok")
    return redirect(url_for("admin.payouts_list"))


@bp.post("/payouts/runs/<int:run_id>/approve")
@merchant_required
def payouts_run_approve(run_id: int) -> Any:
    """The second approval of a large run (four eyes)."""
    payouts = services.payouts_service()
    if payouts is None or not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        payouts.approve_run(mid(), run_id, current_user.id)
        flash(f"Run #{run_id} approved.", "ok")
    except PartnernetError as exc:
        if exc.status_code == 404:
            raise
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("admin.payouts_list"))


@bp.post("/payouts/<int:payout_id>/manual")
@merchant_required
def payout_manual(payout_id: int) -> Any:
    """Record a manual payout as paid (with the bank's reference) or as failed."""
    payouts = services.payouts_service()
    if payouts is None or not ConfirmForm().validate_on_submit():
        abort(400)
    outcome = request.form.get("outcome")
    note = (request.form.get("note") or "").strip()
    try:
        if outcome == "paid" and note:
            manual_payouts.mark_manual_paid(mid(), payout_id, note, current_user.id)
        elif outcome == "failed" and note:
            manual_payouts.fail_manual(mid(), payout_id, note)
        else:
            payouts.get_payout(mid(), payout_id)
            flash("Give the payment reference (paid) or the reason (failed).", "error")
            return redirect(url_for("admin.payouts_list"))
    except PartnernetError as exc:
        if exc.status_code == 404:
            raise
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("admin.payouts_list"))
    flash(f"Payout #{payout_id} marked {outcome}.", "ok")
    return redirect(url_for("admin.payouts_list"))


@bp.get("/payouts/manual.csv")
@merchant_required
def payouts_csv() -> Any:
    """The queued manual payouts as a bulk-payment CSV (PayPal or Wise)."""
    payouts = services.payouts_service()
    if payouts is None:
        abort(404)
    fmt = request.args.get("format", "paypal")
    if fmt not in manual_payouts.CSV_FORMATS:
        abort(400)
    return current_app.response_class(
        manual_payouts.export_manual_csv(mid(), fmt), mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=payouts-{fmt}.csv"})


@bp.get("/reports")
@merchant_required
def reports() -> Any:
    """Metrics grouped by day, offer, partner, sub id...; date range, filters and CSV."""
    return render_report(Scope(merchant_id=mid()), "admin/reports.html", "admin.reports")


def render_report(scope: Scope, template: str, endpoint: str) -> Any:
    """A report page (or its CSV) for a merchant's or a partner's scope."""
    from partnernet.reports.services import GROUPS, report_csv

    report, errors = services.panel_report(scope, request.args)
    if report is not None and request.args.get("format") == "csv":
        return current_app.response_class(
            report_csv(report), mimetype="text/csv",
            headers={"Content-Disposition": f"attachment; filename=report-{report.first}-{report.last}.csv"})
    shown = ("clicks", "unique_clicks", "conversions", "conversion_rate", "revenue", "commission", "epc",
             "roas", "currency")
    return render_template(template, report=report, errors=errors, groups=GROUPS, args=request.args,
                           shown=shown, endpoint=endpoint), (200 if report is not None else 400)


# -- settings ----------------------------------------------------------------------------

@bp.route("/settings", methods=["GET", "POST"])
@merchant_required
def settings() -> Any:
    """Postback credentials (rotate), API keys (create, revoke), the integration snippet,
    privacy (click retention, cookieless mode)."""
    from partnernet.privacy import services as privacy

    confirm, key_form, privacy_form = ConfirmForm(), ApiKeyForm(prefix="key"), PrivacyForm(prefix="privacy")
    shown: dict[str, str] = {}
    action = request.form.get("action")
    status = 200
    if request.method == "GET" or action != "privacy":  # other forms' POSTs show the saved values
        current = privacy.privacy_settings(mid())
        privacy_form.click_retention_days.data = current.click_retention_days
        privacy_form.cookieless.data = current.cookieless
    if request.method == "POST":
        if action == "privacy":
            if privacy_form.validate_on_submit():
                try:
                    privacy.update_privacy_settings(
                        mid(), click_retention_days=int(privacy_form.click_retention_days.data or 0),
                        cookieless=bool(privacy_form.cookieless.data), user_id=current_user.id)
                except PartnernetError as exc:
                    db.session.rollback()
                    privacy_form.click_retention_days.errors = [exc.message]
                else:
                    flash("Privacy settings saved.", "ok")
                    return redirect(url_for("admin.settings"))
            status = 400
        elif action == "rotate" and confirm.validate_on_submit():
            shown["postback_token"], shown["postback_secret"] = services.rotate_postback_credentials(
                mid(), current_user.id)
            flash("New postback token and secret: copy them now, they are shown once.", "ok")
        elif action == "new_key" and key_form.validate_on_submit():
            shown["api_key"] = services.create_api_key(mid(), key_form.name.data or "default",
                                                       current_user.id)
            flash("New API key: copy it now, it is shown once.", "ok")
        elif action == "revoke" and confirm.validate_on_submit():
            accounts.revoke_api_key(mid(), request.form.get("key_id", 0, type=int))
            flash("API key revoked.", "ok")
            return redirect(url_for("admin.settings"))
        else:
            status = 400
    merchant = db.session.get(Merchant, mid())
    base = current_app.config["BASE_URL"]
    token = shown.get("postback_token") or f"{merchant.postback_token_prefix}…"  # type: ignore[union-attr]
    snippet = (f"{base}/postback?token={token}&click_id={{click_id}}&order_id={{order_id}}"
               f"&amount={{amount}}&currency={merchant.currency}")  # type: ignore[union-attr]
    return render_template("admin/settings.html", confirm=confirm, key_form=key_form, shown=shown,
                           privacy_form=privacy_form, retention_bounds=(
                               privacy.RETENTION_MIN_DAYS, privacy.RETENTION_MAX_DAYS),
                           keys=services.api_keys(mid()), snippet=snippet, base=base,
                           join_url=base + url_for("portal.join", merchant_id=mid())), status


@bp.route("/settings/rules", methods=["GET", "POST"])
@merchant_required
def rules() -> Any:
    """Fraud rules and thresholds, IP block list, payout minimum, four eyes and weekly schedule."""
    from partnernet.commissions import fraud_settings as commissions
    from partnernet.commissions.fraud import ACTIONS, MODES
    from partnernet.payouts.schemas import SettingsIn

    confirm = ConfirmForm()
    merchant = db.session.get(Merchant, mid())
    fraud_view = commissions.fraud_settings_view(mid())
    payout_view = payout_settings.payout_settings_view(merchant)  # type: ignore[arg-type]
    errors: dict[str, str] = {}
    form = request.form if request.method == "POST" else None
    status = 200
    if request.method == "POST":
        if not confirm.validate_on_submit():
            abort(400)
        if request.form.get("section") == "fraud":
            patch = services.fraud_patch(request.form, fraud_view["rules"])
            try:
                commissions.update_fraud_settings(mid(), patch)
                flash("Fraud rules saved.", "ok")
                return redirect(url_for("admin.rules"))
            except PartnernetError as exc:
                db.session.rollback()
                errors["fraud"] = exc.message
        elif request.form.get("section") == "payouts":
            try:
                data = SettingsIn().load(services.payout_settings_input(request.form))
                payout_settings.update_payout_settings(mid(), data)
                flash("Payout settings saved.", "ok")
                return redirect(url_for("admin.rules"))
            except ValidationError as exc:
                msgs = exc.messages if isinstance(exc.messages, dict) else {}
                errors.update({k: " ".join(_flat(v)) for k, v in msgs.items()})
            except MoneyError as exc:
                db.session.rollback()
                errors["min_payout"] = exc.message
        status = 400
    return render_template("admin/rules.html", confirm=confirm, fraud=fraud_view, payout=payout_view,
                           errors=errors, form=form, actions=ACTIONS, modes=MODES), status
