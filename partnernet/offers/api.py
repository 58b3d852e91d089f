"""``/api/v1/offers``: offers with plans, and per-partner overrides."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from partnernet.api.auth import authenticate_request, merchant_id
from partnernet.api.pagination import PageArgs, page_schema, paginate
from partnernet.offers import services
from partnernet.offers.schemas import (
    OfferIn,
    OfferListArgs,
    OfferOut,
    OfferPatch,
    OverrideIn,
    OverrideOut,
)

blp = Blueprint("offers", __name__, url_prefix="/api/v1/offers",
                description="Offers and their commission plans")
blp.before_request(authenticate_request)


class OfferListQuery(PageArgs, OfferListArgs):
    pass


@blp.route("")
class Offers(MethodView):
    @blp.arguments(OfferListQuery, location="query")
    @blp.response(200, page_schema(OfferOut, "OfferPage"))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List the merchant's offers, newest first."""
        stmt = services.offers_query(merchant_id(), args.get("status"))
        return paginate(stmt, args["page"], args["per_page"])

    @blp.arguments(OfferIn)
    @blp.response(201, OfferOut)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an offer with its commission plans."""
        return services.create_offer(merchant_id(), data)


@blp.route("/<int:offer_id>")
class OfferById(MethodView):
    @blp.response(200, OfferOut)
    def get(self, offer_id: int) -> Any:
        """One offer."""
        return services.get_offer(merchant_id(), offer_id)

    @blp.arguments(OfferPatch(partial=True))
    @blp.response(200, OfferOut)
    def patch(self, data: dict[str, Any], offer_id: int) -> Any:
        """Change an offer; ``plans`` replaces its plans."""
        return services.update_offer(merchant_id(), offer_id, data)


@blp.route("/<int:offer_id>/overrides", methods=["POST"])
@blp.arguments(OverrideIn)
@blp.response(201, OverrideOut)
def create_override(data: dict[str, Any], offer_id: int) -> Any:
    """Give one partner its own rate for an event (beats tiers and the plan)."""
    return services.set_override(merchant_id(), offer_id, data)
