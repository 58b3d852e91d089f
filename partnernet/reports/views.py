"""Admin panel pages of the reports: anomaly alerts (acknowledge) and budget pacing.

Under /admin/reports/..., for a merchant's staff only; every query is scoped by the
logged-in merchant, so another merchant's alert or offer is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, IntegerField, StringField
from wtforms.validators import DataRequired, Length

from partnernet.accounts.models import Merchant, Partner
from partnernet.admin.views import merchant_required, mid
from partnernet.errors import PartnernetError
from partnernet.extensions import db
from partnernet.money import MoneyError
from partnernet.offers.models import Offer
from partnernet.reports import insights

bp = Blueprint("report_pages", __name__, url_prefix="/admin/reports")
PER_PAGE = 25


class AcknowledgeForm(FlaskForm):
    """Acknowledge one alert (its id in the form: CSRF-checked like every panel POST)."""

    alert_id = IntegerField(validators=[DataRequired()])


class BudgetForm(FlaskForm):
    """Set an offer's monthly commission budget, in the offer's currency."""

    offer_id = HiddenField(validators=[DataRequired()])
    amount = StringField("Monthly budget", validators=[DataRequired(), Length(max=20)])


@bp.context_processor
def _merchant() -> dict[str, Any]:
    if current_user.is_authenticated and current_user.merchant_id:
        return {"merchant": db.session.get(Merchant, current_user.merchant_id)}
    return {}


def _names(model: Any, ids: set[int]) -> dict[int, str]:
    """Names by id of the partners or offers of the merchant's own alerts (offers scoped)."""
    if not ids:
        return {}
    stmt = select(model.id, model.name).where(model.id.in_(ids))
    if model is Offer:
        stmt = stmt.where(Offer.merchant_id == mid())
    return {int(i): n for i, n in db.session.execute(stmt).all()}


@bp.get("/alerts")
@merchant_required
def alerts() -> Any:
    """The merchant's anomaly alerts, newest first: subject, metric, actual vs baseline, day."""
    status = request.args.get("status") or "open"
    if status not in ("open", "dismissed", "all"):
        status = "open"
    page = db.paginate(insights.alerts_query(mid(), status),
                       page=max(request.args.get("page", 1, type=int) or 1, 1),
                       per_page=PER_PAGE, error_out=False)
    partners = _names(Partner, {a.subject_id for a in page.items if a.subject == "partner"})
    offers = _names(Offer, {a.subject_id for a in page.items if a.subject == "offer"})
    rows = [{"alert": a, "name": (partners if a.subject == "partner" else offers).get(a.subject_id),
             **insights.alert_figures(a)} for a in page.items]
    return render_template("admin/reports_alerts.html", page=page, rows=rows, status=status,
                           form=AcknowledgeForm())


@bp.post("/alerts/acknowledge")
@merchant_required
def acknowledge() -> Any:
    """Mark one of the merchant's alerts as seen (another merchant's alert: 404)."""
    form = AcknowledgeForm()
    if not form.validate_on_submit():
        abort(400)
    insights.dismiss_alert(mid(), int(form.alert_id.data))
    flash("Alert acknowledged.", "ok")
    return redirect(url_for("report_pages.alerts", status=request.args.get("status") or "open"))


@bp.get("/budgets")
@merchant_required
def budgets() -> Any:
    """Budget pacing per offer: budget, spend this month, projection to month end, on track."""
    return render_template("admin/reports_budgets.html", rows=insights.pacing_overview(mid()),
                           form=BudgetForm())


@bp.post("/budgets")
@merchant_required
def budget_set() -> Any:
    """Set an offer's monthly budget (another merchant's offer: 404)."""
    form = BudgetForm()
    if not form.validate_on_submit() or not str(form.offer_id.data).isdigit():
        abort(400)
    try:
        insights.set_budget(mid(), int(form.offer_id.data), form.amount.data.strip())
    except MoneyError as exc:
        flash(exc.message, "error")
    except PartnernetError as exc:
        if exc.status_code == 404:
            raise
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash("Budget saved.", "ok")
    return redirect(url_for("report_pages.budgets"))
