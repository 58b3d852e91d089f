"""Errors of the links feature (tracking links, coupons, clicks)."""

from partnernet.errors import Conflict, NotFound, RuleRefused


class LinkNotFound(NotFound):
    code = "link_not_found"
    message = "No such link."


class CouponNotFound(NotFound):
    code = "coupon_not_found"
    message = "No such coupon."


class CouponTaken(Conflict):
    code = "coupon_taken"
    message = "This coupon code is already used in this program."


class PartnerMayNotPromote(RuleRefused):
    code = "partner_not_approved"
    message = "The partner is not approved to promote this offer."
