"""``/api/v1/commissions`` (review), ``/api/v1/partners/{id}/balance``, ``/api/v1/fraud-rules``."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from partnernet.accounts.services import get_program_partner
from partnernet.api.auth import authenticate_request, merchant_id
from partnernet.api.pagination import page_schema, paginate
from partnernet.commissions import fraud_settings, services
from partnernet.commissions.ledger import balance_view
from partnernet.commissions.schemas import (
    CommissionListArgs,
    CommissionOut,
    FraudRulesPatch,
    ReviewIn,
    ShadowReportArgs,
)
from partnernet.conversions.schemas import time_range

blp = Blueprint("commissions_api", __name__, url_prefix="/api/v1",
                description="Commissions, review, balances and fraud rules")
blp.before_request(authenticate_request)


@blp.route("/commissions", methods=["GET"])
@blp.arguments(CommissionListArgs, location="query")
@blp.response(200, page_schema(CommissionOut, "CommissionPage"))
def list_commissions(args: dict[str, Any]) -> dict[str, Any]:
    """The merchant's commissions, newest first, by status, partner, offer, rule and time."""
    since, until = time_range(args)
    stmt = services.commissions_query(merchant_id(), status=args.get("status"),
                                      partner_id=args.get("partner_id"), offer_id=args.get("offer_id"),
                                      rule=args.get("rule"), since=since, until=until)
    page = paginate(stmt, args["page"], args["per_page"])
    page["items"] = [services.commission_view(c) for c in page["items"]]
    return page


@blp.route("/commissions/<int:commission_id>", methods=["GET"])
@blp.response(200, CommissionOut)
def get_commission(commission_id: int) -> dict[str, Any]:
    """One commission with its flags and review."""
    return services.commission_view(services.get_commission(merchant_id(), commission_id))


@blp.route("/commissions/<int:commission_id>/approve", methods=["POST"])
@blp.arguments(ReviewIn)
@blp.response(200, CommissionOut)
def approve(data: dict[str, Any], commission_id: int) -> dict[str, Any]:
    """Approve a pending or held commission (credits the partner's balance)."""
    return services.commission_view(services.approve_commission(
        merchant_id(), commission_id, data.get("reason"), reviewer_id=None, via="api"))


@blp.route("/commissions/<int:commission_id>/reject", methods=["POST"])
@blp.arguments(ReviewIn)
@blp.response(200, CommissionOut)
def reject(data: dict[str, Any], commission_id: int) -> dict[str, Any]:
    """Reject a pending or held commission."""
    return services.commission_view(services.reject_commission(
        merchant_id(), commission_id, data.get("reason"), reviewer_id=None, via="api"))


@blp.route("/partners/<int:partner_id>/balance", methods=["GET"])
@blp.response(200)
def partner_balance(partner_id: int) -> dict[str, Any]:
    """``{currency: {available, pending, held}}`` of a partner in this program."""
    get_program_partner(merchant_id(), partner_id)
    return balance_view(merchant_id(), partner_id)


@blp.route("/fraud-rules", methods=["GET"])
@blp.response(200)
def get_fraud_rules() -> dict[str, Any]:
    """Every fraud rule's settings (defaults filled in), the trusted-partner hold, the block list."""
    return fraud_settings.fraud_settings_view(merchant_id())


@blp.route("/fraud-rules", methods=["PATCH"])
@blp.arguments(FraudRulesPatch)
@blp.response(200)
def patch_fraud_rules(data: dict[str, Any]) -> dict[str, Any]:
    """Change rules (enabled, mode active|shadow, action, threshold), trusted hold, block list."""
    return fraud_settings.update_fraud_settings(merchant_id(), data)


@blp.route("/fraud-rules/shadow-report", methods=["GET"])
@blp.arguments(ShadowReportArgs, location="query")
@blp.response(200)
def shadow_report(args: dict[str, Any]) -> dict[str, Any]:
    """Per rule: how many commissions it would have held or rejected in the last N days."""
    return fraud_settings.shadow_report(merchant_id(), args["days"])
