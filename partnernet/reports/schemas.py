"""Query arguments and answers of ``/api/v1/reports``."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from partnernet.api.fields import Currency, DecimalText
from partnernet.reports.services import GROUPS

CHANNELS = ("affiliate_site", "influencer", "email", "social", "coupon_site", "search",
            "display", "ctv", "retail_media", "other")


class ReportArgs(Schema):
    group_by = fields.String(load_default="day", metadata={
        "description": "Comma list of day, week, month, offer, partner, channel, sub1..sub5, "
                       "country. sub2..sub5 and country are not in the rollup tables: such "
                       "reports (and filters on them) aggregate the raw clicks and "
                       "conversions, which is slower on large ranges."})
    from_ = fields.Date(data_key="from", load_default=None,
                        metadata={"description": "First day (UTC), default 29 days before to"})
    to = fields.Date(load_default=None, metadata={"description": "Last day (UTC), included"})
    offer_id = fields.Integer(load_default=None)
    partner_id = fields.Integer(load_default=None)
    merchant_id = fields.Integer(load_default=None, metadata={
        "description": "Partner keys only: one merchant's program"})
    sub1 = fields.String(load_default=None, validate=validate.Length(max=255))
    sub2 = fields.String(load_default=None, validate=validate.Length(max=255))
    sub3 = fields.String(load_default=None, validate=validate.Length(max=255))
    sub4 = fields.String(load_default=None, validate=validate.Length(max=255))
    sub5 = fields.String(load_default=None, validate=validate.Length(max=255))
    country = fields.String(load_default=None, validate=validate.Length(equal=2))
    channel = fields.String(load_default=None, validate=validate.OneOf(CHANNELS))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))

    @validates("group_by")
    def _known_groups(self, value: str, **_: Any) -> None:
        names = [g.strip() for g in value.split(",") if g.strip()]
        unknown = [g for g in names if g not in GROUPS]
        if not names or unknown:
            raise ValidationError(f"Use a comma list of {', '.join(GROUPS)}.")
        if len(names) != len(set(names)):
            raise ValidationError("A grouping is repeated.")

    @post_load
    def _split(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["group_by"] = [g.strip() for g in data["group_by"].split(",") if g.strip()]
        data["first"] = data.pop("from_", None)
        if data.get("country") is not None:
            data["country"] = data["country"].upper()  # clicks store ISO codes upper-case
        return data


class _Rows(fields.List):
    """``items``: the report's rows are plain dicts of JSON values already (ints, decimal
    strings, null); they go out as they are instead of being copied one by one (a list of
    dicts in the OpenAPI document all the same)."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return value


class ReportOut(Schema):
    group_by = fields.List(fields.String())
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    source = fields.String(metadata={"description": "rollup or raw"})
    rollup_until = fields.DateTime(allow_none=True, metadata={
        "description": "Rollup rows include clicks up to this time"})
    items = _Rows(fields.Dict(), metadata={
        "description": "One row per group and currency: the group columns, then currency, "
                       "clicks, unique_clicks, bot_clicks, conversions, sales, leads, "
                       "conversion_rate, revenue, refunds, refunded_conversions, commission, "
                       "epc, revenue_per_click, cpa, cpl, roas, reversal_rate, held, rejected"})


class AttributionArgs(Schema):
    from_ = fields.Date(data_key="from", load_default=None)
    to = fields.Date(load_default=None)
    offer_id = fields.Integer(load_default=None)


class LtvArgs(Schema):
    group_by = fields.String(load_default="partner", validate=validate.OneOf(("partner", "offer")))
    from_ = fields.Date(data_key="from", load_default=None)
    to = fields.Date(load_default=None)
    target_ratio = DecimalText(load_default=None, metadata={
        "description": "LTV : CAC target (default 3): acceptable CPA = LTV ÷ target"})

    @validates("target_ratio")
    def _positive(self, value: Any, **_: Any) -> None:
        if value is not None and not (0 < value <= 1000):
            raise ValidationError("Give a ratio above 0, like 3.")


class AlertArgs(Schema):
    status = fields.String(load_default="open", validate=validate.OneOf(("open", "dismissed",
                                                                         "all")))


class AlertOut(Schema):
    id = fields.Integer()
    subject = fields.String()
    subject_id = fields.Integer()
    kind = fields.String()
    day = fields.Date()
    observed = fields.String()
    baseline = fields.String()
    message = fields.String()
    status = fields.String()
    created_at = fields.DateTime()


class BudgetIn(Schema):
    amount = DecimalText(required=True)
    currency = Currency(load_default=None)


class PacingOut(Schema):
    offer_id = fields.Integer()
    month = fields.String()
    currency = fields.String()
    budget = fields.String()
    spend_to_date = fields.String()
    projected_spend = fields.String()
    remaining = fields.String()
    on_track = fields.Boolean()
    days_elapsed = fields.Integer()
    days_in_month = fields.Integer()
