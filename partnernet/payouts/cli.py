"""``partnernet payouts run|reconcile|approve|export``."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from partnernet.errors import PartnernetError


@click.group("payouts")
def payouts_group() -> None:
    """Payout runs, reconciliation with Stripe, the manual rail."""


@payouts_group.command("run")
@click.option("--merchant", "merchant_id", type=int, required=True, help="The merchant's id.")
@click.option("--partner-id", "partner_ids", type=int, multiple=True, help="Only these partners.")
@click.option("--currency", default=None, help="Only this currency.")
@with_appcontext
def run(merchant_id: int, partner_ids: tuple[int, ...], currency: str | None) -> None:
    """Start a payout run now; print the payouts created and the partners skipped."""
    from partnernet.money import format_amount
    from partnernet.payouts import services

    try:
        created = services.create_run(merchant_id, partner_ids=list(partner_ids) or None,
                                      currency=currency.upper() if currency else None, trigger="cli")
    except PartnernetError as exc:
        raise click.ClickException(exc.message) from None
    payouts = services.run_payouts(created.id)
    click.echo(json.dumps({
        "run_id": created.id, "status": created.status,
        "payouts": [{"id": p.id, "partner_id": p.partner_id, "rail": p.rail, "status": p.status,
                     "amount": format_amount(p.amount_minor, p.currency), "currency": p.currency}
                    for p in payouts],
        "skipped": created.skipped}))


@payouts_group.command("reconcile")
@click.option("--merchant", "merchant_id", type=int, default=None, help="Only this merchant.")
@with_appcontext
def reconcile(merchant_id: int | None) -> None:
    """Compare payouts with Stripe's transfers; exit 1 when they differ."""
    from partnernet.payouts.reconcile import reconcile as find_differences

    try:
        diffs = find_differences(merchant_id)
    except PartnernetError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(json.dumps({"differences": diffs, "ok": not diffs}))
    if diffs:
        raise SystemExit(1)


@payouts_group.command("approve")
@click.argument("run_id", type=int)
@click.option("--merchant", "merchant_id", type=int, required=True)
@click.option("--user-email", required=True, help="The second approver (a merchant user).")
@with_appcontext
def approve(run_id: int, merchant_id: int, user_email: str) -> None:
    """Give a run waiting for four eyes its second approval."""
    from sqlalchemy import select

    from partnernet.accounts.models import User
    from partnernet.extensions import db
    from partnernet.payouts import services

    user = db.session.scalar(select(User).where(User.email == user_email.strip().lower()))
    try:
        done = services.approve_run(merchant_id, run_id, user.id if user else -1)
    except PartnernetError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(json.dumps({"run_id": done.id, "status": done.status}))


@payouts_group.command("export")
@click.option("--merchant", "merchant_id", type=int, required=True)
@click.option("--format", "fmt", type=click.Choice(["paypal", "wise"]), default="paypal")
@with_appcontext
def export(merchant_id: int, fmt: str) -> None:
    """Print the queued manual payouts as a PayPal Payouts or Wise batch CSV."""
    from partnernet.payouts.manual import export_manual_csv

    click.echo(export_manual_csv(merchant_id, fmt), nl=False)


commands = [payouts_group]
