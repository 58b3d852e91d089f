"""Errors of the creatives feature (the contract's JSON shape via PartnernetError)."""

from __future__ import annotations

from partnernet.errors import PartnernetError


class CreativeNotFound(PartnernetError):
    status_code = 404
    code = "creative_not_found"
    message = "No such creative."


class InvalidImage(PartnernetError):
    status_code = 422
    code = "invalid_image"
    message = "The upload is not an accepted image."


class ImageTooLarge(PartnernetError):
    status_code = 413
    code = "image_too_large"
    message = "The image is too large."


class InvalidVariants(PartnernetError):
    status_code = 422
    code = "invalid_variants"
    message = "The landing variants were refused."


class InvalidSettings(PartnernetError):
    status_code = 422
    code = "invalid_settings"
    message = "The creative settings were refused."
