"""Privacy: erase a person's personal data on request (GDPR art. 17 / CCPA deletion)."""
