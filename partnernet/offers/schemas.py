"""Marshmallow schemas of offers, commission plans, tiers and overrides."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from partnernet.api.fields import Currency, DecimalText, http_url
from partnernet.money import format_amount, format_percent
from partnernet.offers.models import (
    ATTRIBUTION_MODELS,
    ATTRIBUTION_PRIORITIES,
    OFFER_STATUSES,
    PLAN_TYPES,
)

EVENT_NAME = validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$",
                             error="Event names are lower-case letters, digits and _.")


class TierIn(Schema):
    min_conversions = fields.Integer(required=True, validate=validate.Range(min=1, max=10**7))
    percent = DecimalText()
    amount = DecimalText()


class PlanIn(Schema):
    event = fields.String(required=True, validate=EVENT_NAME)
    type = fields.String(required=True, validate=validate.OneOf(PLAN_TYPES))
    percent = DecimalText()
    amount = DecimalText()
    tiers = fields.List(fields.Nested(TierIn), validate=validate.Length(max=20))

    @validates_schema
    def _rate_matches_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        kind = data.get("type")
        rates = [data] + list(data.get("tiers") or [])
        for rate in rates:
            if kind == "cps":
                if rate.get("percent") is None or rate.get("amount") is not None:
                    raise ValidationError("A cps plan (and its tiers) takes percent, not amount.",
                                          "percent")
            elif kind in PLAN_TYPES:
                if rate.get("amount") is None or rate.get("percent") is not None:
                    raise ValidationError(f"A {kind} plan (and its tiers) takes amount, not percent.",
                                          "amount")
        thresholds = [t["min_conversions"] for t in data.get("tiers") or []]
        if len(thresholds) != len(set(thresholds)):
            raise ValidationError("Tier thresholds must differ.", "tiers")


def _unique_events(plans: list[dict[str, Any]]) -> None:
    events = [p["event"] for p in plans]
    if len(events) != len(set(events)):
        raise ValidationError("Each event may have one plan.", "plans")


class OfferIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    landing_url = http_url(required=True)
    currency = Currency()
    hold_days = fields.Integer(validate=validate.Range(min=0, max=365), allow_none=True)
    attribution_window_days = fields.Integer(validate=validate.Range(min=1, max=365))
    attribution_model = fields.String(validate=validate.OneOf(ATTRIBUTION_MODELS))
    attribution_priority = fields.String(validate=validate.OneOf(ATTRIBUTION_PRIORITIES))
    status = fields.String(validate=validate.OneOf(OFFER_STATUSES))
    daily_cap = fields.Integer(validate=validate.Range(min=1, max=10**7), allow_none=True)
    click_id_param = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_\-]{1,64}$"))
    allow_paid_search = fields.Boolean()
    coupon_requires_click = fields.Boolean()
    recurring_months = fields.Integer(validate=validate.Range(min=1, max=120), allow_none=True)
    requires_approval = fields.Boolean()
    plans = fields.List(fields.Nested(PlanIn), required=True, validate=validate.Length(min=1, max=20))

    @validates_schema
    def _plans(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("plans"):
            _unique_events(data["plans"])
        if isinstance(data.get("name"), str) and not data["name"].strip():
            raise ValidationError("Name must not be blank.", "name")


class OfferPatch(OfferIn):
    """Every field optional (load with ``partial=True``); ``plans`` replaces the plans."""


class TierOut(Schema):
    min_conversions = fields.Integer()
    percent = fields.Method("_percent")
    amount = fields.Method("_amount")

    def _percent(self, tier: Any) -> str | None:
        return None if tier.percent is None else format_percent(tier.percent)

    def _amount(self, tier: Any) -> str | None:
        if tier.amount_minor is None:
            return None
        plan = tier if hasattr(tier, "offer") else tier.plan
        return format_amount(tier.amount_minor, plan.offer.currency)


class PlanOut(TierOut):
    event = fields.String()
    type = fields.String()
    tiers = fields.List(fields.Nested(TierOut))


class OfferOut(Schema):
    id = fields.Integer()
    name = fields.String()
    landing_url = fields.String()
    currency = fields.String()
    hold_days = fields.Integer(allow_none=True)
    attribution_window_days = fields.Integer()
    attribution_model = fields.String()
    attribution_priority = fields.String()
    status = fields.String()
    daily_cap = fields.Integer(allow_none=True)
    click_id_param = fields.String()
    allow_paid_search = fields.Boolean()
    coupon_requires_click = fields.Boolean()
    recurring_months = fields.Integer(allow_none=True)
    requires_approval = fields.Boolean()
    plans = fields.List(fields.Nested(PlanOut))
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class OverrideIn(Schema):
    partner_id = fields.Integer(required=True)
    event = fields.String(required=True, validate=EVENT_NAME)
    percent = DecimalText()
    amount = DecimalText()

    @validates_schema
    def _one_rate(self, data: dict[str, Any], **kwargs: Any) -> None:
        if (data.get("percent") is None) == (data.get("amount") is None):
            raise ValidationError("Give either percent or amount.", "percent")


class OverrideOut(Schema):
    id = fields.Integer()
    offer_id = fields.Integer()
    partner_id = fields.Integer()
    event = fields.String()
    percent = fields.Method("_percent")
    amount = fields.Method("_amount")

    def _percent(self, o: Any) -> str | None:
        return None if o.percent is None else format_percent(o.percent)

    def _amount(self, o: Any) -> str | None:
        return None if o.amount_minor is None else format_amount(o.amount_minor, o.offer.currency)


class OfferListArgs(Schema):
    status = fields.String(validate=validate.OneOf(OFFER_STATUSES))
