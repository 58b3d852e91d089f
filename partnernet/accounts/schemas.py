"""Marshmallow schemas of partners (as seen by a merchant's program)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from partnernet.accounts.models import CHANNEL_TYPES
from partnernet.api.fields import http_url
from partnernet.offers.models import MEMBERSHIP_STATUSES


class PartnerIn(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    password = fields.String(load_only=True, validate=validate.Length(min=10, max=200))
    channel_type = fields.String(validate=validate.OneOf(CHANNEL_TYPES))


class PartnerPatch(Schema):
    status = fields.String(validate=validate.OneOf(MEMBERSHIP_STATUSES))
    name = fields.String(validate=validate.Length(min=1, max=200))
    channel_type = fields.String(validate=validate.OneOf(CHANNEL_TYPES))
    postback_url = http_url(allow_none=True)


class PartnerOut(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    status = fields.String()
    channel_type = fields.String()
    payout_rail = fields.String()
    payouts_enabled = fields.Boolean()
    postback_url = fields.String(allow_none=True)
    created_at = fields.DateTime()


class PartnerListArgs(Schema):
    status = fields.String(validate=validate.OneOf(MEMBERSHIP_STATUSES))
