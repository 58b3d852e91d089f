"""Errors of the commissions feature (status code + stable code; rendered by partnernet.errors)."""

from __future__ import annotations

from partnernet.errors import Conflict, NotFound, ValidationFailed


class CommissionNotFound(NotFound):
    code = "commission_not_found"
    message = "No such commission."


class InvalidTransition(Conflict):
    code = "invalid_transition"
    message = "The commission's status does not allow this."


class InvalidFraudSettings(ValidationFailed):
    code = "invalid_fraud_settings"
    message = "The fraud settings are invalid."
