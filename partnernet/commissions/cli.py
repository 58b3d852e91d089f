"""``partnernet ledger verify``."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group("ledger")
def ledger_group() -> None:
    """The append-only ledger."""


@ledger_group.command("verify")
@click.option("--merchant", "merchant_id", type=int, default=None, help="Only this merchant.")
@with_appcontext
def verify(merchant_id: int | None) -> None:
    """Recompute every balance from commissions and payouts; exit 1 on any difference."""
    from partnernet.commissions.ledger import verify_ledger

    diffs = verify_ledger(merchant_id)
    for diff in diffs:
        click.echo(str(diff), err=True)
    if diffs:
        raise SystemExit(1)
    click.echo("ledger ok: every balance matches its commissions and payouts")


commands = [ledger_group]
