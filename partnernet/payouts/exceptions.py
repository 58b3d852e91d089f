"""Errors of the payouts feature (each with a stable code)."""

from partnernet.errors import BadRequest, Conflict, Forbidden, NotFound, RuleRefused


class PayoutNotFound(NotFound):
    code = "payout_not_found"
    message = "No such payout."


class RunNotFound(NotFound):
    code = "payout_run_not_found"
    message = "No such payout run."


class NotManualPayout(Conflict):
    code = "not_manual_payout"
    message = "Only a queued payout on the manual rail can be marked paid."


class RunNotAwaitingApproval(Conflict):
    code = "run_not_awaiting_approval"
    message = "This payout run is not waiting for an approval."


class SecondApproverRequired(Forbidden):
    code = "second_approver_required"
    message = "Another merchant user must approve this run (four eyes)."


class StripeNotConfigured(RuleRefused):
    code = "stripe_not_configured"
    message = "Stripe payouts are not configured on this network."


class StripeUnavailable(RuleRefused):
    code = "stripe_unavailable"
    message = "Stripe could not be reached; try again in a moment."
    status_code = 503


class InvalidWebhook(BadRequest):
    code = "invalid_signature"
    message = "The Stripe-Signature header is missing, wrong or too old."
