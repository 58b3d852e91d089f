"""Marshmallow fields shared by the API schemas: decimals without floats, currencies, URLs."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import ValidationError, fields

from partnernet.money import MoneyError, normalize_currency


class DecimalText(fields.Field):
    """A decimal given as a string (``"49.90"``) or JSON number; never a float inside.

    The app's JSON parser turns JSON numbers into ``Decimal``, so no float is made.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or isinstance(value, float):
            raise ValidationError("Give a decimal string like \"49.90\".")
        if isinstance(value, int | Decimal):
            dec = Decimal(value)
        elif isinstance(value, str) and 0 < len(value.strip()) <= 32:
            try:
                dec = Decimal(value.strip())
            except InvalidOperation:
                raise ValidationError("Not a decimal number.") from None
        else:
            raise ValidationError("Give a decimal string like \"49.90\".")
        if not dec.is_finite():
            raise ValidationError("Not a finite number.")
        return dec

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class Currency(fields.String):
    """An ISO 4217 code, upper-cased; unknown codes are refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalize_currency(text)
        except MoneyError as exc:
            raise ValidationError(exc.message) from None


def http_url(**kwargs: Any) -> fields.Url:
    """An absolute http(s) URL: never ``javascript:``, ``data:`` or a relative path."""
    from marshmallow import validate

    return fields.Url(schemes={"http", "https"}, require_tld=False,
                      validate=validate.Length(max=2000), **kwargs)
