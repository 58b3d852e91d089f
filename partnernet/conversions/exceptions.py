"""Errors of the postback flow: each has the stable code a store's developer sees."""

from __future__ import annotations

from partnernet.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PartnernetError,
    RuleRefused,
    Unauthenticated,
)


class InvalidToken(Unauthenticated):
    code = "invalid_token"
    message = "The postback token is missing or wrong."


class InvalidSignature(Unauthenticated):
    code = "invalid_signature"
    message = "The X-Partnernet-Signature does not match the request."


class SourceNotAllowed(Forbidden):
    code = "source_not_allowed"
    message = "This source address is not on the merchant's postback allowlist."


class MissingOrderId(BadRequest):
    code = "missing_order_id"
    message = "order_id is required."


class InvalidAmount(BadRequest):
    code = "invalid_amount"
    message = "amount must be a decimal number like 49.90."


class UnknownCurrency(BadRequest):
    code = "unknown_currency"
    message = "currency must be an ISO 4217 code."


class InvalidParameter(BadRequest):
    code = "validation_error"
    message = "Some parameters are missing or invalid."


class OrderConflict(Conflict):
    code = "order_conflict"
    message = "This order was already reported with a different amount or currency."


class Unattributed(RuleRefused):
    code = "unattributed"
    message = "No valid click_id or coupon: the conversion cannot be attributed to a partner."


class ClickExpired(RuleRefused):
    code = "click_expired"
    message = "The click is older than the offer's attribution window."


class UnknownEvent(RuleRefused):
    code = "unknown_event"
    message = "The offer has no commission plan for this event."


class CurrencyMismatch(RuleRefused):
    code = "currency_mismatch"
    message = "The currency differs from the offer's currency."


class UnknownOrder(NotFound):
    code = "unknown_order"
    message = "No conversion with this order_id to refund."


class PartnerPostbackError(PartnernetError):
    """Base of outgoing partner postback refusals."""


class NoPostbackUrl(RuleRefused):
    code = "no_postback_url"
    message = "The partner has no postback URL set."


class UnsafeDestination(RuleRefused):
    code = "unsafe_postback_url"
    message = "The postback URL points at a private, loopback, link-local or reserved address."
