"""Marshmallow schemas of commissions, reviews, balances and fraud settings."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from partnernet.commissions.fraud import RULE_NAMES
from partnernet.commissions.models import COMMISSION_STATUSES
from partnernet.conversions.schemas import RangeArgs


class CommissionListArgs(RangeArgs):
    status = fields.String(validate=validate.OneOf(COMMISSION_STATUSES))
    partner_id = fields.Integer(validate=validate.Range(min=1))
    offer_id = fields.Integer(validate=validate.Range(min=1))
    rule = fields.String(validate=validate.OneOf((*RULE_NAMES, "recurring_window")))


class FlagOut(Schema):
    rule = fields.String()
    reason = fields.String()
    action = fields.String(allow_none=True)
    would = fields.String()


class CommissionOut(Schema):
    """The commission object of CONTRACT.md (GET /api/v1/commissions), with extra keys."""

    id = fields.Integer()
    conversion_id = fields.Integer(allow_none=True)
    partner_id = fields.Integer()
    offer_id = fields.Integer()
    kind = fields.String()
    amount = fields.String()
    reversed_amount = fields.String()
    currency = fields.String()
    status = fields.String()
    hold_until = fields.String()
    flags = fields.List(fields.Nested(FlagOut))
    review = fields.Dict(allow_none=True)
    approved_at = fields.String(allow_none=True)
    accrual_date = fields.String(allow_none=True)
    click_count = fields.Integer(allow_none=True)
    created_at = fields.String(allow_none=True)


class ReviewIn(Schema):
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))


class FraudRulesPatch(Schema):
    """Rules by name ({enabled, mode, action, threshold}), trusted_partner, ip_blocklist."""

    rules = fields.Dict(keys=fields.String(validate=validate.OneOf(RULE_NAMES)), values=fields.Dict())
    trusted_partner = fields.Dict()
    ip_blocklist = fields.List(fields.String(validate=validate.Length(max=64)))


class ShadowReportArgs(Schema):
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=365))
