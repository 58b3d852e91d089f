"""``/api/v1/privacy/settings``: the merchant's click retention and cookieless mode.

The same settings as the admin panel's Settings page, for merchants who configure their
program from scripts; changes are audited the same way (an API key carries no user).
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from partnernet.api.auth import authenticate_request, merchant_id
from partnernet.privacy import services

blp = Blueprint("privacy", __name__, url_prefix="/api/v1", description="Privacy settings")
blp.before_request(authenticate_request)


class PrivacySettingsOut(Schema):
    click_retention_days = fields.Integer()
    cookieless = fields.Boolean()


class PrivacySettingsIn(Schema):
    click_retention_days = fields.Integer(strict=True, validate=validate.Range(
        services.RETENTION_MIN_DAYS, services.RETENTION_MAX_DAYS))
    cookieless = fields.Boolean()


@blp.route("/privacy/settings")
class PrivacySettings(MethodView):
    @blp.response(200, PrivacySettingsOut)
    def get(self) -> Any:
        """How long the merchant's clicks are kept (days), and whether tracking is cookieless."""
        return services.privacy_settings(merchant_id())

    @blp.arguments(PrivacySettingsIn)
    @blp.response(200, PrivacySettingsOut)
    def put(self, data: dict[str, Any]) -> Any:
        """Change them (fields left out stay as they are). A shorter retention deletes older
        clicks at the next hourly ``click-partitions`` job; cookieless applies to the next
        redirect."""
        current = services.privacy_settings(merchant_id())
        return services.update_privacy_settings(
            merchant_id(),
            click_retention_days=data.get("click_retention_days", current.click_retention_days),
            cookieless=data.get("cookieless", current.cookieless))
