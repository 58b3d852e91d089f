"""``/api/v1/conversions``, ``/api/v1/postbacks`` (the raw log) and partner postback deliveries."""

from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from partnernet.accounts.services import get_program_partner
from partnernet.api.auth import authenticate_request, merchant_id
from partnernet.api.pagination import page_schema, paginate
from partnernet.commissions.services import commission_view
from partnernet.conversions import outgoing, services
from partnernet.conversions.schemas import (
    ConversionListArgs,
    ConversionOut,
    DeliveryListArgs,
    DeliveryOut,
    PostbackListArgs,
    PostbackOut,
    SendTestIn,
    time_range,
)
from partnernet.errors import ValidationFailed

blp = Blueprint("conversions_api", __name__, url_prefix="/api/v1",
                description="Conversions, the raw postback log, partner postbacks")
blp.before_request(authenticate_request)


@blp.route("/conversions", methods=["GET"])
@blp.arguments(ConversionListArgs, location="query")
@blp.response(200, page_schema(ConversionOut, "ConversionPage"))
def list_conversions(args: dict[str, Any]) -> dict[str, Any]:
    """The merchant's conversions, newest first, by status, partner and time."""
    start, end = time_range(args)
    stmt = services.conversions_query(merchant_id(), status=args.get("status"),
                                      partner_id=args.get("partner_id"), start=start, end=end)
    page = paginate(stmt, args["page"], args["per_page"])
    commissions = services.commissions_by_conversion([c.id for c in page["items"]])
    for conversion in page["items"]:
        commission = commissions.get(conversion.id)
        conversion.commission = commission_view(commission) if commission else None
    return page


@blp.route("/postbacks", methods=["GET"])
@blp.arguments(PostbackListArgs, location="query")
@blp.response(200, page_schema(PostbackOut, "PostbackPage"))
def list_postbacks(args: dict[str, Any]) -> dict[str, Any]:
    """The raw postback log, newest first: search by order_id, outcome, time."""
    start, end = time_range(args)
    stmt = services.postbacks_query(merchant_id(), order_id=args.get("order_id"),
                                    outcome=args.get("outcome"), start=start, end=end)
    return paginate(stmt, args["page"], args["per_page"])


def _with_attempts(deliveries: list[Any]) -> list[Any]:
    logs = outgoing.attempts_of([d.id for d in deliveries])
    for delivery in deliveries:
        delivery.attempt_log = logs[delivery.id]
    return deliveries


@blp.route("/partner-postbacks", methods=["GET"])
@blp.arguments(DeliveryListArgs, location="query")
@blp.response(200, page_schema(DeliveryOut, "PartnerPostbackPage"))
def list_partner_postbacks(args: dict[str, Any]) -> dict[str, Any]:
    """Outgoing partner postbacks with each attempt: a partner key sees its own, a merchant
    key those of its program's commissions."""
    if getattr(g, "partner_id", None) is not None:
        stmt = outgoing.deliveries_query(partner_id=int(g.partner_id), status=args.get("status"))
    else:
        stmt = outgoing.deliveries_query(merchant_id=merchant_id(), partner_id=args.get("partner_id"),
                                         status=args.get("status"))
    page = paginate(stmt, args["page"], args["per_page"])
    page["items"] = _with_attempts(page["items"])
    return page


@blp.route("/partner-postbacks/test", methods=["POST"])
@blp.arguments(SendTestIn)
@blp.response(201, DeliveryOut)
def send_test_postback(data: dict[str, Any]) -> Any:
    """Call the partner's postback URL once now with sample values; answers the attempt."""
    if getattr(g, "partner_id", None) is not None:
        delivery = outgoing.send_test(int(g.partner_id))
    else:
        mid = merchant_id()
        if not data.get("partner_id"):
            raise ValidationFailed(details={"fields": {"partner_id": ["Required with a merchant key."]}})
        partner, _ = get_program_partner(mid, data["partner_id"])
        delivery = outgoing.send_test(partner.id, merchant_id=mid)
    return _with_attempts([delivery])[0]
