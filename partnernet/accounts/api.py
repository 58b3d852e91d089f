"""``/api/v1/partners``: the partners of the calling merchant's program."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from partnernet.accounts import services
from partnernet.accounts.models import Partner
from partnernet.accounts.schemas import PartnerIn, PartnerListArgs, PartnerOut, PartnerPatch
from partnernet.api.auth import authenticate_request, merchant_id
from partnernet.api.pagination import PageArgs, page_schema, paginate
from partnernet.offers.models import Membership

blp = Blueprint("partners", __name__, url_prefix="/api/v1/partners",
                description="Partners in the merchant's program")
blp.before_request(authenticate_request)


def partner_view(partner: Partner, membership: Membership) -> dict[str, Any]:
    """A partner as this program sees it: its status is the membership's."""
    return {
        "id": partner.id, "email": partner.email, "name": partner.name,
        "status": membership.status, "channel_type": partner.channel_type,
        "payout_rail": partner.payout_rail, "payouts_enabled": partner.payouts_enabled,
        "postback_url": partner.postback_url, "created_at": membership.created_at,
    }


class PartnerListQuery(PageArgs, PartnerListArgs):
    pass


@blp.route("")
class Partners(MethodView):
    @blp.arguments(PartnerListQuery, location="query")
    @blp.response(200, page_schema(PartnerOut, "PartnerPage"))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List the program's partners, newest first."""
        stmt = select(Membership).options(joinedload(Membership.partner)).where(
            Membership.merchant_id == merchant_id(), Membership.offer_id.is_(None))
        if args.get("status"):
            stmt = stmt.where(Membership.status == args["status"])
        page = paginate(stmt.order_by(Membership.id.desc()), args["page"], args["per_page"])
        page["items"] = [partner_view(m.partner, m) for m in page["items"]]
        return page

    @blp.arguments(PartnerIn)
    @blp.response(201, PartnerOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add a partner, approved in this program."""
        partner, membership = services.create_partner(merchant_id(), **data)
        return partner_view(partner, membership)


@blp.route("/<int:partner_id>")
class PartnerById(MethodView):
    @blp.response(200, PartnerOut)
    def get(self, partner_id: int) -> dict[str, Any]:
        """One partner of the program."""
        return partner_view(*services.get_program_partner(merchant_id(), partner_id))

    @blp.arguments(PartnerPatch)
    @blp.response(200, PartnerOut)
    def patch(self, data: dict[str, Any], partner_id: int) -> dict[str, Any]:
        """Change a partner's status in the program, profile or postback URL."""
        return partner_view(*services.update_partner(merchant_id(), partner_id, data))
