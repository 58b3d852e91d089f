"""Creatives pages: the merchant's library, split tests, fatigue list and settings (/admin/creatives)
and the partner's creatives with ready-made snippets (/portal/creatives).

Every URL id is an offer or a link, looked up inside the logged-in merchant or partner
before anything else (another tenant's id answers 404); creative and variant ids travel in
the (CSRF-protected) form body and are looked up inside that offer.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from partnernet.admin.views import merchant_required, mid
from partnernet.creatives import panels, services
from partnernet.creatives.models import CREATIVE_KINDS, Creative
from partnernet.creatives.settings import get_settings, update_settings
from partnernet.errors import PartnernetError
from partnernet.extensions import db
from partnernet.offers.services import get_offer, offers_query
from partnernet.portal.views import partner_required, pid

bp = Blueprint("creatives_pages", __name__)

KIND_LABELS = {"banner": "Banner", "text_link": "Text link", "email": "Email copy",
               "social": "Social caption"}
#: Status changes a merchant may make from the library: approve, pause, archive.
STATUS_ACTIONS = {"approve": "active", "pause": "paused", "archive": "archived"}


def _error_details(exc: PartnernetError) -> list[str]:
    details = exc.details or {}
    return [f"{k}: {v}" for k, v in details.items()] if isinstance(details, dict) else []


# -- admin: overview and library -----------------------------------------------------------------

@bp.get("/admin/creatives")
@merchant_required
def admin_index() -> Any:
    """The merchant's offers with their creative counts, and the creatives report."""
    offers = list(db.session.scalars(offers_query(mid()).limit(200)))
    counts = dict(db.session.execute(select(Creative.offer_id, func.count()).where(
        Creative.merchant_id == mid(), Creative.status != "archived").group_by(Creative.offer_id)).all())
    pending = dict(db.session.execute(select(Creative.offer_id, func.count()).where(
        Creative.merchant_id == mid(), Creative.status == "pending").group_by(Creative.offer_id)).all())
    report = services.creative_report(mid(), None, None, None)
    return render_template("creatives/admin_index.html", offers=offers, counts=counts, pending=pending,
                           report=[r for r in report if r["impressions"] or r["clicks"]])


@bp.route("/admin/creatives/offers/<int:offer_id>", methods=["GET", "POST"])
@merchant_required
def admin_library(offer_id: int) -> Any:
    """One offer's creatives: list, upload (banner image or text), approve / pause / archive."""
    offer = get_offer(mid(), offer_id)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        data = {"kind": request.form.get("kind", ""), "name": request.form.get("name", "").strip(),
                "body": request.form.get("body", "").strip() or None,
                "status": "active" if request.form.get("publish") else "pending"}
        if data["kind"] not in CREATIVE_KINDS:
            errors.append("Choose a kind of creative.")
        if not data["name"] or len(data["name"]) > 200:
            errors.append("Give the creative a name (up to 200 characters).")
        if data["body"] and len(data["body"]) > 20_000:
            errors.append("The text is too long (20,000 characters at most).")
        image = None
        upload = request.files.get("image")
        if upload is not None and upload.filename:
            with upload.stream:
                image = upload.read(services.MAX_IMAGE_BYTES + 1)
        if not errors:
            try:
                creative = services.create_creative(mid(), offer.id, data, image)
            except PartnernetError as exc:
                db.session.rollback()
                errors = [exc.message, *_error_details(exc)]
                status = exc.status_code if exc.status_code < 500 else 400
            else:
                flash(f"Creative “{creative.name}” saved"
                      + (" and live for partners." if creative.status == "active" else
                         ": approve it to show it to partners."), "ok")
                return redirect(url_for("creatives_pages.admin_library", offer_id=offer.id))
        else:
            status = 400
    creatives = list(db.session.scalars(services.creatives_query(mid(), offer.id).limit(200)))
    return render_template("creatives/admin_library.html", offer=offer, creatives=creatives, errors=errors,
                           kinds=KIND_LABELS, form=request.form), status


@bp.post("/admin/creatives/offers/<int:offer_id>/status")
@merchant_required
def admin_creative_status(offer_id: int) -> Any:
    """Approve, pause or archive one creative of the offer (its id in the form)."""
    offer = get_offer(mid(), offer_id)
    creative = db.session.get(Creative, request.form.get("creative_id", 0, type=int) or 0)
    if creative is None or creative.merchant_id != mid() or creative.offer_id != offer.id:
        abort(404)
    new = STATUS_ACTIONS.get(request.form.get("action", ""))
    if new is None:
        abort(400)
    services.update_creative(mid(), creative.id, {"status": new})
    flash(f"“{creative.name}” is now {new}.", "ok")
    return redirect(url_for("creatives_pages.admin_library", offer_id=offer.id))


