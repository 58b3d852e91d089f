"""``/api/v1/reports``: the metrics report (JSON or CSV), attribution comparison, LTV,
anomaly alerts and budget pacing.

Merchant keys see their program; partner keys get the same report of their own
traffic (optionally one merchant's program with ``merchant_id``).
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, stream_with_context
from flask_smorest import Blueprint

from partnernet.api.auth import authenticate_request, merchant_id
from partnernet.api.pagination import PageArgs, page_schema, paginate
from partnernet.reports import insights, services
from partnernet.reports.metrics import DEFINITIONS
from partnernet.reports.rollup import Scope
from partnernet.reports.schemas import (
    AlertArgs,
    AlertOut,
    AttributionArgs,
    BudgetIn,
    LtvArgs,
    PacingOut,
    ReportArgs,
    ReportOut,
)

blp = Blueprint("reports", __name__, url_prefix="/api/v1/reports",
                description="Reports: " + "; ".join(f"{k}: {v}" for k, v in DEFINITIONS.items()))
blp.before_request(authenticate_request)

FILTERS = ("offer_id", "partner_id", "sub1", "sub2", "sub3", "sub4", "sub5", "country", "channel")


def _scope(args: dict[str, Any]) -> tuple[Scope, dict[str, Any]]:
    """The caller's rows: a merchant's program, or a partner's own traffic."""
    filters = {k: args.get(k) for k in FILTERS}
    if getattr(g, "merchant_id", None) is not None:
        return Scope(merchant_id=int(g.merchant_id)), filters
    filters["partner_id"] = None
    return Scope(merchant_id=args.get("merchant_id"), partner_id=merchant_or_partner()), filters


def merchant_or_partner() -> int:
    """The partner id of a partner key (merchant keys are handled before)."""
    pid = getattr(g, "partner_id", None)
    if pid is None:
        merchant_id()  # raises Forbidden (a merchant's key is scoped before this is asked)
    assert pid is not None
    return int(pid)


@blp.route("", methods=["GET"])
@blp.arguments(ReportArgs, location="query")
@blp.response(200, ReportOut)
@blp.doc(responses={"200": {"content": {"application/json": {"schema": ReportOut},
                                        "text/csv": {"schema": {"type": "string"}}}}})
def get_report(args: dict[str, Any]) -> Any:
    """Metrics grouped by `group_by` for a date range; `format=csv` answers text/csv."""
    scope, filters = _scope(args)
    report = services.build_report(scope, args["group_by"], args["first"], args["to"], filters)
    if args["format"] == "csv":
        name = f"report-{report.first.isoformat()}-{report.last.isoformat()}.csv"
        return Response(stream_with_context(services.report_csv(report)),
                        mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return report_body(report)


def report_body(report: services.Report) -> dict[str, Any]:
    """The JSON answer of a report (before ``ReportOut`` dumps it)."""
    return {"group_by": report.group_by, "from_": report.first, "to": report.last,
            "source": report.source, "rollup_until": report.rollup_until, "items": report.rows}


@blp.route("/attribution", methods=["GET"])
@blp.arguments(AttributionArgs, location="query")
@blp.response(200)
def get_attribution(args: dict[str, Any]) -> Any:
    """Partner credit under last click (paid), first click, linear and position-based 40/20/40."""
    first, last = _range(args)
    result = insights.attribution_comparison(merchant_id(), first, last, args.get("offer_id"))
    result["from"], result["to"] = first.isoformat(), last.isoformat()
    return result


@blp.route("/ltv", methods=["GET"])
@blp.arguments(LtvArgs, location="query")
@blp.response(200)
def get_ltv(args: dict[str, Any]) -> Any:
    """Customers acquired per partner or offer, repeat rate, revenue per customer, CPA targets."""
    first, last = _range(args)
    result = insights.ltv_report(merchant_id(), args["group_by"], first, last,
                                 args.get("target_ratio"))
    result["from"], result["to"] = first.isoformat(), last.isoformat()
    return result


class AlertQuery(PageArgs, AlertArgs):
    pass


@blp.route("/alerts", methods=["GET"])
@blp.arguments(AlertQuery, location="query")
@blp.response(200, page_schema(AlertOut, "AlertPage"))
def list_alerts(args: dict[str, Any]) -> Any:
    """Anomaly alerts (click floods, conversion rate drops, refund spikes), newest first."""
    return paginate(insights.alerts_query(merchant_id(), args["status"]), args["page"],
                    args["per_page"])


@blp.route("/alerts/<int:alert_id>/dismiss", methods=["POST"])
@blp.response(200, AlertOut)
def dismiss_alert(alert_id: int) -> Any:
    """Mark an alert as seen."""
    return insights.dismiss_alert(merchant_id(), alert_id)


@blp.route("/budgets/<int:offer_id>", methods=["GET"])
@blp.response(200, PacingOut)
def get_pacing(offer_id: int) -> Any:
    """The offer's monthly budget: spend to date, projection, and whether it is on track."""
    return insights.pacing(merchant_id(), offer_id)


@blp.route("/budgets/<int:offer_id>", methods=["PUT"])
@blp.arguments(BudgetIn)
@blp.response(200, PacingOut)
def put_budget(data: dict[str, Any], offer_id: int) -> Any:
    """Set the offer's monthly commission budget (in the offer's currency)."""
    return insights.set_budget(merchant_id(), offer_id, data["amount"], data.get("currency"))


def _range(args: dict[str, Any]) -> Any:
    first, last = args.get("from_"), args.get("to")
    if first is None or last is None:
        d_first, d_last = services.default_range()
        first, last = first or d_first, last or d_last
    return first, last
