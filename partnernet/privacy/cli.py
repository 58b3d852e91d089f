"""``partnernet privacy erase --email E``: a data-subject erasure request."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group("privacy")
def privacy() -> None:
    """Personal data requests (GDPR/CCPA)."""


@privacy.command("erase")
@click.option("--email", required=True, help="The person's email (customer, partner or user).")
@with_appcontext
def erase(email: str) -> None:
    """Erase a person's personal data; commissions, ledger and payouts keep their amounts."""
    from partnernet.privacy.services import erase_person

    result = erase_person(email)
    click.echo(f"erased: {result.conversions} conversions, {result.postbacks} postbacks, "
               f"{result.clicks} clicks, {result.partners} partners, {result.users} users")


commands = [privacy]
