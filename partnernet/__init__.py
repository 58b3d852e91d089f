"""partnernet: the backend of an affiliate and influencer partner network."""

from partnernet.app import create_app

__all__ = ["create_app"]
