"""Errors of the offers feature."""

from partnernet.errors import NotFound, ValidationFailed


class OfferNotFound(NotFound):
    code = "offer_not_found"
    message = "No such offer."


class InvalidPlan(ValidationFailed):
    code = "invalid_plan"
    message = "The commission plan is not valid."
