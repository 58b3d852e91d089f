"""``/api/v1/links`` and ``/api/v1/coupons``: tracking links and coupon codes of partners."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from partnernet.api.auth import authenticate_request, merchant_id
from partnernet.api.pagination import PageArgs, page_schema, paginate
from partnernet.links import services
from partnernet.links.schemas import (
    CouponIn,
    CouponListArgs,
    CouponOut,
    LinkIn,
    LinkListArgs,
    LinkOut,
)

blp = Blueprint("links", __name__, url_prefix="/api/v1",
                description="Tracking links and coupon codes")
blp.before_request(authenticate_request)


class LinkListQuery(PageArgs, LinkListArgs):
    pass


class CouponListQuery(PageArgs, CouponListArgs):
    pass


@blp.route("/links")
class Links(MethodView):
    @blp.arguments(LinkListQuery, location="query")
    @blp.response(200, page_schema(LinkOut, "LinkPage"))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List the merchant's tracking links, newest first."""
        stmt = services.links_query(merchant_id(), partner_id=args.get("partner_id"),
                                    offer_id=args.get("offer_id"), status=args.get("status"))
        return paginate(stmt, args["page"], args["per_page"])

    @blp.arguments(LinkIn)
    @blp.response(201, LinkOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Give a partner a tracking link for an offer; ``url`` is the full tracking URL."""
        return services.create_link(merchant_id(), data)


@blp.route("/links/<int:link_id>", methods=["GET"])
@blp.response(200, LinkOut)
def get_link(link_id: int) -> Any:
    """One tracking link."""
    return services.get_link(merchant_id(), link_id)


@blp.route("/links/<int:link_id>/disable", methods=["POST"])
@blp.response(200, LinkOut)
def disable_link(link_id: int) -> Any:
    """Disable a link: its redirect answers 404 from now on."""
    return services.set_link_status(merchant_id(), link_id, "disabled")


@blp.route("/links/<int:link_id>/enable", methods=["POST"])
@blp.response(200, LinkOut)
def enable_link(link_id: int) -> Any:
    """Enable a disabled link again."""
    return services.set_link_status(merchant_id(), link_id, "active")


@blp.route("/coupons")
class Coupons(MethodView):
    @blp.arguments(CouponListQuery, location="query")
    @blp.response(200, page_schema(CouponOut, "CouponPage"))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List the merchant's coupon codes, newest first."""
        stmt = services.coupons_query(merchant_id(), partner_id=args.get("partner_id"),
                                      offer_id=args.get("offer_id"))
        return paginate(stmt, args["page"], args["per_page"])

    @blp.arguments(CouponIn)
    @blp.response(201, CouponOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Credit a coupon code to a partner; 409 ``coupon_taken`` if the program has it."""
        return services.create_coupon(merchant_id(), data)


@blp.route("/coupons/<int:coupon_id>", methods=["GET"])
@blp.response(200, CouponOut)
def get_coupon(coupon_id: int) -> Any:
    """One coupon."""
    return services.get_coupon(merchant_id(), coupon_id)


@blp.route("/coupons/<int:coupon_id>/disable", methods=["POST"])
@blp.response(200, CouponOut)
def disable_coupon(coupon_id: int) -> Any:
    """Disable a coupon: postbacks with it are no longer attributed by it."""
    return services.set_coupon_status(merchant_id(), coupon_id, "disabled")


@blp.route("/coupons/<int:coupon_id>/enable", methods=["POST"])
@blp.response(200, CouponOut)
def enable_coupon(coupon_id: int) -> Any:
    """Enable a disabled coupon again."""
    return services.set_coupon_status(merchant_id(), coupon_id, "active")