# -- admin: split test ---------------------------------------------------------------------------

@bp.route("/admin/creatives/offers/<int:offer_id>/split", methods=["GET", "POST"])
@merchant_required
def admin_split(offer_id: int) -> Any:
    """Variants with weights; CR with its 95% interval, EPC and the verdict; start a new test."""
    offer = get_offer(mid(), offer_id)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        try:
            variants = panels.parse_variant_lines(request.form.get("variants", ""))
            services.set_variants(mid(), offer.id, variants)
        except PartnernetError as exc:
            db.session.rollback()
            errors = [exc.message, *_error_details(exc)]
            status = 422
        else:
            flash("Split test started: each visitor keeps the variant they first saw.", "ok")
            return redirect(url_for("creatives_pages.admin_split", offer_id=offer.id))
    report = services.variant_report(mid(), offer.id)
    return render_template("creatives/admin_split.html", offer=offer, report=report, errors=errors,
                           text=request.form.get("variants", ""), hosts=get_settings(mid()).variant_hosts,
                           home=services.registrable_host(_host(offer.landing_url))), status


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""


@bp.post("/admin/creatives/offers/<int:offer_id>/split/end")
@merchant_required
def admin_split_end(offer_id: int) -> Any:
    """End the test keeping the chosen variant as the offer's landing URL."""
    offer = get_offer(mid(), offer_id)
    winner_id = request.form.get("winner_id", 0, type=int) or 0
    try:
        winner = services.end_test(mid(), offer.id, winner_id)
    except PartnernetError as exc:
        db.session.rollback()
        if exc.status_code == 404:
            abort(404)
        raise
    flash(f"Test ended: “{winner.name}” is now the landing page.", "ok")
    return redirect(url_for("creatives_pages.admin_split", offer_id=offer.id))


# -- admin: fatigue and settings -------------------------------------------------------------------

@bp.get("/admin/creatives/fatigue")
@merchant_required
def admin_fatigue() -> Any:
    """Creatives flagged by the daily fatigue job, each with its CTR curve."""
    offers = {o.id: o for o in db.session.scalars(offers_query(mid()).limit(500))}
    return render_template("creatives/admin_fatigue.html", rows=panels.fatigued_creatives(mid()),
                           offers=offers, settings=get_settings(mid()))


@bp.route("/admin/creatives/settings", methods=["GET", "POST"])
@merchant_required
def admin_settings() -> Any:
    """Fatigue threshold, refresh interval and the variant-host allowlist."""
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        data: dict[str, Any] = {"variant_hosts": request.form.get("variant_hosts", "")}
        for name, low, high in (("fatigue_drop_percent", 1, 99), ("refresh_days", 1, 365)):
            raw = request.form.get(name, "").strip()
            if not raw.isdigit() or not low <= int(raw) <= high:
                errors.append(f"{name.replace('_', ' ')}: a whole number from {low} to {high}.")
            else:
                data[name] = int(raw)
        if not errors:
            try:
                update_settings(mid(), data)
            except PartnernetError as exc:
                db.session.rollback()
                errors = [exc.message, *_error_details(exc)]
            else:
                flash("Creative settings saved.", "ok")
                return redirect(url_for("creatives_pages.admin_settings"))
        status = 400
    return render_template("creatives/admin_settings.html", settings=get_settings(mid()), errors=errors,
                           form=request.form), status


# -- portal ----------------------------------------------------------------------------------------

@bp.get("/portal/creatives")
@partner_required
def portal_index() -> Any:
    """Approved creatives of the partner's offers with snippets embedding the partner's own link."""
    return render_template("creatives/portal.html", offers=panels.portal_creatives(pid()), kinds=KIND_LABELS,
                           one_link=None)


@bp.get("/portal/creatives/links/<int:link_id>")
@partner_required
def portal_link(link_id: int) -> Any:
    """The same, for one of the partner's links (its sub ids and UTM travel with the snippets)."""
    from partnernet.portal.services import partner_link

    link = partner_link(pid(), link_id)
    if link is None:
        abort(404)
    return render_template("creatives/portal.html", offers=panels.portal_creatives(pid(), link),
                           kinds=KIND_LABELS, one_link=link)
