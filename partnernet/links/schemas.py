"""Marshmallow schemas of tracking links and coupons."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from partnernet.links.models import SUB_LENGTH

_TEXT = validate.Length(max=SUB_LENGTH)
COUPON_CODE = validate.Regexp(r"^\s*[A-Za-z0-9][A-Za-z0-9_\-]{1,63}\s*$",
                              error="2-64 letters, digits, - or _.")
STATUSES = ("active", "disabled")


class LinkIn(Schema):
    offer_id = fields.Integer(required=True, strict=True)
    partner_id = fields.Integer(required=True, strict=True)
    sub1 = fields.String(validate=_TEXT, allow_none=True)
    sub2 = fields.String(validate=_TEXT, allow_none=True)
    sub3 = fields.String(validate=_TEXT, allow_none=True)
    sub4 = fields.String(validate=_TEXT, allow_none=True)
    sub5 = fields.String(validate=_TEXT, allow_none=True)
    utm_source = fields.String(validate=_TEXT, allow_none=True)
    utm_medium = fields.String(validate=_TEXT, allow_none=True)
    utm_campaign = fields.String(validate=_TEXT, allow_none=True)
    utm_term = fields.String(validate=_TEXT, allow_none=True)
    utm_content = fields.String(validate=_TEXT, allow_none=True)


class LinkOut(Schema):
    id = fields.Integer()
    code = fields.String()
    url = fields.Method("_url")
    offer_id = fields.Integer()
    partner_id = fields.Integer()
    status = fields.String()
    sub1 = fields.String(allow_none=True)
    sub2 = fields.String(allow_none=True)
    sub3 = fields.String(allow_none=True)
    sub4 = fields.String(allow_none=True)
    sub5 = fields.String(allow_none=True)
    utm_source = fields.String(allow_none=True)
    utm_medium = fields.String(allow_none=True)
    utm_campaign = fields.String(allow_none=True)
    utm_term = fields.String(allow_none=True)
    utm_content = fields.String(allow_none=True)
    created_at = fields.DateTime()

    def _url(self, link: Any) -> str:
        from partnernet.links.services import link_url

        return link_url(link)


class LinkListArgs(Schema):
    partner_id = fields.Integer()
    offer_id = fields.Integer()
    status = fields.String(validate=validate.OneOf(STATUSES))


class CouponIn(Schema):
    offer_id = fields.Integer(required=True, strict=True)
    partner_id = fields.Integer(required=True, strict=True)
    code = fields.String(required=True, validate=COUPON_CODE)


class CouponOut(Schema):
    id = fields.Integer()
    code = fields.String()
    offer_id = fields.Integer()
    partner_id = fields.Integer()
    status = fields.String()
    created_at = fields.DateTime()


class CouponListArgs(Schema):
    partner_id = fields.Integer()
    offer_id = fields.Integer()
