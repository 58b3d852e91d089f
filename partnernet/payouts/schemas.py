"""Marshmallow schemas of the payouts API (amounts as decimal strings in major units)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from partnernet.api.fields import Currency, DecimalText
from partnernet.money import format_amount
from partnernet.payouts.models import PAYOUT_STATUSES


def _amount(obj: Any) -> str:
    return format_amount(obj.amount_minor, obj.currency)


class PayoutItemOut(Schema):
    commission_id = fields.Integer(allow_none=True)
    ledger_entry_id = fields.Integer(allow_none=True)
    amount = fields.Method("get_amount")

    def get_amount(self, item: Any) -> str:
        return format_amount(item.amount_minor, self.context.get("currency", "USD"))


class PayoutOut(Schema):
    id = fields.Integer()
    run_id = fields.Integer(allow_none=True)
    partner_id = fields.Integer()
    amount = fields.Function(_amount)
    currency = fields.String()
    rail = fields.String()
    status = fields.String()
    transfer_id = fields.String(allow_none=True)
    transfer_group = fields.String(allow_none=True)
    idempotency_key = fields.String(allow_none=True)
    manual_reference = fields.String(allow_none=True)
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)
    failed_at = fields.DateTime(allow_none=True)
    returned_at = fields.DateTime(allow_none=True)


class PayoutDetailOut(PayoutOut):
    items = fields.List(fields.Dict(), attribute="items_view")
    released_items = fields.List(fields.Dict(), attribute="released_view")


class SkippedOut(Schema):
    partner_id = fields.Integer()
    currency = fields.String()
    reason = fields.String()
    amount = fields.String()
    message = fields.String()


class RunOut(Schema):
    id = fields.Integer()
    status = fields.String()
    trigger = fields.String()
    transfer_group = fields.String()
    totals = fields.Dict(keys=fields.String(), values=fields.String())
    created_at = fields.DateTime()
    approved_at = fields.DateTime(allow_none=True)
    payouts = fields.List(fields.Nested(PayoutOut))
    skipped = fields.List(fields.Nested(SkippedOut))


class RunIn(Schema):
    partner_ids = fields.List(fields.Integer(validate=validate.Range(min=1)),
                              validate=validate.Length(min=1, max=10000))
    currency = Currency()


class PayoutListArgs(Schema):
    status = fields.String(validate=validate.OneOf(PAYOUT_STATUSES))
    partner_id = fields.Integer()
    run_id = fields.Integer()


class MarkPaidIn(Schema):
    reference = fields.String(required=True, validate=validate.Length(min=1, max=255))


class FailManualIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class ExportArgs(Schema):
    format = fields.String(load_default="paypal", validate=validate.OneOf(("paypal", "wise")))


class OnboardingOut(Schema):
    partner_id = fields.Integer()
    account_id = fields.String()
    url = fields.String()
    expires_at = fields.Integer()
    payouts_enabled = fields.Boolean()


class ScheduleIn(Schema):
    weekday = fields.Integer(required=True, validate=validate.Range(min=0, max=6))
    hour = fields.Integer(load_default=9, validate=validate.Range(min=0, max=23))


class SettingsIn(Schema):
    min_payout = DecimalText()
    approval_threshold = DecimalText(allow_none=True)
    schedule = fields.Nested(ScheduleIn, allow_none=True)
    rail = fields.String(validate=validate.OneOf(("auto", "stripe", "manual")))


class SettingsOut(Schema):
    currency = fields.String()
    min_payout = fields.String()
    approval_threshold = fields.String(allow_none=True)
    schedule = fields.Dict(allow_none=True)
    rail = fields.String()
