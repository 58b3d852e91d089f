"""Marshmallow schemas of the creatives API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from partnernet.creatives.models import CREATIVE_KINDS, CREATIVE_STATUSES


class CreativeIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(CREATIVE_KINDS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    body = fields.String(validate=validate.Length(max=20_000))
    status = fields.String(validate=validate.OneOf(CREATIVE_STATUSES))
    starts_at = fields.AwareDateTime()
    ends_at = fields.AwareDateTime()


class CreativePatch(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    body = fields.String(validate=validate.Length(max=20_000), allow_none=True)
    status = fields.String(validate=validate.OneOf(CREATIVE_STATUSES))
    starts_at = fields.AwareDateTime(allow_none=True)
    ends_at = fields.AwareDateTime(allow_none=True)


class CreativeOut(Schema):
    id = fields.Integer()
    offer_id = fields.Integer()
    kind = fields.String()
    name = fields.String()
    status = fields.String()
    body = fields.String(allow_none=True)
    image_type = fields.String(allow_none=True)
    image_width = fields.Integer(allow_none=True)
    image_height = fields.Integer(allow_none=True)
    image_bytes = fields.Integer(allow_none=True)
    starts_at = fields.DateTime(allow_none=True)
    ends_at = fields.DateTime(allow_none=True)
    fatigued_at = fields.DateTime(allow_none=True)
    fatigue_reasons = fields.String(allow_none=True)
    created_at = fields.DateTime()


class CreativeListArgs(Schema):
    status = fields.String(validate=validate.OneOf(CREATIVE_STATUSES))


class VariantIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    url = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    #: Raw so that zero, negative or fractional weights get the rule's own refusal.
    weight = fields.Raw(required=True)


class VariantsIn(Schema):
    variants = fields.List(fields.Nested(VariantIn), required=True)


class EndTestIn(Schema):
    winner_id = fields.Integer(required=True)


class VariantOut(Schema):
    id = fields.Integer()
    name = fields.String()
    url = fields.String()
    weight = fields.Integer()
    status = fields.String()
    is_winner = fields.Boolean()


class ReportArgs(Schema):
    offer_id = fields.Integer()
    from_ = fields.AwareDateTime(data_key="from")
    to = fields.AwareDateTime()


class CreativeSettingsIn(Schema):
    fatigue_drop_percent = fields.Integer(validate=validate.Range(min=1, max=99))
    refresh_days = fields.Integer(validate=validate.Range(min=1, max=365))
    variant_hosts = fields.List(fields.String(validate=validate.Length(max=253)),
                                validate=validate.Length(max=50))


class CreativeSettingsOut(Schema):
    fatigue_drop_percent = fields.Integer()
    refresh_days = fields.Integer()
    variant_hosts = fields.List(fields.String())


class CreativeStatsOut(Schema):
    creative_id = fields.Integer()
    offer_id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    status = fields.String()
    impressions = fields.Integer(metadata={"description": "every recorded view"})
    unique_impressions = fields.Integer(metadata={"description": "unique, non-bot views (CPM pays these)"})
    clicks = fields.Integer(metadata={"description": "non-bot clicks through the creative's snippet"})
    ctr = fields.String(allow_none=True, metadata={"description": "clicks ÷ unique impressions"})
    commission = fields.String(metadata={"description": "conversions' commissions + CPM share"})
    currency = fields.String()
    cpm = fields.String(allow_none=True, metadata={"description": "commission per 1,000 unique impressions"})
    fatigued = fields.Boolean()
    fatigue_reasons = fields.String(allow_none=True)


class CreativeReportOut(Schema):
    items = fields.List(fields.Nested(CreativeStatsOut))


class VariantStatsOut(Schema):
    id = fields.Integer()
    name = fields.String()
    url = fields.String()
    weight = fields.Integer()
    status = fields.String()
    is_winner = fields.Boolean()
    clicks = fields.Integer()
    conversions = fields.Integer()
    conversion_rate = fields.String(allow_none=True)
    conversion_rate_low = fields.String()
    conversion_rate_high = fields.String()
    commission = fields.String()
    epc = fields.String(allow_none=True)


class VariantReportOut(Schema):
    offer_id = fields.Integer()
    currency = fields.String()
    variants = fields.List(fields.Nested(VariantStatsOut))
    verdict = fields.String()
