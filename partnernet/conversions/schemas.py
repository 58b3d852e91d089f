"""Marshmallow schemas of conversions, the raw postback log and partner postback deliveries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from partnernet.api.pagination import PageArgs
from partnernet.money import format_amount

CONVERSION_STATUSES = ("approved", "partially_refunded", "refunded")


class DayOrTime(fields.Field):
    """``2026-03-01`` (a whole UTC day) or an ISO 8601 time with an offset."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or len(value) > 40:
            raise ValidationError("Give a date (YYYY-MM-DD) or an ISO 8601 time.")
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("Give a date (YYYY-MM-DD) or an ISO 8601 time.") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment


def time_range(args: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """``from``/``to`` as a half-open UTC range; a ``to`` date includes that whole day."""
    start, end = args.get("from_"), args.get("to")
    if isinstance(start, date) and not isinstance(start, datetime):
        start = datetime.combine(start, time(0), tzinfo=UTC)
    if isinstance(end, date) and not isinstance(end, datetime):
        end = datetime.combine(end, time(0), tzinfo=UTC) + timedelta(days=1)
    return start, end


class RangeArgs(PageArgs):
    from_ = DayOrTime(data_key="from")
    to = DayOrTime()

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        start, end = time_range(data)
        if start is not None and end is not None and end <= start:
            raise ValidationError("to must be after from.", "to")


class ConversionListArgs(RangeArgs):
    status = fields.String(validate=validate.OneOf(CONVERSION_STATUSES))
    partner_id = fields.Integer(validate=validate.Range(min=1))


class PostbackListArgs(RangeArgs):
    order_id = fields.String(validate=validate.Length(min=1, max=255))
    outcome = fields.String(validate=validate.Length(min=1, max=32))


class ConversionOut(Schema):
    id = fields.Integer()
    offer_id = fields.Integer()
    partner_id = fields.Integer()
    click_id = fields.String(allow_none=True)
    coupon_id = fields.Integer(allow_none=True)
    event = fields.String()
    order_id = fields.String()
    amount = fields.Method("_amount")
    refunded_amount = fields.Method("_refunded")
    currency = fields.String()
    customer_id = fields.String(allow_none=True)
    status = fields.String()
    created_at = fields.DateTime()
    commission = fields.Raw(allow_none=True)

    def _amount(self, c: Any) -> str | None:
        return None if c.amount_minor is None else format_amount(c.amount_minor, c.currency)

    def _refunded(self, c: Any) -> str:
        return format_amount(c.refunded_minor or 0, c.currency)


class PostbackOut(Schema):
    id = fields.Integer()
    received_at = fields.DateTime()
    method = fields.String()
    params = fields.Dict()
    source_ip = fields.String(allow_none=True)
    order_id = fields.String(allow_none=True)
    auth_method = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    http_status = fields.Integer(allow_none=True)
    message = fields.String(allow_none=True)
    conversion_id = fields.Integer(allow_none=True)


class DeliveryListArgs(PageArgs):
    partner_id = fields.Integer(validate=validate.Range(min=1))
    status = fields.String(validate=validate.OneOf(("pending", "delivered", "failed")))


class AttemptOut(Schema):
    attempted_at = fields.DateTime()
    http_status = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()


class DeliveryOut(Schema):
    id = fields.Integer()
    partner_id = fields.Integer()
    commission_id = fields.Integer(allow_none=True)
    commission_status = fields.String(allow_none=True)
    is_test = fields.Boolean()
    url = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_http_status = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    attempt_log = fields.List(fields.Nested(AttemptOut))


class SendTestIn(Schema):
    #: Required with a merchant key (which of the program's partners); ignored with a partner key.
    partner_id = fields.Integer(validate=validate.Range(min=1))
