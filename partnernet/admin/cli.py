"""``partnernet demo``: seed a demo network and print its logins."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when a merchant exists (for `make run`).")
@click.option("--seed", type=int, default=None, help="Random seed of the traffic (passwords stay random).")
@with_appcontext
def demo(if_empty: bool, seed: int | None) -> None:
    """Seed 2 merchants, offers, 20 partners, 30 days of traffic; print the logins."""
    from partnernet import demo as seeding

    if seeding.has_merchant():
        if if_empty:
            click.echo("demo: the database already has merchants; nothing seeded.")
            return
        raise click.ClickException("The database already has merchants: seed the demo into an empty one.")
    result = seeding.seed(click.echo, seed)
    base = current_app.config["BASE_URL"]
    click.echo("")
    click.echo(f"Demo ready. Log in at {base}/login (passwords are drawn anew at each seeding):")
    for email, password in result["logins"].items():
        role = "merchant" if email.startswith("owner@") else "partner"
        click.echo(f"  {role:9} {email:30} {password}")
    click.echo(f"Partner sign-up link: {base}/portal/join/{result['merchants'][0]}")


commands = [demo]
