"""Creatives library, impression pixel, landing-page split tests and creative fatigue."""
