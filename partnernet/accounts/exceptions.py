"""Errors of the accounts feature."""

from partnernet.errors import Conflict, NotFound, Unauthenticated


class InvalidApiKey(Unauthenticated):
    code = "invalid_api_key"
    message = "The API key is missing, wrong or revoked."


class EmailTaken(Conflict):
    code = "email_taken"
    message = "An account with this email already exists."


class PartnerNotFound(NotFound):
    code = "partner_not_found"
    message = "No such partner in this program."


class PartnerAlreadyInProgram(Conflict):
    code = "partner_exists"
    message = "This partner is already in the program."
