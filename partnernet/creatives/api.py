"""``/api/v1``: an offer's creatives, its landing split test, and the creatives report."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from partnernet.api.auth import authenticate_request, merchant_id
from partnernet.api.pagination import PageArgs, page_schema, paginate
from partnernet.creatives import services
from partnernet.creatives.report import creative_stats
from partnernet.creatives.schemas import (
    CreativeIn,
    CreativeListArgs,
    CreativeOut,
    CreativePatch,
    CreativeReportOut,
    CreativeSettingsIn,
    CreativeSettingsOut,
    CreativeStatsOut,
    EndTestIn,
    ReportArgs,
    VariantOut,
    VariantReportOut,
    VariantsIn,
)
from partnernet.creatives.settings import get_settings, update_settings

blp = Blueprint("creatives_api", __name__, url_prefix="/api/v1",
                description="Creatives, impressions and landing-page split tests")
blp.before_request(authenticate_request)


class CreativeListQuery(PageArgs, CreativeListArgs):
    pass


@blp.route("/offers/<int:offer_id>/creatives")
class OfferCreatives(MethodView):
    @blp.arguments(CreativeListQuery, location="query")
    @blp.response(200, page_schema(CreativeOut, "CreativePage"))
    def get(self, args: dict[str, Any], offer_id: int) -> dict[str, Any]:
        """List the offer's creatives, newest first."""
        stmt = services.creatives_query(merchant_id(), offer_id, args.get("status"))
        return paginate(stmt, args["page"], args["per_page"])

    @blp.response(201, CreativeOut)
    def post(self, offer_id: int) -> Any:
        """Add a creative: JSON for text kinds, multipart (fields + file ``image``) for banners."""
        if request.mimetype == "multipart/form-data":
            data = CreativeIn().load(request.form.to_dict())
            upload = request.files.get("image")
            image = None
            if upload is not None:
                with upload.stream:  # a large upload is a temporary file: close it now
                    image = upload.read(services.MAX_IMAGE_BYTES + 1)
        else:
            data = CreativeIn().load(request.get_json(silent=True) or {})
            image = None
        return services.create_creative(merchant_id(), offer_id, data, image)


@blp.route("/creatives/<int:creative_id>")
class CreativeItem(MethodView):
    @blp.response(200, CreativeOut)
    def get(self, creative_id: int) -> Any:
        """One creative."""
        return services.get_creative(merchant_id(), creative_id)

    @blp.arguments(CreativePatch)
    @blp.response(200, CreativeOut)
    def patch(self, data: dict[str, Any], creative_id: int) -> Any:
        """Change a creative's name, body, status or dates."""
        return services.update_creative(merchant_id(), creative_id, data)


@blp.route("/creatives/report")
class CreativeReport(MethodView):
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, CreativeReportOut)
    def get(self, args: dict[str, Any]) -> Any:
        """Impressions, CTR (clicks ÷ unique impressions), commission and CPM (commission per
        1,000 unique impressions) by creative; ``from``/``to`` bound the events' times."""
        rows = creative_stats(merchant_id(), args.get("offer_id"), args.get("from_"), args.get("to"))
        return {"items": rows}


@blp.route("/creatives/<int:creative_id>/stats")
class CreativeStats(MethodView):
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, CreativeStatsOut)
    def get(self, args: dict[str, Any], creative_id: int) -> Any:
        """One creative's impressions, clicks, CTR, commission and CPM."""
        return creative_stats(merchant_id(), None, args.get("from_"), args.get("to"), creative_id)[0]


@blp.route("/creatives/settings")
class CreativeSettingsItem(MethodView):
    @blp.response(200, CreativeSettingsOut)
    def get(self) -> Any:
        """Fatigue threshold (percent), refresh interval (days) and the variant-host allowlist."""
        return get_settings(merchant_id()).view()

    @blp.arguments(CreativeSettingsIn)
    @blp.response(200, CreativeSettingsOut)
    def put(self, data: dict[str, Any]) -> Any:
        """Change the creative settings (fields left out keep their value)."""
        return update_settings(merchant_id(), data).view()


@blp.route("/offers/<int:offer_id>/variants")
class OfferVariants(MethodView):
    @blp.response(200, VariantReportOut)
    def get(self, offer_id: int) -> Any:
        """The split test: CR with 95% interval and EPC per variant, and a verdict."""
        return services.variant_report(merchant_id(), offer_id)

    @blp.arguments(VariantsIn)
    @blp.response(201, VariantOut(many=True))
    def put(self, data: dict[str, Any], offer_id: int) -> Any:
        """Start (or replace) the offer's landing-page split test."""
        return services.set_variants(merchant_id(), offer_id, data["variants"])


@blp.route("/offers/<int:offer_id>/variants/end")
class EndVariants(MethodView):
    @blp.arguments(EndTestIn)
    @blp.response(200, VariantOut)
    def post(self, data: dict[str, Any], offer_id: int) -> Any:
        """End the split test keeping the winner as the offer's landing URL."""
        return services.end_test(merchant_id(), offer_id, data["winner_id"])
